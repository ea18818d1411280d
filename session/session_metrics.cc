#include "session/session_metrics.h"

#include "session/session_result.h"

namespace popgate {

metrics::SessionEnd SessionEndFrom(const SessionRecord& rec,
                                   std::string_view listener, absl::Time end) {
  metrics::SessionEnd e;
  e.listener = listener;
  e.tenant = rec.tenant;
  e.result = SessionResultName(rec.result);
  e.duration_seconds = absl::ToDoubleSeconds(end - rec.start);
  e.bytes_in = rec.bytes_in;
  e.bytes_out = rec.bytes_out;
  e.forwarding = rec.forwarding;
  e.tls_version = rec.tls;
  e.tls_resumed = rec.tls_resumed;
  // The metric's label values are lower case (metrics/session_metrics.h).
  if (rec.mechanism == "USER") {
    e.mechanism = "user";
  } else if (rec.mechanism == "PLAIN") {
    e.mechanism = "plain";
  } else if (rec.mechanism == "LOGIN") {
    e.mechanism = "login";
  }
  if (rec.login_at != absl::InfinitePast() &&
      rec.login_answered >= rec.login_at) {
    e.login_seconds = absl::ToDoubleSeconds(rec.login_answered - rec.login_at);
  }
  switch (rec.result) {
    case SessionResult::kLimited:
    case SessionResult::kTenantFull:
    case SessionResult::kUserSessionsFull:
      e.refusal = "limited";
      break;
    case SessionResult::kBlocked:
      e.refusal = "blocked";
      break;
    default:
      // A login slowed down by the brute-force defence but not refused.
      if (rec.throttled) e.refusal = "throttled";
      break;
  }
  if (!rec.forwarding.empty()) {
    e.login_result = "ok";
  } else if (rec.auth_failures > 0) {
    e.login_result = "failed";
  } else if (!rec.user.empty() && (!e.refusal.empty() || !rec.backend.empty() ||
                                   rec.result == SessionResult::kNoBackend ||
                                   rec.result == SessionResult::kBackendFull ||
                                   rec.result == SessionResult::kInUse ||
                                   rec.result == SessionResult::kOverloaded)) {
    e.login_result = "refused";
  }
  return e;
}

}  // namespace popgate
