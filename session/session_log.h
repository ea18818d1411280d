// The one structured log line each session ends with. Holds no secrets by
// construction: it has no field a password could go into.
#ifndef POPGATE_SESSION_SESSION_LOG_H_
#define POPGATE_SESSION_SESSION_LOG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "session/session_result.h"

namespace popgate {

// Why the last login of a session failed, as the session saw it (the
// session line's "reason" says it when the session ended on it).
enum class LoginFailure {
  kNone,
  kBadPassword,      // a file tenant's user, a wrong password
  kUnknownUser,      // no such user or no tenant for the name
  kBadCredentials,   // CR, LF or NUL in the name or password: never sent on
  kBackendRejected,  // an auth = "backend" tenant's backend said -ERR to PASS
};

struct SessionRecord {
  absl::Time start;
  // The listener's address as configured ("0.0.0.0:995").
  std::string listener;
  // How the client logged in (its last try): "USER" (USER/PASS), "PLAIN",
  // "LOGIN" (SASL); "" = it never tried.
  std::string mechanism;
  LoginFailure login_failure = LoginFailure::kNone;
  // The last login's password arriving (PASS, or the SASL step that
  // completed it) and its answer going out; InfinitePast() = none.
  absl::Time login_at = absl::InfinitePast();
  absl::Time login_answered = absl::InfinitePast();
  // The brute-force defence grew the failure delay of a login (failures
  // already counted for the address or user).
  bool throttled = false;
  // Ours, unique per process run: in the log, and to backends (XCLIENT
  // SESSION) so both logs can be joined.
  std::string session_id;
  std::string client;  // "1.2.3.4:5678"
  // The front balancer's address when the client came through its PROXY
  // header (then `client` is the header's source); "" for none.
  std::string front;
  std::string tenant;
  std::string user;        // canonical if it resolved, else as sent (escaped)
  std::string backend;     // "host:port" once chosen
  uint64_t bytes_in = 0;   // client -> backend, after login
  uint64_t bytes_out = 0;  // backend -> client, after login
  int auth_failures = 0;
  // "splice", "ktls-splice" (client TLS handed to the kernel, then
  // spliced), "copy" (TLS in user space) or "" if never forwarded.
  std::string forwarding;
  // Why a TLS session that could have gone to the kernel did not.
  std::string ktls_fallback;
  std::string tls;  // client side: "TLSv1.3" or "" for plain
  bool tls_resumed = false;
  std::string sni;
  std::string backend_tls;  // "TLSv1.3" or "" for plain
  // Backends of the user's rendezvous order passed over (down, drained,
  // full, or failed to connect) before `backend`: 0 = the first choice.
  int failovers = 0;
  // How the backend learned the client's address: "proxy-v2", "xclient",
  // or "" (it was not told).
  std::string identity;
  // The password's verdict came from the tenant's auth cache (no hash
  // ran): "auth_cache":"hit" in the line.
  bool auth_cache_hit = false;
  SessionResult result = SessionResult::kClientClosed;
  // Free text that goes with the result (a TLS error, why the backend was
  // unavailable, the backend's refusal); "" for none. Never a secret.
  std::string detail;
};

// The line's "reason": a fixed vocabulary (docs/logging.md), derived from
// the result and what the session saw, never from free text. "none" for
// a session that ended as sessions do.
std::string_view SessionReason(const SessionRecord& r);
// "info", "warning" or "error", from the reason.
LogLevel SessionLevel(const SessionRecord& r);

// {"time":...,"level":...,"event":"session","session":...,"start":...,
//  "listener":...,"client":...,...,"mechanism":...,"result":...,
//  "ended_by":...,"reason":...[,"detail":...]}\n
std::string FormatSessionLog(const SessionRecord& r, absl::Time end);
// The same line appended to `out` (the session writes it straight into
// its worker's log queue: SessionEnv::AppendLog).
void AppendSessionLog(std::string* out, const SessionRecord& r,
                      absl::Time end);

// [log] session_start: {"time":...,"level":"info","event":"session_start",
//  "session":...,"listener":...,"client":...[,"front":...]}\n
std::string FormatSessionStartLog(const SessionRecord& r, absl::Time now);
void AppendSessionStartLog(std::string* out, const SessionRecord& r,
                           absl::Time now);

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_LOG_H_
