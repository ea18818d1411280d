// Username canonicalisation (routing/username), on what a client sends as
// USER or inside AUTH PLAIN/LOGIN.
//
// Properties: canonicalisation is idempotent (the canonical form is its own
// canonical form) and case-blind (upper/lower spellings give one user); the
// parts add up ("local@domain"); only [a-z0-9._+=@-] survive, at most 255
// octets, one '@', no empty domain label; an error message does not depend
// on the letters of the input (it never echoes it).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "routing/username.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::routing::Canonicalize;
using popgate::routing::CanonicalUser;

bool Allowed(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '=' || c == '-' || c == '@';
}

bool Same(const CanonicalUser& a, const CanonicalUser& b) {
  return a.full == b.full && a.local == b.local && a.domain == b.domain;
}

std::string Flip(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<CanonicalUser> user = Canonicalize(raw);
  absl::StatusOr<CanonicalUser> flipped = Canonicalize(Flip(raw));
  FUZZ_CHECK(user.ok() == flipped.ok());
  if (!user.ok()) {
    // Error messages never echo the input (it may be a password typed at
    // the wrong prompt): the same input with every letter replaced by 'q'
    // fails the same way, so its message must be the same text.
    std::string masked(raw);
    for (char& c : masked) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) c = 'q';
    }
    absl::StatusOr<CanonicalUser> m = Canonicalize(masked);
    FUZZ_CHECK(!m.ok());
    FUZZ_CHECK(m.status().message() == user.status().message());
    return 0;
  }
  FUZZ_CHECK(Same(*user, *flipped));
  const CanonicalUser& u = *user;
  FUZZ_CHECK(!u.full.empty() && u.full.size() <= 255);
  FUZZ_CHECK(u.full.size() == size);
  for (char c : u.full) FUZZ_CHECK(Allowed(c));
  FUZZ_CHECK(!u.local.empty());
  FUZZ_CHECK(u.local.find('@') == std::string::npos);
  if (u.domain.empty()) {
    FUZZ_CHECK(u.full == u.local);
  } else {
    FUZZ_CHECK(u.full == u.local + "@" + u.domain);
    FUZZ_CHECK(u.domain.find('@') == std::string::npos);
    FUZZ_CHECK(u.domain.front() != '.' && u.domain.back() != '.');
    FUZZ_CHECK(u.domain.find("..") == std::string::npos);
  }

  // Idempotent: the canonical form canonicalises to itself.
  absl::StatusOr<CanonicalUser> again = Canonicalize(u.full);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Same(*again, u));
  return 0;
}
