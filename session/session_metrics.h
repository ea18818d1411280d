// A session's contribution to the metrics, from its record: what the one
// call at the session's end (session.cc, next to the session log line)
// passes on,
//   worker.RecordSessionEnd(SessionEndFrom(s->rec, s->rec.listener, end));
// (SessionEnv::RecordSessionEnd; the server adds it to the worker's shard
// of metrics::SessionMetrics).
#ifndef POPGATE_SESSION_SESSION_METRICS_H_
#define POPGATE_SESSION_SESSION_METRICS_H_

#include <string_view>

#include "absl/time/time.h"
#include "metrics/session_metrics.h"
#include "session/session_log.h"

namespace popgate {

// The views point into `rec` and `listener`: pass the result on at once.
// Derived from the record: result, tenant, bytes, forwarding path, client
// TLS version and resumption, duration; login_result "ok" for a forwarded
// session, "failed" after failed logins, "refused" for a refusal by the
// limits or a backend; refusal "limited" or "blocked" from the result,
// else "throttled" when the defence grew a login's failure delay;
// mechanism ("user", "plain", "login") and login_seconds (the last
// login's password to its answer) from what session.cc recorded.
metrics::SessionEnd SessionEndFrom(const SessionRecord& rec,
                                   std::string_view listener, absl::Time end);

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_METRICS_H_
