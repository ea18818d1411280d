// PLACEHOLDER (issue 10 contract): the fixed failure delay of before.
#include "session/login_guard.h"

#include "absl/strings/str_cat.h"
#include "session/session_state.h"

namespace popgate {

Task<LoginGate> CheckLogin(SessionState& s, std::string_view) {
  LoginGate gate;
  gate.failure_delay = s.snap->config.server.auth_failure_delay;
  co_return gate;
}

Task<void> RecordFailedLogin(SessionState&, std::string_view) { co_return; }

std::string ThrottleUserKey(std::string_view tenant, std::string_view user) {
  if (user.empty()) return "";
  // Tenant names hold no NUL: "a" + "\0b@x" cannot equal "a\0b" + "@x".
  std::string key(tenant);
  key.push_back('\0');
  key += user;
  return key;
}

}  // namespace popgate
