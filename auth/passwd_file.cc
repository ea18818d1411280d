#include "auth/passwd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "base/wipe.h"

namespace popgate::auth {
namespace {

// Debian 12's abseil has its own absl::string_view (not std::string_view), so
// the string helpers here are local rather than absl's.
char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
char AsciiUpper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}
bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// A scheme name is echoed in an error only if it looks like one (Dovecot's
// names are upper-case letters, digits, '-' and '.'); otherwise the text
// between the braces might be part of a password and stays out of the log.
bool LooksLikeSchemeName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '-' &&
        c != '.') {
      return false;
    }
  }
  return true;
}

bool IsBlankOrComment(std::string_view line) {
  const size_t first = line.find_first_not_of(" \t\r\v\f");
  return first == std::string_view::npos || line[first] == '#';
}

}  // namespace

absl::StatusOr<PasswdFile> PasswdFile::Parse(std::string_view content,
                                             std::string_view name) {
  PasswdFile file;
  // Line of each user's first definition, for the duplicate-user error.
  absl::flat_hash_map<std::string, size_t> first_line;
  // Tolerate a UTF-8 byte-order mark written by some editors.
  if (content.starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);

  size_t line_no = 0;
  while (!content.empty() || line_no == 0) {
    ++line_no;
    const size_t nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view()
                                           : content.substr(nl + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);  // CRLF files
    if (IsBlankOrComment(line)) continue;

    auto error = [&](std::string_view reason) {
      return absl::InvalidArgumentError(std::string(name) + ":" +
                                        std::to_string(line_no) + ": " +
                                        std::string(reason));
    };

    // Never echo `line` itself in an error: it holds a hash or a password.
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return error("missing ':' after the user name");
    }
    const std::string_view raw_user = line.substr(0, colon);
    if (raw_user.empty()) return error("empty user name");
    for (char c : raw_user) {
      if (IsAsciiSpace(c) || IsControl(c)) {
        return error("user name contains whitespace or control characters");
      }
    }
    // Only the password field matters; Dovecot's uid, gid, gecos, home,
    // shell and extra fields after it are ignored.
    std::string_view password = line.substr(colon + 1);
    password = password.substr(0, password.find(':'));
    if (password.empty()) {
      return error("empty password field (passwordless users not supported)");
    }

    Scheme scheme;
    std::string_view hash;
    if (password.front() == '{') {
      const size_t close = password.find('}');
      if (close == std::string_view::npos) {
        return error("'{' without closing '}' in the password field");
      }
      const std::string_view scheme_name = password.substr(1, close - 1);
      const std::optional<Scheme> parsed = ParseScheme(scheme_name);
      if (!parsed.has_value()) {
        std::string upper(scheme_name);
        for (char& c : upper) c = AsciiUpper(c);
        std::string reason = "unknown password scheme";
        if (LooksLikeSchemeName(upper)) reason += " \"" + upper + "\"";
        reason +=
            " (supported: PLAIN, CLEARTEXT, SHA256-CRYPT, SHA512-CRYPT, "
            "BLF-CRYPT, ARGON2I, ARGON2ID)";
        return error(reason);
      }
      scheme = *parsed;
      hash = password.substr(close + 1);
      if (hash.empty()) return error("empty hash after the {SCHEME} prefix");
      if (absl::Status valid = ValidateHash(scheme, hash); !valid.ok()) {
        return error(std::string(valid.message()));
      }
    } else {
      // Dovecot's default scheme for passwd-file is CRYPT, i.e. whatever
      // crypt(3) makes of the prefix, including DES and MD5. We accept only
      // the strong crypt formats we support and refuse everything else,
      // notably a bare plaintext password.
      const std::optional<Scheme> detected = DetectCryptScheme(password);
      if (!detected.has_value()) {
        return error(
            "password has no {SCHEME} prefix and is not a supported crypt "
            "hash ($5$, $6$, $2y$/$2b$/$2a$, $argon2i$, $argon2id$)");
      }
      scheme = *detected;
      hash = password;
      if (absl::Status valid = ValidateHash(scheme, hash); !valid.ok()) {
        return error(std::string(valid.message()));
      }
    }

    std::string user = ToLower(raw_user);
    const auto [it, inserted] = first_line.try_emplace(user, line_no);
    if (!inserted) {
      return error("duplicate user \"" + absl::CHexEscape(user) +
                   "\" (first defined on line " + std::to_string(it->second) +
                   ")");
    }
    PasswdEntry entry{
        .user = user, .scheme = scheme, .hash = std::string(hash)};
    file.entries_.emplace(std::move(user), std::move(entry));
  }
  return file;
}

absl::StatusOr<PasswdFile> PasswdFile::Load(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, path.c_str());
  std::string content;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, path.c_str());
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  absl::StatusOr<PasswdFile> file = Parse(content, path);
  // The buffer held every hash in the file; don't leave it in freed memory.
  WipeBytes(content.data(), content.size());
  WipeBytes(buf, sizeof(buf));
  return file;
}

const PasswdEntry* PasswdFile::Find(std::string_view user) const {
  const auto it = entries_.find(ToLower(user));
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace popgate::auth
