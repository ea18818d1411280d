#include "session/session_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/json_escape.h"
#include "base/log_line.h"

namespace popgate {
namespace {

std::string_view FailureReason(LoginFailure f) {
  switch (f) {
    case LoginFailure::kNone:
    case LoginFailure::kBadPassword:
      return "bad_password";
    case LoginFailure::kUnknownUser:
      return "unknown_user";
    case LoginFailure::kBadCredentials:
      return "bad_credentials";
    case LoginFailure::kBackendRejected:
      return "backend_rejected";
  }
  return "bad_password";
}

}  // namespace

std::string_view SessionReason(const SessionRecord& r) {
  const bool forwarded = !r.forwarding.empty();
  switch (r.result) {
    case SessionResult::kOk:
      return "none";
    case SessionResult::kQuit:
      return r.auth_failures > 0 ? FailureReason(r.login_failure) : "none";
    case SessionResult::kClientClosed:
    case SessionResult::kClientReset:
      // A forwarded session ends like this often (clients close instead
      // of QUIT); before login it ended the client's way, or on a
      // failed login it gave up after.
      if (forwarded) {
        return r.result == SessionResult::kClientClosed ? "none"
                                                        : "client_closed";
      }
      return r.auth_failures > 0 ? FailureReason(r.login_failure)
                                 : "client_closed";
    case SessionResult::kAuthFailed:
    case SessionResult::kTooManyAuthFailures:
      return FailureReason(r.login_failure);
    case SessionResult::kProtocolError:
    case SessionResult::kTooManyCommands:
    case SessionResult::kLineTooLong:
      return "protocol_error";
    case SessionResult::kIdleTimeout:
    case SessionResult::kLoginTimeout:
    case SessionResult::kTlsHandshakeTimeout:
      return "timeout";
    case SessionResult::kTlsError:
    case SessionResult::kTlsHandshakeFailed:
    case SessionResult::kKtlsError:
      return "tls_error";
    case SessionResult::kOverloaded:
      return "overloaded";
    case SessionResult::kLoop:
      return "loop";
    case SessionResult::kBackendUnavailable:
      return "backend_unavailable";
    case SessionResult::kBackendRefused:
      return "backend_refused";
    case SessionResult::kBackendError:
    case SessionResult::kBackendClosed:
    case SessionResult::kBackendReset:
      return "backend_closed";
    case SessionResult::kProxyError:
      return "proxy_error";
    case SessionResult::kNoBackend:
    case SessionResult::kBackendFull:
      return "no_backend";
    case SessionResult::kInUse:
    case SessionResult::kUserSessionsFull:
      return "in_use";
    case SessionResult::kBackendCut:
      return "backend_down";
    case SessionResult::kProxyHeaderError:
    case SessionResult::kProxyUntrusted:
      return "proxy_header";
    case SessionResult::kLimited:
    case SessionResult::kTenantFull:
      return "limited";
    case SessionResult::kBlocked:
      return "blocked";
    case SessionResult::kStoreUnavailable:
      return "store_unavailable";
  }
  return "proxy_error";
}

LogLevel SessionLevel(const SessionRecord& r) {
  const std::string_view reason = SessionReason(r);
  if (reason == "none" || reason == "client_closed" ||
      reason == "backend_closed") {
    return LogLevel::kInfo;
  }
  // Ours to fix, not the client's: a loop is a config error, a proxy
  // error a bug or a resource running out, the store an outage.
  if (reason == "proxy_error" || reason == "loop" ||
      reason == "store_unavailable") {
    return LogLevel::kError;
  }
  return LogLevel::kWarning;
}

std::string FormatSessionLog(const SessionRecord& r, absl::Time end) {
  return absl::StrCat(
      LogFrame(SessionLevel(r), "session", end), ",\"session\":\"",
      JsonEscape(r.session_id), "\",\"start\":\"", FormatLogTime(r.start),
      "\",\"listener\":\"", JsonEscape(r.listener), "\",\"client\":\"",
      JsonEscape(r.client), "\"",
      r.front.empty()
          ? ""
          : absl::StrCat(",\"front\":\"", JsonEscape(r.front), "\""),
      ",\"tenant\":\"", JsonEscape(r.tenant), "\",\"user\":\"",
      JsonEscape(r.user), "\",\"mechanism\":\"", JsonEscape(r.mechanism),
      "\",\"backend\":\"", JsonEscape(r.backend),
      "\",\"bytes_in\":", r.bytes_in, ",\"bytes_out\":", r.bytes_out,
      ",\"auth_failures\":", r.auth_failures, ",\"forwarding\":\"",
      JsonEscape(r.forwarding),
      "\",\"ktls\":", r.forwarding == "ktls-splice" ? "true" : "false",
      r.ktls_fallback.empty() ? ""
                              : absl::StrCat(",\"ktls_fallback\":\"",
                                             JsonEscape(r.ktls_fallback), "\""),
      ",\"tls\":\"", JsonEscape(r.tls),
      "\",\"tls_resumed\":", r.tls_resumed ? "true" : "false", ",\"sni\":\"",
      JsonEscape(r.sni), "\",\"backend_tls\":\"", JsonEscape(r.backend_tls),
      "\"",
      r.failovers == 0 ? "" : absl::StrCat(",\"failovers\":", r.failovers),
      r.identity.empty() ? ""
                         : absl::StrCat(",\"identity\":\"", r.identity, "\""),
      r.auth_cache_hit ? ",\"auth_cache\":\"hit\"" : "",
      r.throttled ? ",\"throttled\":true" : "",
      ",\"duration_ms\":", absl::ToInt64Milliseconds(end - r.start),
      ",\"result\":\"", std::string(SessionResultName(r.result)),
      "\",\"ended_by\":\"",
      std::string(EndedByName(SessionResultEndedBy(r.result))),
      "\",\"reason\":\"", std::string(SessionReason(r)), "\"",
      r.detail.empty()
          ? ""
          : absl::StrCat(",\"detail\":\"", JsonEscape(r.detail), "\""),
      "}\n");
}

std::string FormatSessionStartLog(const SessionRecord& r, absl::Time now) {
  return absl::StrCat(
      LogFrame(LogLevel::kInfo, "session_start", now), ",\"session\":\"",
      JsonEscape(r.session_id), "\",\"listener\":\"", JsonEscape(r.listener),
      "\",\"client\":\"", JsonEscape(r.client), "\"",
      r.front.empty()
          ? ""
          : absl::StrCat(",\"front\":\"", JsonEscape(r.front), "\""),
      "}\n");
}

}  // namespace popgate
