// Verdicts of recent password checks for one tenant, so that a repeated
// login (a client polling every minute; an attacker replaying the same
// guess) costs no hash. Keyed by HMAC-SHA256(secret, user || 0 || password)
// under a random per-process secret: neither the password nor a plain hash
// of it (which could be attacked offline) is ever stored. Good and failed
// verdicts have their own TTL. Bounded: past max_entries the expired go
// first, then the oldest; failed verdicts never take more than half, so a
// flood of wrong guesses cannot push the good users' entries out.
// Thread-safe (sharded); one per tenant per snapshot, so a reload (a
// changed passwd-file) empties it.
#ifndef POPGATE_AUTH_AUTH_CACHE_H_
#define POPGATE_AUTH_AUTH_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/time/time.h"

namespace popgate::auth {

class AuthCache {
 public:
  // max_entries == 0 caches nothing; a TTL <= 0 caches no verdict of that
  // kind.
  AuthCache(size_t max_entries, absl::Duration ttl,
            absl::Duration negative_ttl);
  ~AuthCache();
  AuthCache(const AuthCache&) = delete;
  AuthCache& operator=(const AuthCache&) = delete;

  enum class Hit { kMiss, kGood, kBad };
  // An entry past its TTL is a miss. A user holding a NUL (which the
  // session never lets through) is never cached: it would make the
  // user || 0 || password encoding ambiguous.
  Hit Find(std::string_view user, std::string_view password,
           absl::Time now) const;
  // Replaces any verdict for the same user and password. Reads the
  // password in place (no copy of it is made).
  void Insert(std::string_view user, std::string_view password, bool good,
              absl::Time now);
  // Entries held, expired ones not yet evicted included; <= max_entries.
  size_t size() const;
  size_t max_entries() const { return max_entries_; }

  // The map key: the first 16 bytes of the HMAC.
  struct Key {
    uint64_t a = 0;
    uint64_t b = 0;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      // Already uniformly random (an HMAC under a secret): one word is
      // enough for the table.
      return H::combine(std::move(h), k.a);
    }
  };
  // Exposed for tests: the key of (user, password) under this process's
  // secret.
  static Key KeyOf(std::string_view user, std::string_view password);

 private:
  struct Shard;
  Shard& ShardOf(const Key& k) const;

  const size_t max_entries_;
  const absl::Duration ttl_;
  const absl::Duration negative_ttl_;
  size_t num_shards_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_AUTH_CACHE_H_
