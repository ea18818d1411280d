// What a session needs from the thread it runs on, and nothing more: the
// ring, its buffers and pipes, the hash pool, the current snapshot, a log
// sink and the registry of live sessions. The server's Worker provides it;
// unit tests provide their own over socketpairs.
#ifndef POPGATE_SESSION_SESSION_ENV_H_
#define POPGATE_SESSION_SESSION_ENV_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "auth/hash_pool.h"
#include "backend/backend_health.h"
#include "metrics/session_metrics.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "session/session_log.h"
#include "session/snapshot.h"
#include "store/limit_store.h"

namespace popgate {

// What the owner may need to cut when the shutdown grace period is over.
struct LiveSession {
  int client_fd = -1;
  int backend_fd = -1;
  // The backend it is logged in to (null before): a reload that sets the
  // backend's state = "down" cuts the session.
  const BackendHealth* backend = nullptr;
  // Set by the owner when it cut the session for that reason.
  bool cut_backend_down = false;
  // Issue 11, the admin API's view (read by the owner's thread only: the
  // admin server asks the owner for a list). The session's record (id,
  // client, tenant, user, backend, start, bytes), set at the start.
  const SessionRecord* record = nullptr;
  // Set by the owner when POST /sessions/{id}/close cut the session.
  bool cut_by_admin = false;
};

class SessionEnv {
 public:
  virtual ~SessionEnv() = default;
  // All on the env's own thread only.
  virtual Ring& ring() = 0;
  virtual BufferRing& buffers() = 0;
  virtual PipePool& pipes() = 0;
  virtual auth::HashPool& hash_pool() = 0;
  virtual std::shared_ptr<const Snapshot> snapshot() const = 0;
  virtual void Register(LiveSession* s) = 0;
  virtual void Unregister(LiveSession* s) = 0;
  // One complete log line (ending in '\n'); must not block.
  virtual void Log(std::string line) = 0;
  // `append` appends complete lines to the env's log queue itself: the
  // line each session ends with is formatted in place, with no string of
  // its own (session/session_log.h). Must not block.
  virtual void AppendLog(absl::FunctionRef<void(std::string*)> append) = 0;
  // A session id unique in this process: ours in the log, and the one
  // backends are told (XCLIENT SESSION).
  virtual std::string NewSessionId() = 0;
  // The login counters (local, or Redis shared by every instance).
  virtual store::LimitStore& limit_store() = 0;
  // Issue 11: once per session, as it ends (session/session_metrics.h
  // fills `end`); the server adds it to its worker's metrics shard.
  virtual void RecordSessionEnd(const metrics::SessionEnd& end) { (void)end; }
};

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_ENV_H_
