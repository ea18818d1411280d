// Dovecot-compatible passwd-file: one "user:{SCHEME}hash[:extra:fields]" per
// line. Loaded once (at start and on reload), never per login.
//
// Format, as accepted here:
//  - Lines end in "\n" or "\r\n"; a leading UTF-8 BOM is ignored. Blank
//    (whitespace-only) lines and lines whose first non-blank character is
//    '#' are skipped.
//  - Field 1 is the user name (non-empty, no whitespace or control
//    characters), lowercased (ASCII) for lookup. Field 2 is the password.
//    Dovecot's further fields (uid, gid, gecos, home, shell, extra fields)
//    are ignored. A password can therefore not contain ':'.
//  - The password is "{SCHEME}hash" with SCHEME one of PLAIN, CLEARTEXT,
//    SHA256-CRYPT, SHA512-CRYPT, BLF-CRYPT, ARGON2I, ARGON2ID
//    (case-insensitive). Without a "{SCHEME}" prefix, Dovecot would use its
//    default CRYPT scheme; we auto-detect only the strong crypt formats we
//    support ("$5$", "$6$", "$2y$"/"$2b$"/"$2a$", "$argon2i$", "$argon2id$")
//    and refuse anything else, notably bare plaintext, DES and MD5-crypt.
//  - Hashes are validated at load time (ValidateHash: prefix, shape, cost
//    limits), so a truncated hash is a load error, not a silent lockout.
//  - Refused: missing ':', empty user, empty password field (Dovecot's
//    passwordless "nopassword" users are not supported), unknown scheme,
//    "{" without "}", empty hash, duplicate user (after lowercasing).
// Errors are absl::InvalidArgumentError("path:line: reason"); they name the
// user at most (duplicates), never a hash or a password. Nothing is logged.
#ifndef POPGATE_AUTH_PASSWD_FILE_H_
#define POPGATE_AUTH_PASSWD_FILE_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "auth/password_scheme.h"

namespace popgate::auth {

struct PasswdEntry {
  std::string user;  // as written in the file, lowercased
  Scheme scheme = Scheme::kPlain;
  std::string hash;  // the part after "{SCHEME}" (or the bare crypt hash)
};

class PasswdFile {
 public:
  // Reads and parses `path`. Errors read "path:line: reason"; an unreadable
  // file gives the errno status (e.g. NotFound) with "path: strerror".
  static absl::StatusOr<PasswdFile> Load(const std::string& path);
  // Parses `content`; `name` is used in error messages.
  static absl::StatusOr<PasswdFile> Parse(std::string_view content,
                                          std::string_view name);

  // Case-insensitive lookup; nullptr if absent.
  const PasswdEntry* Find(std::string_view user) const;
  size_t size() const { return entries_.size(); }

 private:
  absl::flat_hash_map<std::string, PasswdEntry> entries_;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_PASSWD_FILE_H_
