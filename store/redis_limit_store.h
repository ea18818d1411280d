// store = "redis": the login counters in a Redis every instance shares, so
// failures spread over instances add up to one block that all of them
// enforce, and [IN-USE] holds across them. The same semantics as the local
// store (auth/login_counters.h), kept in Redis keys that all expire by
// themselves (docs/redis.md lists them):
//
//   <prefix>fa:<bucket>:<address>  failures from an address in a bucket
//   <prefix>fu:<bucket>:<user>     failures of a user in a bucket
//                                  (INCR + PEXPIRE 2W, read with MGET)
//   <prefix>du:<bucket>:<address>  HyperLogLog of the users failing from
//                                  the address (PFADD + PEXPIRE 2W; PFCOUNT
//                                  of this bucket and the one before)
//   <prefix>ba:<address>, <prefix>bu:<user>  blocks (SET 1 PX block NX)
//   <prefix>s:<user>               ZSET of the user's sessions: member
//                                  "<instance>:<session id>", score = the
//                                  slot's expiry (unix ms); refreshed by
//                                  its instance every lease/3
//
// <bucket> = floor(unix_seconds / W) for W = failure_window in seconds;
// <user> = RedisUserKey(user), a hash: no user name sits in Redis.
//
// Look is one pipelined round trip, RecordFailure one (plus a SET NX only
// when it sets a block), AcquireUserSession one EVAL. A call that fails or
// times out makes Redis "down" for this worker for `skip_after_failure`
// (answered by policy at once, no timeout per login): fail_open answers
// from the process's local counters (which shadow this instance's failures
// all along, so they do not start from zero), fail_closed with
// Unavailable. {"event":"store_down"} is logged at most once a minute per
// process, {"event":"store_up"} once when it answers again.
//
// One store per worker, on its ring's thread only.
#ifndef POPGATE_STORE_REDIS_LIMIT_STORE_H_
#define POPGATE_STORE_REDIS_LIMIT_STORE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/ring.h"
#include "store/limit_store.h"
#include "store/local_limit_store.h"
#include "store/redis_connection.h"

namespace popgate::store {

struct RedisStoreOptions {
  RedisOptions connection;
  std::string prefix = "popgate:";
  bool fail_closed = false;  // redis_down = "fail_closed"
  // After a failed call: answer by policy without trying Redis this long.
  absl::Duration skip_after_failure = absl::Seconds(1);
  // A session slot's lifetime without a refresh (a crashed instance's
  // slots are gone within it); refreshed every lease / 3.
  absl::Duration session_lease = absl::Seconds(120);
  size_t refresh_batch = 256;  // slots per refresh round trip
};

// The hex of the first 16 bytes of SHA-256(user): what stands for a user
// in Redis keys (the same on every instance).
std::string RedisUserKey(std::string_view user);

// This process's random id (hex), the prefix of its session slots.
const std::string& RedisInstanceId();

// The first line of a password file (without its line end). The error
// names the file, never its contents.
absl::StatusOr<std::string> ReadRedisPassword(const std::string& path);

class RedisLimitStore final : public LimitStore {
 public:
  using LogFn = std::function<void(std::string line)>;

  // `fallback`: the local counters of fail_open (the process's when null).
  RedisLimitStore(Ring& ring, RedisStoreOptions options, LogFn log,
                  std::unique_ptr<LocalLimitStore> fallback = nullptr);
  ~RedisLimitStore() override;

  // Starts the session-slot refresher on the ring (its thread).
  void Start();
  // Ends it and closes the connection; idle() turns true on later ring
  // turns.
  void Stop();
  bool idle() const;

  Task<absl::StatusOr<auth::LoginCounts>> Look(
      const LoginKey& key, const auth::ThrottleSettings& s) override;
  Task<absl::StatusOr<auth::LoginCounts>> RecordFailure(
      const LoginKey& key, const auth::ThrottleSettings& s) override;
  Task<absl::StatusOr<bool>> AcquireUserSession(std::string_view user,
                                                std::string_view session_id,
                                                int limit) override;
  void ReleaseUserSession(std::string_view user,
                          std::string_view session_id) override;

  // For tests: slots held now, and refreshing them at once.
  size_t live_slots() const { return slots_.size(); }
  Task<void> RefreshSlots();
  // For tests: forget the process-wide store_down/store_up state.
  static void ResetDownStateForTests();

 private:
  struct Slot {
    std::string key;  // the ZSET, "" when taken from the local fallback
    std::string user;
  };

  bool Skipping() const;
  // A failed call: skip Redis for a while, log store_down (rate-limited).
  void NoteDown(const absl::Status& status);
  void NoteUp();
  std::string Key(std::string_view kind, std::string_view rest) const;
  std::string BucketKey(std::string_view kind, int64_t bucket,
                        std::string_view rest) const;
  std::string Member(std::string_view session_id) const;
  absl::Status Unavailable() const;
  Detached RunRefresher();

  Ring& ring_;
  RedisStoreOptions options_;
  LogFn log_;
  std::unique_ptr<LocalLimitStore> local_;
  RedisConnection conn_;
  absl::Time skip_until_ = absl::InfinitePast();
  std::string last_error_;
  absl::flat_hash_map<std::string, Slot> slots_;  // by session id
  bool started_ = false;
  bool stopping_ = false;
  bool refresher_running_ = false;
  SleepOp* refresher_sleep_ = nullptr;  // while it sleeps
};

}  // namespace popgate::store

#endif  // POPGATE_STORE_REDIS_LIMIT_STORE_H_
