// How a session ended: one value per way of ending, each with a stable name
// (the "result" of the session log line, and later a metric label) and the
// side that ended it ("ended_by"). Whatever varies (a TLS error string, why
// a backend was unavailable) goes into the record's free-text `detail`, never
// into the result name.
#ifndef POPGATE_SESSION_SESSION_RESULT_H_
#define POPGATE_SESSION_SESSION_RESULT_H_

#include <string_view>

#include "forward/forward_end.h"

namespace popgate {

enum class SessionResult {
  // Forwarded, and the client's QUIT ended it (the clean end).
  kOk,
  // Before login.
  kQuit,          // the client sent QUIT
  kClientClosed,  // the client closed (before login, or while forwarding)
  kClientReset,   // the client reset, or its socket failed
  kAuthFailed,    // the client left after failed logins
  kTooManyAuthFailures,  // max_auth_failures reached: we closed
  kProtocolError,        // too many invalid commands or overlong lines
  kTooManyCommands,      // max_preauth_commands reached
  kLineTooLong,          // one line without end (a slowloris)
  kIdleTimeout,          // preauth_idle_timeout, or forward_idle_timeout
  kLoginTimeout,         // login_timeout passed before a successful login
  kTlsError,             // could not even set up TLS on our side
  kTlsHandshakeFailed,   // the client's handshake failed (detail: why)
  kTlsHandshakeTimeout,  // the client's handshake did not finish in time
  kOverloaded,           // the hash pool's queue was full: -ERR [SYS/TEMP]
  kLoop,                 // the backend turned out to be us (or leads to us)
  kBackendUnavailable,   // connect/greeting/TLS to the backend failed
  kBackendRefused,       // the backend's [IN-USE]/[SYS/TEMP], relayed at once
  kBackendError,         // a backend socket failed (writing, forwarding)
  kBackendClosed,        // the backend closed first while forwarding
  kBackendReset,         // the backend reset while forwarding
  kKtlsError,            // the kernel TLS hand-off broke the connection
  kProxyError,           // our side failed while forwarding (no pipe, ...)
  // No backend of the pool could take the session (down, drained, forced
  // down; detail says which): -ERR [SYS/TEMP] without a connect attempt.
  kNoBackend,
  kBackendFull,  // max_connections reached: -ERR [SYS/TEMP]
  // The user has a session open on another backend from this process: a
  // maildrop is never open on two backends at once. -ERR [IN-USE].
  kInUse,
  kBackendCut,  // state = "down" by a reload closed the forwarded session
  // Issue 10: the front and the limits.
  kProxyHeaderError,  // PROXY header missing, malformed, truncated or late
  kProxyUntrusted,    // a proxy_protocol listener, a source not trusted
  kLimited,           // a connection limit (detail: which): [SYS/TEMP]
  kBlocked,           // the address or user is blocked for failed logins
  kStoreUnavailable,  // Redis down under redis_down = "fail_closed"
  kTenantFull,        // the tenant's max_sessions: [SYS/TEMP]
  kUserSessionsFull,  // the user's max_sessions_per_user: [IN-USE]
};

enum class EndedBy { kClient, kBackend, kProxy };

// Stable names: existing tests and operators' log queries use them. Never
// rename one; add a new value instead.
constexpr std::string_view SessionResultName(SessionResult r) {
  switch (r) {
    case SessionResult::kOk:
      return "ok";
    case SessionResult::kQuit:
      return "quit";
    case SessionResult::kClientClosed:
      return "client_closed";
    case SessionResult::kClientReset:
      return "client_reset";
    case SessionResult::kAuthFailed:
      return "auth_failed";
    case SessionResult::kTooManyAuthFailures:
      return "too_many_auth_failures";
    case SessionResult::kProtocolError:
      return "protocol_error";
    case SessionResult::kTooManyCommands:
      return "too_many_commands";
    case SessionResult::kLineTooLong:
      return "line_too_long";
    case SessionResult::kIdleTimeout:
      return "idle_timeout";
    case SessionResult::kLoginTimeout:
      return "login_timeout";
    case SessionResult::kTlsError:
      return "tls_error";
    case SessionResult::kTlsHandshakeFailed:
      return "tls_handshake_failed";
    case SessionResult::kTlsHandshakeTimeout:
      return "tls_handshake_timeout";
    case SessionResult::kOverloaded:
      return "overloaded";
    case SessionResult::kLoop:
      return "loop";
    case SessionResult::kBackendUnavailable:
      return "backend_unavailable";
    case SessionResult::kBackendRefused:
      return "backend_refused";
    case SessionResult::kBackendError:
      return "backend_error";
    case SessionResult::kBackendClosed:
      return "backend_closed";
    case SessionResult::kBackendReset:
      return "backend_reset";
    case SessionResult::kKtlsError:
      return "ktls_error";
    case SessionResult::kProxyError:
      return "proxy_error";
    case SessionResult::kNoBackend:
      return "no_backend";
    case SessionResult::kBackendFull:
      return "backend_full";
    case SessionResult::kInUse:
      return "in_use";
    case SessionResult::kBackendCut:
      return "backend_cut";
    case SessionResult::kProxyHeaderError:
      return "proxy_header_error";
    case SessionResult::kProxyUntrusted:
      return "proxy_untrusted";
    case SessionResult::kLimited:
      return "limited";
    case SessionResult::kBlocked:
      return "blocked";
    case SessionResult::kStoreUnavailable:
      return "store_unavailable";
    case SessionResult::kTenantFull:
      return "tenant_full";
    case SessionResult::kUserSessionsFull:
      return "user_sessions_full";
  }
  return "proxy_error";
}

constexpr EndedBy SessionResultEndedBy(SessionResult r) {
  switch (r) {
    case SessionResult::kOk:
    case SessionResult::kQuit:
    case SessionResult::kClientClosed:
    case SessionResult::kClientReset:
    case SessionResult::kAuthFailed:
      return EndedBy::kClient;
    case SessionResult::kBackendUnavailable:
    case SessionResult::kBackendRefused:
    case SessionResult::kBackendError:
    case SessionResult::kBackendClosed:
    case SessionResult::kBackendReset:
      return EndedBy::kBackend;
    case SessionResult::kTooManyAuthFailures:
    case SessionResult::kProtocolError:
    case SessionResult::kTooManyCommands:
    case SessionResult::kLineTooLong:
    case SessionResult::kIdleTimeout:
    case SessionResult::kLoginTimeout:
    case SessionResult::kTlsError:
    case SessionResult::kTlsHandshakeFailed:
    case SessionResult::kTlsHandshakeTimeout:
    case SessionResult::kOverloaded:
    case SessionResult::kLoop:
    case SessionResult::kKtlsError:
    case SessionResult::kProxyError:
    case SessionResult::kNoBackend:
    case SessionResult::kBackendFull:
    case SessionResult::kInUse:
    case SessionResult::kBackendCut:
    case SessionResult::kProxyHeaderError:
    case SessionResult::kProxyUntrusted:
    case SessionResult::kLimited:
    case SessionResult::kBlocked:
    case SessionResult::kStoreUnavailable:
    case SessionResult::kTenantFull:
    case SessionResult::kUserSessionsFull:
      return EndedBy::kProxy;
  }
  return EndedBy::kProxy;
}

constexpr std::string_view EndedByName(EndedBy e) {
  switch (e) {
    case EndedBy::kClient:
      return "client";
    case EndedBy::kBackend:
      return "backend";
    case EndedBy::kProxy:
      return "proxy";
  }
  return "proxy";
}

// How forwarding ended, as the session's result. A QUIT that the backend
// answered and closed on is the clean end, "ok".
constexpr SessionResult ResultOfForwardEnd(ForwardEnd e) {
  switch (e) {
    case ForwardEnd::kQuit:
      return SessionResult::kOk;
    case ForwardEnd::kClientClosed:
      return SessionResult::kClientClosed;
    case ForwardEnd::kClientReset:
      return SessionResult::kClientReset;
    case ForwardEnd::kBackendClosed:
      return SessionResult::kBackendClosed;
    case ForwardEnd::kBackendReset:
      return SessionResult::kBackendReset;
    case ForwardEnd::kIdleTimeout:
      return SessionResult::kIdleTimeout;
    case ForwardEnd::kProxyError:
      return SessionResult::kProxyError;
  }
  return SessionResult::kProxyError;
}

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_RESULT_H_
