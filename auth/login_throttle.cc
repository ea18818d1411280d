#include "auth/login_throttle.h"

#include <algorithm>

namespace popgate::auth {
namespace {

// base * 2^n, capped: doubles until it reaches the cap, so n = 10^9 costs
// as little as n = 40 and nothing overflows (a zero base stays zero).
absl::Duration DoubledDelay(absl::Duration base, int n, absl::Duration cap) {
  if (base <= absl::ZeroDuration()) return std::min(base, cap);
  absl::Duration d = base;
  for (int i = 0; i < n && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

bool AtLeast(int count, int threshold) {
  return threshold > 0 && count >= threshold;
}

}  // namespace

ThrottleDecision Decide(const LoginCounts& before, const ThrottleSettings& s) {
  ThrottleDecision d;
  if (before.address_blocked) {
    d.verdict = ThrottleVerdict::kAddressBlocked;
  } else if (before.user_blocked) {
    d.verdict = ThrottleVerdict::kUserBlocked;
  }
  const int n = std::max({before.address_failures, before.user_failures, 0});
  d.failure_delay = DoubledDelay(s.base_delay, n, s.max_delay);
  return d;
}

FailureEffect AfterFailure(const LoginCounts& after,
                           const ThrottleSettings& s) {
  FailureEffect e;
  e.block_address =
      AtLeast(after.address_failures, s.address_failures_to_block) ||
      AtLeast(after.address_users, s.address_users_to_block);
  e.block_user = AtLeast(after.user_failures, s.user_failures_to_block);
  return e;
}

}  // namespace popgate::auth
