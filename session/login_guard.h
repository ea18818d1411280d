// Brute-force defence around a login (auth/login_throttle.h's policy over
// the worker's limit store): before the password is checked, and after it
// failed.
#ifndef POPGATE_SESSION_LOGIN_GUARD_H_
#define POPGATE_SESSION_LOGIN_GUARD_H_

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "runtime/task.h"
#include "session/session_result.h"

namespace popgate {

struct SessionState;

struct LoginGate {
  // kOk: go on and check the password. Else refuse with `reply` (no hash
  // is run) and end the session: kBlocked, kStoreUnavailable.
  SessionResult refusal = SessionResult::kOk;
  std::string_view reply;
  // When the try fails, its -ERR goes out this long after the PASS.
  absl::Duration failure_delay;
};

// `user`: tenant-qualified canonical name ("" when the login named no
// known tenant: only the address is looked at). Exempt sources
// (s.limits_exempt) get the plain auth_failure_delay and no lookup.
Task<LoginGate> CheckLogin(SessionState& s, std::string_view user);

// Counts a failed try (address group, user, the user among the address's
// failing users) and sets blocks where the policy says; logs a block once.
Task<void> RecordFailedLogin(SessionState& s, std::string_view user);

// The key a user is counted under: unique across tenants.
std::string ThrottleUserKey(std::string_view tenant, std::string_view user);

}  // namespace popgate

#endif  // POPGATE_SESSION_LOGIN_GUARD_H_
