// PLACEHOLDER (issue 10 contract): answers "nothing counted"; the real
// counters come with auth/login_counters.
#include "store/local_limit_store.h"

namespace popgate::store {

Task<absl::StatusOr<auth::LoginCounts>> LocalLimitStore::Look(
    const LoginKey&, const auth::ThrottleSettings&) {
  co_return auth::LoginCounts{};
}

Task<absl::StatusOr<auth::LoginCounts>> LocalLimitStore::RecordFailure(
    const LoginKey&, const auth::ThrottleSettings&) {
  co_return auth::LoginCounts{};
}

Task<absl::StatusOr<bool>> LocalLimitStore::AcquireUserSession(
    std::string_view, std::string_view, int) {
  co_return true;
}

void LocalLimitStore::ReleaseUserSession(std::string_view, std::string_view) {}

}  // namespace popgate::store
