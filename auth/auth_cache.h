// Verdicts of recent password checks for one tenant, so that a repeated
// login (a client polling every minute; an attacker replaying the same
// guess) costs no hash. Keyed by HMAC-SHA256(secret, user || 0 || password)
// under a random per-process secret: neither the password nor a plain hash
// of it (which could be attacked offline) is ever stored. Good and failed
// verdicts have their own TTL. Bounded: past max_entries the oldest go.
// Thread-safe (sharded); one per tenant per snapshot, so a reload (a
// changed passwd-file) empties it.
#ifndef POPGATE_AUTH_AUTH_CACHE_H_
#define POPGATE_AUTH_AUTH_CACHE_H_

#include <cstddef>
#include <string_view>

#include "absl/time/time.h"

namespace popgate::auth {

class AuthCache {
 public:
  AuthCache(size_t max_entries, absl::Duration ttl,
            absl::Duration negative_ttl);

  enum class Hit { kMiss, kGood, kBad };
  Hit Find(std::string_view user, std::string_view password,
           absl::Time now) const;
  void Insert(std::string_view user, std::string_view password, bool good,
              absl::Time now);
  size_t size() const;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_AUTH_CACHE_H_
