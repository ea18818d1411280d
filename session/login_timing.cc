#include "session/login_timing.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/json_escape.h"
#include "base/log_line.h"

namespace popgate {
namespace {

// A deadline already passed still gets a timer this long rather than zero.
constexpr absl::Duration kMinTimeout = absl::Milliseconds(1);

}  // namespace

absl::Duration PreLoginTimeout(absl::Duration timeout,
                               absl::Time login_deadline) {
  return std::min(timeout, std::max(login_deadline - absl::Now(), kMinTimeout));
}

bool VerificationTimes::Record(const std::string& tenant, absl::Duration took,
                               absl::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = by_tenant_[tenant];
  e.recent[e.next] = took;
  e.next = (e.next + 1) % kKept;
  e.count = std::min(e.count + 1, kKept);
  if (!e.warned && Median(e) > delay) {
    e.warned = true;
    return true;
  }
  return false;
}

absl::Duration VerificationTimes::Typical(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_tenant_.find(tenant);
  return it == by_tenant_.end() ? absl::ZeroDuration() : Median(it->second);
}

absl::Duration VerificationTimes::Median(const Entry& e) {
  if (e.count == 0) return absl::ZeroDuration();
  absl::Duration v[kKept];
  std::copy(e.recent, e.recent + e.count, v);
  std::nth_element(v, v + e.count / 2, v + e.count);
  return v[e.count / 2];
}

VerificationTimes& ProcessVerificationTimes() {
  static VerificationTimes* const times = new VerificationTimes();
  return *times;
}

std::string SlowVerificationWarning(std::string_view tenant,
                                    absl::Duration took, absl::Duration delay,
                                    absl::Time now) {
  return absl::StrCat(
      LogFrame(LogLevel::kWarning, "warning", now),
      ",\"warning\":\"password "
      "verification takes longer than auth_failure_delay; unknown "
      "users are delayed as long\",\"tenant\":\"",
      JsonEscape(tenant), "\",\"verify_ms\":", absl::ToInt64Milliseconds(took),
      ",\"auth_failure_delay_ms\":", absl::ToInt64Milliseconds(delay), "}\n");
}

}  // namespace popgate
