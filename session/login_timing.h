// The timing of failed logins. Every failed login is answered at one
// deadline, fixed when the credentials arrived (arrival +
// auth_failure_delay), with the verification and the backend's answer
// inside it, so that the reply's timing tells neither whether the user
// exists nor how costly their hash is. An unknown user waits at least as
// long as the tenant's typical verification, for setups where verification
// outlasts the delay (logged once per tenant).
#ifndef POPGATE_SESSION_LOGIN_TIMING_H_
#define POPGATE_SESSION_LOGIN_TIMING_H_

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace popgate {

// For each client read and write before login (and the TLS handshake):
// `timeout`, cut short by the login deadline (login_timeout, fixed at
// accept). A deadline already passed still gets a short timer, not zero.
absl::Duration PreLoginTimeout(absl::Duration timeout,
                               absl::Time login_deadline);

// When a failed login is answered. Fixed at PASS (or AUTH credentials)
// arrival, not when verification ends.
class FailureDeadline {
 public:
  FailureDeadline(absl::Time arrival, absl::Duration delay)
      : arrival_(arrival), at_(arrival + delay) {}
  // An unknown user: no sooner than `typical` after arrival (the tenant's
  // typical verification), so that it is not told apart by being quicker.
  void NoSoonerThan(absl::Duration typical) {
    at_ = std::max(at_, arrival_ + typical);
  }
  absl::Time at() const { return at_; }

 private:
  absl::Time arrival_;
  absl::Time at_;
};

// How long password verification takes per tenant: the median of the last
// kKept verifications, so that one slow outlier (a busy host, a cold
// cache) does not stick. Touched once per login, on a worker thread: a
// mutex is fine.
class VerificationTimes {
 public:
  static constexpr size_t kKept = 15;

  // Returns true the first time this tenant's typical verification is
  // slower than `delay` (the caller warns once).
  bool Record(const std::string& tenant, absl::Duration took,
              absl::Duration delay);
  // Zero for a tenant with no verification recorded yet.
  absl::Duration Typical(const std::string& tenant);

 private:
  struct Entry {
    absl::Duration recent[kKept] = {};
    size_t next = 0;
    size_t count = 0;
    bool warned = false;
  };
  static absl::Duration Median(const Entry& e);

  std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_tenant_;
};

// The process-wide record (all workers, all snapshots).
VerificationTimes& ProcessVerificationTimes();

// The log line (JSON, newline-terminated) of the once-only warning that a
// tenant's verification outlasts auth_failure_delay.
std::string SlowVerificationWarning(std::string_view tenant,
                                    absl::Duration took, absl::Duration delay,
                                    absl::Time now);

}  // namespace popgate

#endif  // POPGATE_SESSION_LOGIN_TIMING_H_
