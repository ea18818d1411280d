// Active health checks: one thread with its own io_uring (never a
// worker's), one coroutine per checked backend. A check is what a login
// does up to USER: connect, the PROXY header where the pool sends one (a
// LOCAL command: the backend's listener requires the header), TLS as
// backend_tls says, the +OK greeting, CAPA when asked; then QUIT (our own
// connection, never a client's). Results go to BackendHealth::RecordCheck
// (the caller keeps BackendHealth::SetPolicy current; the checker only
// records). Every failure counts except our own lack of a socket and checks
// that Stop cut short; a refused certificate counts here (logins would fail
// the same way) though not for passive marking. With `tls = false` an
// implicit-TLS pool's check is the TCP connect alone (its greeting is
// inside TLS). docs/health-checks.md has the operator's view.
//
// Spreading: a backend's first check waits a fraction of the interval
// derived from this process's random token and the backend address, and
// every interval is jittered by up to +-10%, so N instances x M backends do
// not connect at the same instant.
#ifndef POPGATE_BACKEND_HEALTH_CHECKER_H_
#define POPGATE_BACKEND_HEALTH_CHECKER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "backend/backend_connect.h"
#include "backend/backend_health.h"
#include "config/config.h"
#include "net/socket_address.h"

namespace popgate {

struct CheckTarget {
  std::shared_ptr<BackendHealth> health;
  SocketAddress addr;
  HealthCheckConfig policy;  // policy.active is true
  // TLS as for logins (mode, context, name); buffers are the checker's.
  BackendTls tls_mode = BackendTls::kNone;
  std::shared_ptr<const tls::ClientContext> tls_ctx;
  std::string tls_name;
  absl::Duration handshake_timeout = absl::Seconds(10);
  bool proxy_v2 = false;  // the pool sends PROXY v2: checks send LOCAL
};

class HealthChecker {
 public:
  // `log`: takes one complete JSON line (called on the checker's thread);
  // thread-safe, must not block.
  explicit HealthChecker(std::function<void(std::string)> log);
  ~HealthChecker();  // Stop()

  absl::Status Start();  // the ring and the thread
  // Thread-safe: the backends to check from now on (start, every reload).
  // A target whose BackendHealth is already checked keeps its schedule
  // (and picks up the new policy); those no longer named stop.
  void SetTargets(std::vector<CheckTarget> targets);
  // True once every target named by the first SetTargets has had one
  // check (for /readyz later).
  bool FirstRoundDone() const;
  void Stop();  // ends the checks (cancels those in flight) and the thread

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace popgate

#endif  // POPGATE_BACKEND_HEALTH_CHECKER_H_
