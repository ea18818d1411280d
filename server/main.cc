// popgate: the binary. Parses flags, loads the config, opens listeners,
// starts the workers, then waits for signals on the main thread (the only
// thread allowed to block): SIGHUP reloads, SIGTERM/SIGINT drain and exit.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/hash_pool.h"
#include "config/config.h"
#include "net/listener.h"
#include "session/session_log.h"
#include "session/snapshot.h"
#include "tls/ktls_socket.h"
#include "server/worker.h"

#ifndef POPGATE_VERSION
#define POPGATE_VERSION "0.0.0"
#endif

namespace popgate {
namespace {

void LogEvent(const std::string& event, const std::string& detail) {
  std::string line =
      absl::StrCat("{\"time\":\"",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   "\",\"event\":\"", event, "\"", detail, "}\n");
  // Main thread only: a blocking write here stalls no session.
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

void Usage() {
  fprintf(stderr,
          "usage: popgate --config FILE\n"
          "       popgate --check-config FILE\n"
          "       popgate --version\n");
}

absl::StatusOr<std::shared_ptr<const Snapshot>> LoadSnapshot(
    const std::string& path, const SnapshotDeps& deps) {
  absl::StatusOr<Config> config = LoadConfig(path);
  if (!config.ok()) return config.status();
  return Snapshot::Build(*std::move(config), deps);
}

int CheckConfig(const std::string& path) {
  // Certificates and keys are loaded for real; RSA signing runs inline.
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap =
      LoadSnapshot(path, SnapshotDeps{});
  if (!snap.ok()) {
    fprintf(stderr, "%s\n", std::string(snap.status().message()).c_str());
    return 1;
  }
  printf("%s: OK (%zu listeners, %zu tenants)\n", path.c_str(),
         (*snap)->config.listeners.size(), (*snap)->config.tenants.size());
  return 0;
}

// Each forwarded session holds two sockets and two pipes (six fds): raise
// the soft limit to the hard one so thousands of sessions fit.
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

int Serve(const std::string& path) {
  absl::StatusOr<Config> first = LoadConfig(path);
  if (!first.ok()) {
    fprintf(stderr, "%s\n", std::string(first.status().message()).c_str());
    return 1;
  }
  // TLS signing gets its own pool so a storm of slow password hashes never
  // delays handshakes (and the reverse). Ticket keys live as long as the
  // process so reloads do not break resumption.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  auth::HashPool sign_pool(cores);
  SnapshotDeps deps;
  deps.sign_pool = &sign_pool;
  // Kernel TLS needs the "tls" TCP upper-layer protocol; without it every
  // TLS session is encrypted in user space.
  deps.kernel_tls = tls::KernelTlsAvailable();
  if (first->tls.session_tickets) {
    absl::StatusOr<std::shared_ptr<tls::TicketKeys>> keys =
        tls::TicketKeys::Create(first->tls.ticket_key_rotation,
                                first->tls.ticket_key_file);
    if (!keys.ok()) {
      fprintf(stderr, "%s\n", std::string(keys.status().message()).c_str());
      return 1;
    }
    deps.ticket_keys = *std::move(keys);
  }
  absl::StatusOr<std::shared_ptr<const Snapshot>> loaded =
      Snapshot::Build(*std::move(first), deps);
  if (!loaded.ok()) {
    fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  std::shared_ptr<const Snapshot> snap = *loaded;
  const Config& config = snap->config;
  const int workers = WorkerCount(config.server);
  RaiseFdLimit();

  // Another process on one of our addresses would share it with us without
  // a word (SO_REUSEPORT): refuse unless the operator asked for a takeover.
  // Before any socket of ours exists, or the check would find itself.
  for (size_t i = 0; !config.server.takeover_listeners &&
                     i < snap->listener_addrs.size();
       ++i) {
    absl::Status s = CheckNobodyListens(snap->listener_addrs[i],
                                        config.listeners[i].ipv6_only);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  // Listening sockets first, so a bad address fails before anything runs.
  std::vector<std::vector<UniqueFd>> per_worker(workers);
  std::string listening;
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<SocketAddress> addr = ResolveHostPort(l.address);
    if (!addr.ok()) {
      fprintf(stderr, "%s\n", std::string(addr.status().message()).c_str());
      return 1;
    }
    for (int i = 0; i < workers; ++i) {
      absl::StatusOr<UniqueFd> fd = OpenListener(*addr, 4096, l.ipv6_only);
      if (!fd.ok()) {
        fprintf(stderr, "%s\n", std::string(fd.status().message()).c_str());
        return 1;
      }
      per_worker[i].push_back(*std::move(fd));
    }
    absl::StrAppend(&listening, listening.empty() ? "" : ",", "\"",
                    JsonEscape(l.address), "\"");
  }

  // Signals are taken synchronously by this thread; block them everywhere
  // before any other thread exists so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SnapshotStore store(snap);
  auth::HashPool pool(static_cast<size_t>(config.server.auth_threads));
  std::vector<std::unique_ptr<Worker>> ws;
  for (int i = 0; i < workers; ++i) {
    ws.push_back(
        std::make_unique<Worker>(i, store, pool, std::move(per_worker[i])));
    ws.back()->Start();
  }
  LogEvent("listening", absl::StrCat(",\"version\":\"", POPGATE_VERSION,
                                     "\",\"workers\":", workers,
                                     ",\"listeners\":[", listening, "]"));
  {
    // "ktls": client TLS sessions go to the kernel after login where they
    // can (the session log says which did and why others did not).
    LogEvent("tls_path",
             absl::StrCat(
                 ",\"ktls_available\":", deps.kernel_tls ? "true" : "false",
                 ",\"path\":\"", snap->use_ktls ? "ktls" : "userspace", "\""));
  }
  absl::Duration grace = config.server.shutdown_grace;
  snap.reset();

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      absl::StatusOr<std::shared_ptr<const Snapshot>> next =
          LoadSnapshot(path, deps);
      if (!next.ok()) {
        // The running config stays in force.
        LogEvent("reload_failed",
                 absl::StrCat(",\"error\":\"",
                              JsonEscape(std::string(next.status().message())),
                              "\""));
        continue;
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
        LogEvent("reload_failed",
                 ",\"error\":\"listener addresses changed: that needs a "
                 "restart; the running config stays in force\"");
        continue;
      }
      grace = (*next)->config.server.shutdown_grace;
      store.Set(*std::move(next));
      LogEvent("reloaded", "");
      continue;
    }
    LogEvent("stopping",
             absl::StrCat(",\"grace_ms\":", absl::ToInt64Milliseconds(grace)));
    absl::Time deadline = absl::Now() + grace;
    for (auto& w : ws) w->RequestStop(deadline);
    for (auto& w : ws) w->Join();
    LogEvent("stopped", "");
    return 0;
  }
}

}  // namespace
}  // namespace popgate

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    printf("popgate %s\n", POPGATE_VERSION);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
    return popgate::CheckConfig(argv[2]);
  }
  if (argc == 3 && std::strcmp(argv[1], "--config") == 0) {
    return popgate::Serve(argv[2]);
  }
  popgate::Usage();
  return 2;
}
