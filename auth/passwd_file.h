// Dovecot-compatible passwd-file: one "user:{SCHEME}hash[:extra:fields]" per
// line. Loaded once (at start and on reload), never per login.
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
  std::string hash;  // the part after "{SCHEME}"
};

class PasswdFile {
 public:
  // Reads and parses `path`. Errors read "path:line: reason".
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
