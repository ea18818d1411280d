// The login counters of one popgate process (store = "local", and the
// fallback of a Redis store that is down under fail_open): failed logins
// per address group and per user over the sliding window, the distinct
// users failing from each address, blocks, and logged-in sessions per
// user. Shared by every worker (a client's connections land on any of
// them), thread-safe, and sharded so a lock is held for one small map
// operation.
//
// Sliding window over W = failure_window, as two fixed buckets (the same
// arithmetic as the Redis store, so both count alike): bucket b =
// floor(unix_seconds / W_seconds); count(t) = cur + floor(prev * (W - (t -
// b*W)) / W), cur the failures in bucket b and prev those in b - 1.
//
// Bounded: at most `max_addresses` address entries and `max_users` user
// entries (and as many user-session entries); a full shard first drops
// what has expired (2W after its last failure and past its block), then
// the stalest of a small sample. So a flood of distinct addresses or user
// names costs a fixed amount of memory; what it can do is push out old
// entries, never grow the table. Keys are stored as 64-bit SipHashes
// under a per-process random key: entries are fixed size (no allocation
// per key beyond the slot) and no user name sits in memory longer than
// the call.
//
// "" as the address or the user: not counted (and zero in the answer).
// Every call takes `now` so tests control the clock.
#ifndef POPGATE_AUTH_LOGIN_COUNTERS_H_
#define POPGATE_AUTH_LOGIN_COUNTERS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/time/time.h"
#include "auth/login_throttle.h"

namespace popgate::auth {

class LoginCounters {
 public:
  struct Bounds {
    size_t max_addresses = 100000;
    size_t max_users = 100000;
  };
  // Distinct failing users remembered per address (spraying): a small set
  // of user-key hashes with their last failure. The count saturates here.
  static constexpr int kMaxUsersPerAddress = 64;

  LoginCounters() : LoginCounters(Bounds{}) {}
  explicit LoginCounters(Bounds bounds);
  ~LoginCounters();
  LoginCounters(const LoginCounters&) = delete;
  LoginCounters& operator=(const LoginCounters&) = delete;

  static LoginCounters& Process();  // the one every worker shares

  // The counts and blocks before a try. Changes nothing.
  LoginCounts Look(std::string_view address, std::string_view user,
                   const ThrottleSettings& s, absl::Time now);
  // A failed try: counted for the address, the user, and the user among
  // the address's failing users; the blocks AfterFailure asks for are set
  // for block_time (an existing block is not extended). Returns the counts
  // including it; *_block_new says this call set the block.
  LoginCounts RecordFailure(std::string_view address, std::string_view user,
                            const ThrottleSettings& s, absl::Time now);

  // One of `limit` concurrent sessions of `user` (limit <= 0: no limit,
  // still counted): false when all are taken. Each true is paired with
  // one ReleaseUserSession.
  bool AcquireUserSession(std::string_view user, int limit);
  void ReleaseUserSession(std::string_view user);
  int user_sessions(std::string_view user) const;

  // Entries held now (for tests and the bounds).
  size_t address_entries() const;
  size_t user_entries() const;

 private:
  struct Shard;
  static constexpr size_t kShards = 64;

  uint64_t Hash(std::string_view key) const;
  Shard& ShardOf(uint64_t h) const;

  Bounds bounds_;
  size_t address_cap_per_shard_;
  size_t user_cap_per_shard_;
  uint64_t key_[2];
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_LOGIN_COUNTERS_H_
