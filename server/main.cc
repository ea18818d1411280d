// popgate: the binary. Parses flags, loads the config, opens listeners,
// starts the workers, then waits for signals on the main thread (the only
// thread allowed to block): SIGHUP reloads, SIGTERM/SIGINT drain and exit.
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/hash_pool.h"
#include "backend/backend_health.h"
#include "backend/health_checker.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "config/config.h"
#include "metrics/registry.h"
#include "metrics/session_metrics.h"
#include "net/listener.h"
#include "runtime/ring.h"
#include "server/admin_routes.h"
#include "server/fd_budget.h"
#include "server/handover.h"
#include "server/health_targets.h"
#include "server/listener_set.h"
#include "server/log_sink.h"
#include "server/log_writer.h"
#include "server/privileges.h"
#include "server/service_notify.h"
#include "server/trim_policy.h"
#include "server/worker.h"
#include "session/session_log.h"
#include "session/snapshot.h"
#include "tls/ktls_socket.h"

#ifndef POPGATE_VERSION
#define POPGATE_VERSION "0.0.0"
#endif

namespace popgate {
namespace {

// Set while the log writer runs: from then on the main thread's events go
// through it too, so they never split a session line on a pipe.
LogWriter* g_log = nullptr;

void LogEvent(LogLevel level, std::string_view event,
              const std::string& detail) {
  std::string line = LogLine(level, event, detail);
  if (g_log != nullptr) {
    g_log->Append(line);
    return;
  }
  // Main thread only: a blocking write here stalls no session.
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

void LogEvent(std::string_view event, const std::string& detail) {
  LogEvent(LogLevel::kInfo, event, detail);
}

// Every error main reports before (or instead of) serving: one JSON line
// like every other, its text ("file:line: reason" for the config's) in
// "error". `event`: "startup_error", "config_error" (--check-config) or
// "usage_error".
void StartupError(absl::string_view message,
                  std::string_view event = "startup_error") {
  LogEvent(
      LogLevel::kError, event,
      absl::StrCat(",\"error\":\"",
                   JsonEscape(std::string_view(message.data(), message.size())),
                   "\""));
}

constexpr char kUsage[] =
    "usage: popgate --config FILE        run the proxy (in the foreground)\n"
    "       popgate --check-config FILE  load FILE, its passwd-files, "
    "certificates\n"
    "                                    and addresses, then exit: 0 if "
    "good, 1 with\n"
    "                                    \"file:line: reason\"\n"
    "       popgate --version            print the version\n"
    "       popgate --help               print this text\n"
    "FILE may also follow an '=' (--config=FILE).\n"
    "\n"
    "signals:\n"
    "  SIGHUP           reload the config: passwd-files, tenants, "
    "certificates and\n"
    "                   ticket_key_file apply to new sessions; a bad file "
    "leaves the\n"
    "                   running config in force; settings that need a "
    "restart are\n"
    "                   named in a warning\n"
    "  SIGTERM, SIGINT  close the listening sockets at once, let sessions "
    "finish for\n"
    "                   up to shutdown_grace, cut the rest (no QUIT), exit "
    "0\n"
    "\n"
    "logs: one JSON object per line (one per session, and events) on "
    "stderr, or\n"
    "      syslog or journald ([log] output; docs/logging.md); errors too.\n"
    "docs: README.md (running, configuration reference) and docs/ "
    "(architecture.md)\n"
    "      in popgate's source tree.\n";

void Usage(FILE* out) { fputs(kUsage, out); }

// The usage in one line, for the JSON usage_error on stderr.
constexpr char kShortUsage[] =
    "usage: popgate --config FILE | --check-config FILE | --version | --help";

absl::StatusOr<std::shared_ptr<const Snapshot>> LoadSnapshot(
    const std::string& path, const SnapshotDeps& deps) {
  absl::StatusOr<Config> config = LoadConfig(path);
  if (!config.ok()) return config.status();
  return Snapshot::Build(*std::move(config), deps);
}

// "file:line: ticket key file F: reason" (the line that names the file).
// The reason never quotes the file's contents.
std::string TicketKeyError(const Config& config, const absl::Status& status) {
  return WithReadableHint(absl::StrCat(config.path, ":",
                                       config.tls.ticket_key_file_line, ": ",
                                       status.message()));
}

int CheckConfig(const std::string& path) {
  // Certificates and keys are loaded for real; RSA signing runs inline.
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap =
      LoadSnapshot(path, SnapshotDeps{});
  if (!snap.ok()) {
    StartupError(snap.status().message(), "config_error");
    return 1;
  }
  if (absl::StatusOr<std::string> token = ReadAdminToken((*snap)->config);
      !token.ok()) {
    StartupError(token.status().message(), "config_error");
    return 1;
  }
  if (const ServerConfig& server = (*snap)->config.server;
      !server.user.empty()) {
    absl::StatusOr<UserIds> ids = LookUpUser(server.user, server.group);
    if (!ids.ok()) {
      StartupError(absl::StrCat(path, ":", server.user_line, ": ",
                                ids.status().message()),
                   "config_error");
      return 1;
    }
  }
  printf("%s: OK (%zu listeners, %zu tenants)\n", path.c_str(),
         (*snap)->config.listeners.size(), (*snap)->config.tenants.size());
  return 0;
}

// Each forwarded session holds two sockets (and a pipe while a burst
// moves): raise the soft limit to the hard one so thousands of sessions
// fit (server/fd_budget.h bounds the sessions by what it ends up at).
// Root may raise the hard limit too; others get their hard limit.
void RaiseFdLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlimit want{1 << 20, 1 << 20};
  if (lim.rlim_max < want.rlim_max && setrlimit(RLIMIT_NOFILE, &want) == 0) {
    return;
  }
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
}

int WorkerCount(const ServerConfig& cfg) {
  if (cfg.workers > 0) return cfg.workers;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Settings only read at start (thread counts, the ticket key set-up, the
// listening sockets' options): a reload that changes them logs them in one
// warning instead of pretending they apply.
std::vector<std::string> RestartOnlyChanges(const Config& started,
                                            const Config& next) {
  std::vector<std::string> out;
  if (next.server.workers != started.server.workers) {
    out.push_back("server.workers");
  }
  if (next.server.auth_threads != started.server.auth_threads) {
    out.push_back("server.auth_threads");
  }
  // Turning tickets off applies (new snapshots' contexts issue none);
  // turning them on needs the keys main creates at start only.
  if (next.tls.session_tickets && !started.tls.session_tickets) {
    out.push_back("tls.session_tickets");
  }
  if (next.tls.session_tickets &&
      next.tls.ticket_key_rotation != started.tls.ticket_key_rotation) {
    out.push_back("tls.ticket_key_rotation");
  }
  // The limit store (and its Redis connections) is made once at start.
  const LimitsConfig& sl = started.limits;
  const LimitsConfig& nl = next.limits;
  if (nl.redis != sl.redis) out.push_back("limits.store");
  if (nl.redis_address != sl.redis_address) {
    out.push_back("limits.redis_address");
  }
  if (nl.redis_user != sl.redis_user) out.push_back("limits.redis_user");
  if (nl.redis_password_file != sl.redis_password_file) {
    out.push_back("limits.redis_password_file");
  }
  if (nl.redis_db != sl.redis_db) out.push_back("limits.redis_db");
  if (nl.redis_prefix != sl.redis_prefix) out.push_back("limits.redis_prefix");
  if (nl.redis_timeout != sl.redis_timeout) {
    out.push_back("limits.redis_timeout");
  }
  if (nl.redis_down != sl.redis_down) out.push_back("limits.redis_down");
  // The admin API's listener and token are set up at start only.
  if (next.admin.listen != started.admin.listen) out.push_back("admin.listen");
  if (next.admin.token_file != started.admin.token_file) {
    out.push_back("admin.token_file");
  }
  if (next.admin.max_connections != started.admin.max_connections) {
    out.push_back("admin.max_connections");
  }
  if (next.admin.request_timeout != started.admin.request_timeout) {
    out.push_back("admin.request_timeout");
  }
  // Privileges are dropped once, at start.
  if (next.server.user != started.server.user) out.push_back("server.user");
  if (next.server.group != started.server.group) out.push_back("server.group");
  if (next.server.allow_root != started.server.allow_root) {
    out.push_back("server.allow_root");
  }
  // The log writer's output is opened once, at start ([log] session_start
  // applies to new sessions).
  if (next.log.output != started.log.output) out.push_back("log.output");
  if (next.log.syslog_facility != started.log.syslog_facility) {
    out.push_back("log.syslog_facility");
  }
  if (next.log.syslog_socket != started.log.syslog_socket) {
    out.push_back("log.syslog_socket");
  }
  if (next.log.journal_socket != started.log.journal_socket) {
    out.push_back("log.journal_socket");
  }
  // The hand-over socket is set up at start (and served until a hand-over).
  if (next.server.handover_socket != started.server.handover_socket) {
    out.push_back("server.handover_socket");
  }
  // Listener addresses are compared by the caller (a change is refused).
  for (size_t i = 0; i < next.listeners.size() && i < started.listeners.size();
       ++i) {
    if (next.listeners[i].ipv6_only != started.listeners[i].ipv6_only) {
      out.push_back(absl::StrCat("listener[", i, "].ipv6_only"));
    }
  }
  return out;
}

int Serve(const std::string& path) {
  absl::StatusOr<Config> first = LoadConfig(path);
  if (!first.ok()) {
    StartupError(first.status().message());
    return 1;
  }
  // Who the workers will run as, decided before anything is opened.
  absl::StatusOr<PrivilegePlan> privileges = PlanPrivileges(*first, geteuid());
  absl::StatusOr<ServiceNotifier> notifier = ServiceNotifier::FromEnvironment();
  if (!privileges.ok() || !notifier.ok()) {
    StartupError(!privileges.ok() ? privileges.status().message()
                                  : notifier.status().message());
    return 1;
  }
  // Before the first thread (the signing pool below): a thread that does
  // not block them takes a SIGHUP or SIGTERM that comes while this thread
  // is busy (a reload, the drain) and dies of it, killing the process.
  {
    sigset_t early;
    sigemptyset(&early);
    sigaddset(&early, SIGHUP);
    sigaddset(&early, SIGTERM);
    sigaddset(&early, SIGINT);
    sigaddset(&early, SIGUSR2);  // the hand-over thread's (below)
    pthread_sigmask(SIG_BLOCK, &early, nullptr);
  }
  // Before anything else runs: without io_uring nothing can (a container's
  // seccomp profile, kernel.io_uring_disabled). One line that says why and
  // what to change, exit 1.
  {
    Ring probe;
    if (absl::Status s = probe.Init(8); !s.ok()) {
      StartupError(s.message());
      return 1;
    }
  }
  // The admin API's token: read once, at start (restart-only).
  absl::StatusOr<std::string> admin_token = ReadAdminToken(*first);
  if (!admin_token.ok()) {
    StartupError(admin_token.status().message());
    return 1;
  }
  // What reloads compare against: settings read only now.
  const Config started = *first;
  // TLS signing gets its own pool so a storm of slow password hashes never
  // delays handshakes (and the reverse). Ticket keys live as long as the
  // process so reloads do not break resumption.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // Bounded like the hash pool: a full queue fails the handshake at once.
  auth::HashPool sign_pool(
      cores, static_cast<size_t>(std::max(first->server.auth_queue_limit, 0)));
  SnapshotDeps deps;
  deps.sign_pool = &sign_pool;
  // Kernel TLS needs the "tls" TCP upper-layer protocol; without it every
  // TLS session is encrypted in user space.
  deps.kernel_tls = tls::KernelTlsAvailable();
  // Backends' health outlives snapshots: a reload keeps what checks found.
  HealthRegistry health_registry;
  deps.health = &health_registry;
  if (first->tls.session_tickets) {
    absl::StatusOr<std::shared_ptr<tls::TicketKeys>> keys =
        tls::TicketKeys::Create(first->tls.ticket_key_rotation,
                                first->tls.ticket_key_file);
    if (!keys.ok()) {
      StartupError(TicketKeyError(*first, keys.status()));
      return 1;
    }
    deps.ticket_keys = *std::move(keys);
  }
  // The key file whose secret is in force (reloads re-read it).
  std::string ticket_key_file = first->tls.ticket_key_file;
  absl::StatusOr<std::shared_ptr<const Snapshot>> loaded =
      Snapshot::Build(*std::move(first), deps);
  if (!loaded.ok()) {
    StartupError(loaded.status().message());
    return 1;
  }
  std::shared_ptr<const Snapshot> snap = *loaded;
  const Config& config = snap->config;
  const int workers = WorkerCount(config.server);
  RaiseFdLimit();

  // Listening sockets first, so a bad address fails before anything runs.
  absl::StatusOr<ListenerSet> listeners = OpenListenerSet(config, workers);
  if (!listeners.ok()) {
    StartupError(listeners.status().message());
    return 1;
  }

  // Signals are taken synchronously by this thread; block them everywhere
  // before any other thread exists so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  // Raised by the hand-over thread once a new process took the sockets.
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The only writer of the log from here on (workers and this thread):
  // stderr, or the syslog/journal socket, which must be there now.
  absl::StatusOr<std::unique_ptr<LogSink>> log_sink = OpenLogSink(config.log);
  if (!log_sink.ok()) {
    StartupError(log_sink.status().message());
    return 1;
  }
  LogWriter log(STDERR_FILENO, *std::move(log_sink));
  log.Start();
  g_log = &log;
  // The sessions the descriptor limit holds (0: unknown, no bound): the
  // workers stop accepting at that many (server/fd_budget.h).
  FdOverhead fd_overhead;
  fd_overhead.workers = workers;
  for (const auto& w : listeners->per_worker) {
    fd_overhead.listening_sockets += w.size();
  }
  for (const TenantConfig& t : config.tenants) {
    fd_overhead.backends += t.spec.backends.size();
  }
  if (!config.admin.listen.empty()) {
    fd_overhead.admin_connections =
        static_cast<uint64_t>(config.admin.max_connections);
  }
  uint64_t nofile_limit = 0;
  if (rlimit nofile{}; getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile_limit = nofile.rlim_cur == RLIM_INFINITY ? 0 : nofile.rlim_cur;
    if (std::optional<std::string> w = FdLimitWarning(
            config.limits.max_connections, nofile.rlim_cur, fd_overhead)) {
      log.Append(*std::move(w));
    }
  }
  SessionFdBudget fd_budget(nofile_limit, fd_overhead);

  SnapshotStore store(snap);
  ApplyHealthPolicies(*snap);
  // Active checks on a ring of their own (never a worker's). Backends
  // start "unknown" (usable) and follow the checks: start-up does not
  // wait for them, and works with backends down.
  HealthChecker checker([&log](std::string line) { log.Append(line); });
  if (absl::Status s = checker.Start(); !s.ok()) {
    StartupError(absl::StrCat("health checker: ", s.message()));
    return 1;
  }
  checker.SetTargets(HealthTargets(*snap));
  auth::HashPool pool(static_cast<size_t>(config.server.auth_threads));
  // Metrics: one shard per worker, one shared by the other threads.
  metrics::Registry registry(workers + 1);
  metrics::SessionMetrics session_metrics(registry);
  std::vector<std::unique_ptr<Worker>> ws;
  for (int i = 0; i < workers; ++i) {
    ws.push_back(std::make_unique<Worker>(i, store, pool, log, fd_budget,
                                          std::move(listeners->per_worker[i])));
    ws.back()->SetSessionMetrics(&session_metrics);
  }
  // The admin API (its own thread and ring) once every worker exists; a
  // listener it cannot open is a start-up error like a POP3 one.
  AdminDeps admin_deps;
  admin_deps.store = &store;
  admin_deps.workers = &ws;
  admin_deps.hash_pool = &pool;
  admin_deps.sign_pool = &sign_pool;
  admin_deps.checker = &checker;
  admin_deps.fd_budget = &fd_budget;
  admin_deps.version = POPGATE_VERSION;
  admin_deps.log = [&log](std::string line) { log.Append(line); };
  AdminApi admin_api(registry, std::move(admin_deps));
  // Taking over from a running popgate: it holds a TCP admin address until
  // it has our "taken" (then it closes its admin API at once), so ours
  // starts after that. A unix admin socket is simply replaced.
  const bool admin_after_handover =
      listeners->handover.has_value() && !config.admin.listen.empty() &&
      !absl::StartsWith(config.admin.listen, "unix:");
  if (absl::Status s = admin_after_handover
                           ? absl::OkStatus()
                           : admin_api.Start(config.admin, *admin_token);
      !s.ok()) {
    StartupError(absl::StrCat(config.path, ":", config.admin.line, ": [admin] ",
                              s.message()));
    g_log = nullptr;
    log.Stop(absl::Seconds(5));
    return 1;
  }
  // Every socket is open: become the configured user before any worker
  // runs a session.
  if (absl::Status s = DropPrivileges(*privileges, OwnedSocketPaths(config));
      !s.ok()) {
    StartupError(absl::StrCat("dropping privileges: ", s.message()));
    admin_api.Stop();
    g_log = nullptr;
    log.Stop(absl::Seconds(5));
    return 1;
  }
  for (auto& w : ws) w->Start();
  for (const auto& [event, fields] : listeners->events) {
    LogEvent(LogLevel::kWarning, event, fields);
  }
  LogEvent("listening",
           absl::StrCat(",\"version\":\"", POPGATE_VERSION, "\",\"workers\":",
                        workers, ",\"listeners\":[", listeners->listening_json,
                        "]", listeners->origin_json));
  // Hand-over: every worker accepts on the sockets now, so the old
  // process may stop (the sockets never closed: nothing queued is lost).
  if (listeners->handover.has_value()) {
    const pid_t old_pid = listeners->handover->old_pid();
    absl::Status s = listeners->handover->Confirm();
    listeners->handover.reset();
    if (s.ok()) {
      LogEvent("took_over", absl::StrCat(",\"old_pid\":", old_pid));
    } else {
      // It has our "taken" or has gone: either way the sockets are ours.
      LogEvent(LogLevel::kWarning, "took_over",
               absl::StrCat(",\"old_pid\":", old_pid, ",\"warning\":\"",
                            JsonEscape(std::string(s.message())), "\""));
    }
  }
  if (admin_after_handover) {
    // The old process's admin listener closes as it reads "taken".
    absl::Status started;
    const absl::Time until = absl::Now() + absl::Seconds(3);
    do {
      started = admin_api.Start(config.admin, *admin_token);
      if (started.ok()) break;
      absl::SleepFor(absl::Milliseconds(50));
    } while (absl::Now() < until);
    if (!started.ok()) {
      LogEvent(LogLevel::kWarning, "warning",
               absl::StrCat(
                   ",\"warning\":\"",
                   JsonEscape(absl::StrCat(config.path, ":", config.admin.line,
                                           ": [admin] ", started.message(),
                                           ": serving without the admin API; "
                                           "restart popgate to get it back")),
                   "\""));
    }
  }
  // Then serve the next upgrade ourselves.
  std::atomic<pid_t> handover_pid{0};
  std::unique_ptr<HandoverServer> handover;
  if (!config.server.handover_socket.empty()) {
    handover = std::make_unique<HandoverServer>(
        config.server.handover_socket, std::move(listeners->sockets),
        listeners->release_on_stop,
        [&handover_pid, main_thread = pthread_self()](pid_t pid) {
          handover_pid.store(pid == 0 ? -1 : pid);
          // To this thread (which blocks it and takes it in sigtimedwait),
          // whatever other threads' masks are.
          pthread_kill(main_thread, SIGUSR2);
        },
        [](std::string event, std::string fields) {
          LogEvent(LogLevel::kWarning, event, fields);
        });
    if (absl::Status s = handover->Start(); !s.ok()) {
      // Serving goes on; only the next upgrade needs a restart instead.
      LogEvent(LogLevel::kWarning, "warning",
               absl::StrCat(",\"warning\":\"",
                            JsonEscape(absl::StrCat(
                                s.message(),
                                ": no zero-downtime upgrade from this "
                                "process; make the directory writable by "
                                "the user popgate runs as")),
                            "\""));
      handover.reset();
    }
  }
  listeners->sockets.clear();
  {
    // "ktls": client TLS sessions go to the kernel after login where they
    // can (the session log says which did and why others did not).
    LogEvent("tls_path",
             absl::StrCat(
                 ",\"ktls_available\":", deps.kernel_tls ? "true" : "false",
                 ",\"path\":\"", snap->use_ktls ? "ktls" : "userspace", "\""));
  }
  absl::Duration grace = config.server.shutdown_grace;
  notifier->Ready(workers, config.listeners.size());
  snap.reset();

  TrimPolicy trim(absl::Now());
  bool trim_due = false;
  while (true) {
    // Wake once a second for housekeeping when no signal comes.
    const timespec tick{1, 0};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig < 0) {
      if (errno == EAGAIN) {
        int live = 0;
        uint64_t ended = 0;
        for (auto& w : ws) {
          live += w->live_sessions();
          ended += w->sessions_ended();
        }
        if (trim_due) {
          malloc_trim(0);
          trim_due = false;
        }
        if (trim.ShouldTrim(live, ended, absl::Now())) {
          // The workers' cached blocks (frames, buffers) pin pages the trim
          // would return: they give them back at their next turn, and the trim
          // follows at the next tick.
          for (auto& w : ws) w->ReleaseCachedBlocks();
          trim_due = true;
        }
        notifier->Tick(absl::Now(), live);
      }
      continue;
    }
    if (sig == SIGHUP) {
      // The POST /reload requests this reload answers (later ones wait for
      // the SIGHUP they sent themselves).
      std::vector<admin::Respond> reload_waiters =
          admin_api.TakeReloadWaiters();
      notifier->Reloading();
      const ReloadOutcome outcome = [&]() -> ReloadOutcome {
        absl::StatusOr<std::shared_ptr<const Snapshot>> next =
            LoadSnapshot(path, deps);
        if (!next.ok()) {
          // The running config stays in force.
          LogEvent(
              LogLevel::kError, "reload_failed",
              absl::StrCat(
                  ",\"error\":\"",
                  JsonEscape(WithReadableHint(next.status().message())), "\""));
          return ReloadOutcome::Failed(
              WithReadableHint(next.status().message()));
        }
        // The sockets stay as they are; sessions index listeners by
        // position, so a reload may change a listener's settings (TLS
        // certificates, default tenant...) but not the list of addresses.
        const auto& old_listeners = store.Get()->config.listeners;
        const auto& new_listeners = (*next)->config.listeners;
        bool same = old_listeners.size() == new_listeners.size();
        for (size_t i = 0; same && i < new_listeners.size(); ++i) {
          same = old_listeners[i].address == new_listeners[i].address;
        }
        if (!same) {
          LogEvent(LogLevel::kError, "reload_failed",
                   ",\"error\":\"listener addresses changed: that needs a "
                   "restart; the running config stays in force\"");
          return ReloadOutcome::Failed(
              "listener addresses changed: that needs a "
              "restart; the running config stays in force");
        }
        const Config& next_config = (*next)->config;
        // Ticket keys are shared by every snapshot's TLS contexts: a new
        // secret applies to new tickets at once, and tickets made under the
        // old one get a full handshake (a key file is changed when its
        // secret may have leaked: the old one is not kept).
        std::string ticket_detail;
        std::string ticket_word;
        const std::string& next_key_file = next_config.tls.ticket_key_file;
        if (deps.ticket_keys != nullptr && next_config.tls.session_tickets &&
            (!next_key_file.empty() || next_key_file != ticket_key_file)) {
          absl::StatusOr<bool> changed =
              deps.ticket_keys->SetKeyFile(next_key_file);
          if (!changed.ok()) {
            LogEvent(LogLevel::kError, "reload_failed",
                     absl::StrCat(",\"error\":\"",
                                  JsonEscape(TicketKeyError(next_config,
                                                            changed.status())),
                                  "; the running config stays in force\""));
            return ReloadOutcome::Failed(
                absl::StrCat(TicketKeyError(next_config, changed.status()),
                             "; the running config stays in force"));
          }
          ticket_key_file = next_key_file;
          ticket_word = *changed ? "new" : "unchanged";
          ticket_detail =
              absl::StrCat(",\"ticket_keys\":\"", ticket_word, "\"");
        }
        const std::vector<std::string> restart =
            RestartOnlyChanges(started, next_config);
        grace = next_config.server.shutdown_grace;
        ApplyHealthPolicies(**next);
        checker.SetTargets(HealthTargets(**next));
        // Workers see the new generation and cut sessions on backends now
        // set "down".
        store.Set(*std::move(next));
        LogEvent("reloaded", ticket_detail);
        if (!restart.empty()) {
          std::string names;
          for (const std::string& n : restart) {
            absl::StrAppend(&names, names.empty() ? "" : ",", "\"",
                            JsonEscape(n), "\"");
          }
          LogEvent(LogLevel::kWarning, "warning",
                   absl::StrCat(",\"warning\":\"changed settings need a "
                                "restart to take effect; the values from the "
                                "start stay in force\",\"settings\":[",
                                names, "]"));
        }
        ReloadOutcome ok;
        ok.ok = true;
        ok.ticket_keys = ticket_word;
        ok.restart = restart;
        return ok;
      }();
      notifier->Reloaded(outcome.ok);
      admin_api.FinishReload(std::move(reload_waiters), outcome);
      continue;
    }
    // SIGUSR2 from anyone else than our hand-over thread means nothing.
    const bool handed_over = sig == SIGUSR2;
    if (handed_over && handover_pid.load() == 0) continue;
    // First, so no new process gets sockets that are being shut down.
    // A new process that got them (even if it did not confirm: it may be
    // about to) keeps them listening.
    const bool shared = handover != nullptr && handover->sockets_sent();
    if (handover != nullptr) handover->Stop();
    notifier->Stopping();
    if (handed_over) {
      LogEvent("handover", absl::StrCat(",\"new_pid\":", handover_pid.load(),
                                        ",\"grace_ms\":",
                                        absl::ToInt64Milliseconds(grace)));
    } else {
      LogEvent("stopping", absl::StrCat(",\"grace_ms\":",
                                        absl::ToInt64Milliseconds(grace)));
    }
    absl::Time deadline = absl::Now() + grace;
    // Another process accepts on the sockets (the new one, or systemd
    // holding them for the next start): stop accepting, keep them open.
    const Worker::StopMode stop_mode =
        handed_over || shared || listeners->release_on_stop
            ? Worker::StopMode::kRelease
            : Worker::StopMode::kShutdownListeners;
    // /readyz says 503 while the sessions drain; the admin API stays up
    // until the workers are done.
    admin_api.SetDraining();
    // Handed over: the new process needs our admin address now (it waits
    // for it); this one drains without its admin API.
    if (handed_over) admin_api.Stop();
    for (auto& w : ws) w->RequestStop(deadline, stop_mode);
    checker.Stop();
    for (auto& w : ws) w->Join();
    admin_api.Stop();
    LogEvent("stopped", "");
    break;
  }
  // Every line written before exit; a stuck stderr (a pipe nobody reads)
  // must not keep the process from exiting, though.
  g_log = nullptr;
  log.Stop(absl::Seconds(5));
  return 0;
}

// "--flag FILE" or "--flag=FILE": the value, or nullopt if `argv[*i]` is
// not `flag`. Advances *i past a separate value.
std::optional<std::string> FlagValue(int argc, char** argv, int* i,
                                     std::string_view flag) {
  std::string_view arg = argv[*i];
  if (arg == flag) {
    if (*i + 1 >= argc) return std::nullopt;
    ++*i;
    return std::string(argv[*i]);
  }
  if (arg.size() > flag.size() + 1 && arg.substr(0, flag.size()) == flag &&
      arg[flag.size()] == '=') {
    return std::string(arg.substr(flag.size() + 1));
  }
  return std::nullopt;
}

int Main(int argc, char** argv) {
  enum class Mode { kNone, kServe, kCheck };
  Mode mode = Mode::kNone;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      Usage(stdout);
      return 0;
    }
    if (arg == "--version") {
      printf("popgate %s\n", POPGATE_VERSION);
      return 0;
    }
    if (mode == Mode::kNone) {
      if (std::optional<std::string> v =
              FlagValue(argc, argv, &i, "--config")) {
        mode = Mode::kServe;
        file = *std::move(v);
        continue;
      }
      if (std::optional<std::string> v =
              FlagValue(argc, argv, &i, "--check-config")) {
        mode = Mode::kCheck;
        file = *std::move(v);
        continue;
      }
    }
    StartupError(
        absl::StrCat("unexpected argument \"", argv[i], "\"; ", kShortUsage),
        "usage_error");
    return 2;
  }
  if (mode == Mode::kNone || file.empty()) {
    StartupError(absl::StrCat("no config file given; ", kShortUsage),
                 "usage_error");
    return 2;
  }
  return mode == Mode::kCheck ? CheckConfig(file) : Serve(file);
}

}  // namespace
}  // namespace popgate

int main(int argc, char** argv) { return popgate::Main(argc, argv); }
