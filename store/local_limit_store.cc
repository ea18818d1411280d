#include "store/local_limit_store.h"

#include "absl/time/clock.h"

namespace popgate::store {

LocalLimitStore::LocalLimitStore()
    : counters_(auth::LoginCounters::Process()) {}

Task<absl::StatusOr<auth::LoginCounts>> LocalLimitStore::Look(
    const LoginKey& key, const auth::ThrottleSettings& s) {
  co_return counters_.Look(key.address, key.user, s, absl::Now());
}

Task<absl::StatusOr<auth::LoginCounts>> LocalLimitStore::RecordFailure(
    const LoginKey& key, const auth::ThrottleSettings& s) {
  co_return counters_.RecordFailure(key.address, key.user, s, absl::Now());
}

Task<absl::StatusOr<bool>> LocalLimitStore::AcquireUserSession(
    std::string_view user, std::string_view, int limit) {
  co_return counters_.AcquireUserSession(user, limit);
}

void LocalLimitStore::ReleaseUserSession(std::string_view user,
                                         std::string_view) {
  counters_.ReleaseUserSession(user);
}

}  // namespace popgate::store
