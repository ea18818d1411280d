#include "session/session_log.h"

#include "absl/strings/str_cat.h"
#include "base/absl_view.h"
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

namespace {

// ,"key":"escaped value"
void AppendField(std::string* out, std::string_view key,
                 std::string_view value) {
  absl::StrAppend(out, ",\"", AbslView(key), "\":\"");
  AppendJsonEscaped(out, value);
  out->push_back('"');
}

std::string_view Bool(bool b) { return b ? "true" : "false"; }

}  // namespace

// Field by field into `out`: no string per field, none for the line (the
// worker's log queue keeps its capacity from turn to turn).
void AppendSessionLog(std::string* out, const SessionRecord& r,
                      absl::Time end) {
  AppendLogFrame(out, SessionLevel(r), "session", end);
  AppendField(out, "session", r.session_id);
  out->append(",\"start\":\"");
  AppendLogTime(out, r.start);
  out->push_back('"');
  AppendField(out, "listener", r.listener);
  AppendField(out, "client", r.client);
  if (!r.front.empty()) AppendField(out, "front", r.front);
  AppendField(out, "tenant", r.tenant);
  AppendField(out, "user", r.user);
  AppendField(out, "mechanism", r.mechanism);
  AppendField(out, "backend", r.backend);
  absl::StrAppend(out, ",\"bytes_in\":", r.bytes_in,
                  ",\"bytes_out\":", r.bytes_out,
                  ",\"auth_failures\":", r.auth_failures);
  AppendField(out, "forwarding", r.forwarding);
  absl::StrAppend(out,
                  ",\"ktls\":", AbslView(Bool(r.forwarding == "ktls-splice")));
  if (!r.ktls_fallback.empty()) {
    AppendField(out, "ktls_fallback", r.ktls_fallback);
  }
  AppendField(out, "tls", r.tls);
  absl::StrAppend(out, ",\"tls_resumed\":", AbslView(Bool(r.tls_resumed)));
  AppendField(out, "sni", r.sni);
  AppendField(out, "backend_tls", r.backend_tls);
  if (r.failovers != 0) absl::StrAppend(out, ",\"failovers\":", r.failovers);
  if (!r.identity.empty()) AppendField(out, "identity", r.identity);
  if (r.auth_cache_hit) out->append(",\"auth_cache\":\"hit\"");
  if (r.throttled) out->append(",\"throttled\":true");
  absl::StrAppend(
      out, ",\"duration_ms\":", absl::ToInt64Milliseconds(end - r.start));
  AppendField(out, "result", SessionResultName(r.result));
  AppendField(out, "ended_by", EndedByName(SessionResultEndedBy(r.result)));
  AppendField(out, "reason", SessionReason(r));
  if (!r.detail.empty()) AppendField(out, "detail", r.detail);
  out->append("}\n");
}

std::string FormatSessionLog(const SessionRecord& r, absl::Time end) {
  std::string out;
  AppendSessionLog(&out, r, end);
  return out;
}

void AppendSessionStartLog(std::string* out, const SessionRecord& r,
                           absl::Time now) {
  AppendLogFrame(out, LogLevel::kInfo, "session_start", now);
  AppendField(out, "session", r.session_id);
  AppendField(out, "listener", r.listener);
  AppendField(out, "client", r.client);
  if (!r.front.empty()) AppendField(out, "front", r.front);
  out->append("}\n");
}

std::string FormatSessionStartLog(const SessionRecord& r, absl::Time now) {
  std::string out;
  AppendSessionStartLog(&out, r, now);
  return out;
}

}  // namespace popgate
