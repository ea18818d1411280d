// Canonical usernames: the one spelling of a login that decides its tenant
// and its backend. Anything that could make one login reach two tenants
// (a second '@', spaces, control characters, odd case) is canonicalised to
// exactly one form or refused.
#ifndef POPGATE_ROUTING_USERNAME_H_
#define POPGATE_ROUTING_USERNAME_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace popgate::routing {

struct CanonicalUser {
  std::string full;    // "local@domain" or "local" (lowercase)
  std::string local;   // part before '@'
  std::string domain;  // part after '@', empty if none
};

// Lowercases ASCII; refuses empty names, names over 255 octets, more than
// one '@', an empty local part or domain, whitespace, control characters,
// non-ASCII bytes, characters outside [a-z0-9._+=@-] and a domain with an
// empty label (".x", "x..y", "x."). Error messages never echo the input.
absl::StatusOr<CanonicalUser> Canonicalize(std::string_view raw);

}  // namespace popgate::routing

#endif  // POPGATE_ROUTING_USERNAME_H_
