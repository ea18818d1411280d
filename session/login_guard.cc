#include "session/login_guard.h"

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/login_throttle.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "pop3/pop3_replies.h"
#include "session/session_state.h"
#include "store/limit_store.h"

namespace popgate {
namespace {

auth::ThrottleSettings SettingsFor(const Config& c) {
  auth::ThrottleSettings s;
  s.base_delay = c.server.auth_failure_delay;
  s.max_delay = c.limits.max_failure_delay;
  s.window = c.limits.failure_window;
  s.address_failures_to_block = c.limits.address_failures_to_block;
  s.user_failures_to_block = c.limits.user_failures_to_block;
  s.address_users_to_block = c.limits.address_users_to_block;
  s.block_time = c.limits.block_time;
  return s;
}

// One line per block set: who, why, until when. The user key is split
// back into tenant and canonical name (no NUL goes into the log); no
// password is anywhere near this.
std::string BlockEvent(std::string_view address, std::string_view user_key,
                       const char* reason, absl::Time now,
                       absl::Duration block_time) {
  std::string_view tenant;
  std::string_view user;
  if (const size_t nul = user_key.find('\0'); nul != std::string_view::npos) {
    tenant = user_key.substr(0, nul);
    user = user_key.substr(nul + 1);
  }
  const absl::TimeZone utc = absl::UTCTimeZone();
  return absl::StrCat(
      LogFrame(LogLevel::kWarning, "login_block", now), ",\"address\":\"",
      JsonEscape(address), "\",\"user\":\"", JsonEscape(user),
      "\",\"tenant\":\"", JsonEscape(tenant), "\",\"reason\":\"", reason,
      "\",\"until\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", now + block_time, utc), "\"}\n");
}

}  // namespace

Task<LoginGate> CheckLogin(SessionState& s, std::string_view user) {
  LoginGate gate;
  const Config& config = s.snap->config;
  gate.failure_delay = config.server.auth_failure_delay;
  if (s.limits_exempt) co_return gate;

  const auth::ThrottleSettings settings = SettingsFor(config);
  const store::LoginKey key{s.address_group, std::string(user)};
  absl::StatusOr<auth::LoginCounts> counts =
      co_await s.worker.limit_store().Look(key, settings);
  if (!counts.ok()) {
    // fail_closed and the shared store cannot answer: nobody's password
    // is checked until it can (a fail_open store never gets here).
    gate.refusal = SessionResult::kStoreUnavailable;
    gate.reply = replies::kLoginServiceUnavailable;
    s.rec.detail = "limit store unavailable";
    co_return gate;
  }
  const auth::ThrottleDecision d = auth::Decide(*counts, settings);
  gate.failure_delay = d.failure_delay;
  switch (d.verdict) {
    case auth::ThrottleVerdict::kAllow:
      break;
    case auth::ThrottleVerdict::kAddressBlocked:
      gate.refusal = SessionResult::kBlocked;
      gate.reply = replies::kLoginBlocked;
      s.rec.detail = "address blocked";
      break;
    case auth::ThrottleVerdict::kUserBlocked:
      gate.refusal = SessionResult::kBlocked;
      gate.reply = replies::kLoginBlocked;
      s.rec.detail = "user blocked";
      break;
  }
  co_return gate;
}

Task<void> RecordFailedLogin(SessionState& s, std::string_view user) {
  if (s.limits_exempt) co_return;
  const Config& config = s.snap->config;
  const auth::ThrottleSettings settings = SettingsFor(config);
  const store::LoginKey key{s.address_group, std::string(user)};
  absl::StatusOr<auth::LoginCounts> after =
      co_await s.worker.limit_store().RecordFailure(key, settings);
  // A store that cannot count this one: the next CheckLogin says so.
  if (!after.ok()) co_return;
  const absl::Time now = absl::Now();
  if (after->address_block_new) {
    const int threshold = settings.address_failures_to_block;
    const char* const reason =
        threshold > 0 && after->address_failures >= threshold
            ? "address_failures"
            : "address_users";
    s.worker.Log(
        BlockEvent(key.address, key.user, reason, now, settings.block_time));
  }
  if (after->user_block_new) {
    s.worker.Log(BlockEvent(key.address, key.user, "user_failures", now,
                            settings.block_time));
  }
}

std::string ThrottleUserKey(std::string_view tenant, std::string_view user) {
  if (user.empty()) return "";
  // Tenant names hold no NUL: "a" + "\0b@x" cannot equal "a\0b" + "@x".
  std::string key;
  key.reserve(tenant.size() + 1 + user.size());
  key += tenant;
  key.push_back('\0');
  key += user;
  return key;
}

}  // namespace popgate
