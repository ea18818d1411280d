#include "routing/username.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace popgate::routing {
namespace {

// RFC 5321 caps a mailbox at 254 octets; 255 leaves room for odd local
// schemes while still bounding what we hash and log.
constexpr size_t kMaxUserLength = 255;

bool IsAllowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '=' || c == '-' || c == '@';
}

}  // namespace

absl::StatusOr<CanonicalUser> Canonicalize(std::string_view raw) {
  // Error messages never echo the input: it may be a password typed into
  // the wrong prompt, and it may hold control characters.
  if (raw.empty()) return absl::InvalidArgumentError("empty username");
  if (raw.size() > kMaxUserLength) {
    return absl::InvalidArgumentError("username too long");
  }
  std::string full;
  full.reserve(raw.size());
  size_t at = std::string_view::npos;
  for (size_t i = 0; i < raw.size(); ++i) {
    const unsigned char u = static_cast<unsigned char>(raw[i]);
    if (u >= 0x80) {
      return absl::InvalidArgumentError("username has non-ASCII characters");
    }
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError("username has control characters");
    }
    if (u == ' ') return absl::InvalidArgumentError("username has spaces");
    char c = static_cast<char>(u);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!IsAllowed(c)) {
      return absl::InvalidArgumentError("username has invalid characters");
    }
    if (c == '@') {
      // Two '@' would let "a@x.com@y.org" be read as a user of either
      // domain depending on who parses it; refuse rather than guess.
      if (at != std::string_view::npos) {
        return absl::InvalidArgumentError("username has more than one '@'");
      }
      at = i;
    }
    full.push_back(c);
  }

  CanonicalUser user;
  if (at == std::string_view::npos) {
    user.local = full;
    user.full = std::move(full);
    return user;
  }
  if (at == 0) return absl::InvalidArgumentError("username has no local part");
  if (at + 1 == full.size()) {
    return absl::InvalidArgumentError("username has an empty domain");
  }
  std::string_view domain = std::string_view(full).substr(at + 1);
  // "x..y", ".x" and "x." would otherwise be distinct spellings of (or
  // near-misses for) a tenant's domain.
  if (domain.front() == '.' || domain.back() == '.' ||
      domain.find("..") != std::string_view::npos) {
    return absl::InvalidArgumentError("username has an invalid domain");
  }
  user.local = full.substr(0, at);
  user.domain = std::string(domain);
  user.full = std::move(full);
  return user;
}

}  // namespace popgate::routing
