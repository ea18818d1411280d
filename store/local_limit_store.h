// store = "local": the login counters in this process's memory, shared by
// its workers (auth/login_counters.h: process-wide, thread-safe, bounded).
// Answers at once; the Task never suspends. Sessions per user are a count
// per user (the session id is not needed here: each acquire is paired with
// one release).
#ifndef POPGATE_STORE_LOCAL_LIMIT_STORE_H_
#define POPGATE_STORE_LOCAL_LIMIT_STORE_H_

#include "auth/login_counters.h"
#include "store/limit_store.h"

namespace popgate::store {

class LocalLimitStore final : public LimitStore {
 public:
  // Over the process's counters (what every worker shares).
  LocalLimitStore();
  // Over other counters (tests).
  explicit LocalLimitStore(auth::LoginCounters& counters)
      : counters_(counters) {}

  Task<absl::StatusOr<auth::LoginCounts>> Look(
      const LoginKey& key, const auth::ThrottleSettings& s) override;
  Task<absl::StatusOr<auth::LoginCounts>> RecordFailure(
      const LoginKey& key, const auth::ThrottleSettings& s) override;
  Task<absl::StatusOr<bool>> AcquireUserSession(std::string_view user,
                                                std::string_view session_id,
                                                int limit) override;
  void ReleaseUserSession(std::string_view user,
                          std::string_view session_id) override;

 private:
  auth::LoginCounters& counters_;
};

}  // namespace popgate::store

#endif  // POPGATE_STORE_LOCAL_LIMIT_STORE_H_
