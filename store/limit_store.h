// Where the login counters live: failed logins per address group and per
// user over the sliding window, the distinct users failing from an
// address, blocks, and logged-in sessions per user. "local" keeps them in
// this process (LocalLimitStore); "redis" shares them between every
// instance that names the same Redis (RedisLimitStore), so an attacker
// spread over instances gains nothing and [IN-USE] holds across them.
//
// One store per worker, used on that worker's thread only. Calls never
// block the thread: a Redis round trip is awaited on the worker's ring.
#ifndef POPGATE_STORE_LIMIT_STORE_H_
#define POPGATE_STORE_LIMIT_STORE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "auth/login_throttle.h"
#include "runtime/task.h"

namespace popgate::store {

struct LoginKey {
  std::string address;  // net/address_group.h's AddressGroup
  std::string user;     // tenant-qualified canonical user name
};

class LimitStore {
 public:
  virtual ~LimitStore() = default;

  // The counts and blocks before a try: one round trip. An error only when
  // the store cannot answer and its policy is fail_closed (fail_open
  // answers from this instance's own counters).
  virtual Task<absl::StatusOr<auth::LoginCounts>> Look(
      const LoginKey& key, const auth::ThrottleSettings& s) = 0;
  // A failed try: counts it for the address, the user, and the user among
  // the address's failing users; sets the blocks AfterFailure asks for
  // (for block_time). Returns the counts including it.
  virtual Task<absl::StatusOr<auth::LoginCounts>> RecordFailure(
      const LoginKey& key, const auth::ThrottleSettings& s) = 0;

  // One of `limit` concurrent sessions of `user`: false when all are
  // taken ([IN-USE]). `session_id` names this session's slot (unique per
  // process and instance); each true is paired with one
  // ReleaseUserSession. Slots of an instance that died expire by
  // themselves.
  virtual Task<absl::StatusOr<bool>> AcquireUserSession(
      std::string_view user, std::string_view session_id, int limit) = 0;
  // Never fails for the caller (the store retries or lets it expire).
  virtual void ReleaseUserSession(std::string_view user,
                                  std::string_view session_id) = 0;
};

}  // namespace popgate::store

#endif  // POPGATE_STORE_LIMIT_STORE_H_
