// The admin API of the popgate binary (docs/admin-api.md): the metrics the
// server side knows (build, workers, live and ended sessions per worker,
// hash and signing pools, backends' health, admin states and sessions,
// reloads, uptime) beside the sessions' own (metrics::SessionMetrics), and
// the routes: GET /metrics /healthz /readyz /sessions, POST
// /backends/{addr}/drain|up|down, /sessions/{id}/close, /reload. The HTTP
// server runs on its own thread (admin/http_server.h); everything it asks
// a worker goes through Worker::RunOnLoop and is answered from there, and
// a reload is main's own (SIGHUP) path: nothing here blocks a worker.
#ifndef POPGATE_SERVER_ADMIN_ROUTES_H_
#define POPGATE_SERVER_ADMIN_ROUTES_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "admin/http_server.h"
#include "auth/hash_pool.h"
#include "backend/health_checker.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "metrics/session_metrics.h"
#include "server/fd_budget.h"
#include "server/worker.h"
#include "session/snapshot.h"

namespace popgate {

// The token file's first line: 1..4096 printable ASCII characters (no
// blanks). Errors say "config:line: admin token_file FILE: why" and never
// quote the file.
absl::StatusOr<std::string> ReadAdminToken(const Config& config);

// How a reload went, for POST /reload's answer (main fills it).
struct ReloadOutcome {
  bool ok = false;
  std::string error;                 // when !ok
  std::string ticket_keys;           // "new", "unchanged" or ""
  std::vector<std::string> restart;  // settings that need a restart

  static ReloadOutcome Failed(std::string why) {
    ReloadOutcome o;
    o.error = std::move(why);
    return o;
  }
};

struct AdminDeps {
  SnapshotStore* store = nullptr;
  // Started (their threads run) before AdminApi::Start; joined after Stop.
  std::vector<std::unique_ptr<Worker>>* workers = nullptr;
  auth::HashPool* hash_pool = nullptr;
  auth::HashPool* sign_pool = nullptr;
  HealthChecker* checker = nullptr;
  // The sessions the descriptor limit holds (null: no metrics for it).
  const SessionFdBudget* fd_budget = nullptr;
  std::string version;
  // One complete JSON line; thread-safe, never blocks.
  std::function<void(std::string)> log;
};

class AdminApi {
 public:
  // Registers the server's metrics in `registry` (the sessions' are
  // registered by whoever made `registry`, beside it).
  AdminApi(metrics::Registry& registry, AdminDeps deps);
  ~AdminApi();

  // Starts the HTTP server when `config.listen` is set (a no-op
  // otherwise); `token` from ReadAdminToken. After the listeners are open
  // and the workers run.
  absl::Status Start(const AdminConfig& config, std::string token);
  // SIGTERM: /readyz answers 503 from now on (the server keeps serving
  // while sessions drain).
  void SetDraining() { draining_.store(true, std::memory_order_release); }
  // After the workers have been joined.
  void Stop();

  // The main thread's reload path: at a SIGHUP take the POST /reload
  // requests waiting for it, reload, then answer them and count it.
  std::vector<admin::Respond> TakeReloadWaiters();
  void FinishReload(std::vector<admin::Respond> waiters,
                    const ReloadOutcome& outcome);

 private:
  void Routes();
  void Sessions(const admin::HttpRequest& req, admin::Respond respond);
  void CloseSession(const admin::HttpRequest& req, admin::Respond respond);
  void SetBackendState(const admin::HttpRequest& req, admin::Respond respond,
                       routing::AdminState state);
  void Reload(admin::Respond respond);

  metrics::Registry& registry_;
  AdminDeps deps_;
  const absl::Time started_;
  std::atomic<bool> draining_{false};
  metrics::CounterFamily& reloads_;
  std::atomic<int> last_reload_ok_{1};
  std::unique_ptr<admin::HttpServer> server_;
  std::mutex reload_mu_;
  std::vector<admin::Respond> reload_waiters_;
};

}  // namespace popgate

#endif  // POPGATE_SERVER_ADMIN_ROUTES_H_
