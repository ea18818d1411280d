// loadgen: POP3 load generator on io_uring. See Usage() in options.cc.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/proc_rss.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/tls_transport.h"
#include "bench/loadgen/worker.h"

namespace popgate::loadgen {
namespace {

constexpr int64_t kNsPerS = 1000000000;

SharedControl* g_shared = nullptr;

void OnSignal(int) {
  if (g_shared != nullptr) g_shared->interrupted.store(true);
}

// The first SIGINT/SIGTERM asks for a graceful stop (finish, report); the
// handler then resets itself, so a second one kills the process.
void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Last line of defence for "the run always ends by itself": whatever goes
// wrong (a bug, a wedged kernel object), the process exits at `limit_ns`,
// or io_timeout + 5 s after an interrupt.
void StartWatchdog(int64_t limit_ns, double io_timeout_s,
                   const SharedControl* shared) {
  std::thread([=] {
    int64_t interrupted_at = 0;
    while (true) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      int64_t now = NowNs();
      if (interrupted_at == 0 && shared->interrupted.load()) {
        interrupted_at = now;
      }
      bool overdue =
          now >= limit_ns ||
          (interrupted_at != 0 &&
           now - interrupted_at >
               static_cast<int64_t>((io_timeout_s + 5) * kNsPerS));
      if (overdue) {
        std::fputs("loadgen: run did not end in time; exiting\n", stderr);
        std::_Exit(3);
      }
    }
  }).detach();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// Hold mode and high concurrency need one descriptor per connection.
void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Sleeps until `until_ns` or an interrupt, in short steps.
void SleepUntil(int64_t until_ns, const SharedControl& shared) {
  while (NowNs() < until_ns && !shared.interrupted.load()) {
    int64_t left = until_ns - NowNs();
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(std::min<int64_t>(left, 20000000)));
  }
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Options options;
  std::string error;
  if (!ParseOptions(args, &options, &error)) {
    std::fprintf(stderr, "loadgen: %s\n\n%s", error.c_str(), Usage().c_str());
    return 2;
  }
  if (options.help) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  RaiseFdLimit();
  signal(SIGPIPE, SIG_IGN);

  SharedControl shared;
  g_shared = &shared;
  InstallSignalHandlers();

  Report report;
  report.mode = options.mode;
  report.target = options.target.text;
  report.concurrency = options.concurrency;
  report.threads = options.threads;
  report.verify = options.verify;
  report.attack = options.attack;
  report.attackers = options.attackers;
  report.attack_pattern = options.attack_pattern;
  report.attack_sources = options.attack_sources.size();
  report.attack_users = options.attack_users.size();
  report.attack_rate = options.attack_rate;
  report.sources = options.sources.size();
  report.offered_rate = options.rate;

  if (options.mode == Mode::kHold && !options.pids.empty()) {
    uint64_t rss = 0;
    if (!ReadRssBytes(options.pids, &rss, &error)) {
      std::fprintf(stderr, "loadgen: %s\n", error.c_str());
      return 2;
    }
    report.rss_before_bytes = rss;
  }

  std::unique_ptr<TlsClient> tls;
  if (options.tls != TlsMode::kNone) {
    tls = TlsClient::Create(options, &error);
    if (tls == nullptr) {
      std::fprintf(stderr, "loadgen: %s\n", error.c_str());
      return 2;
    }
  }
  report.tls = options.tls;
  report.tls_resume = options.tls_resume;
  report.tls_version = options.tls_version;
  report.tls_sigalgs = options.tls_sigalgs;

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.threads; ++i) {
    workers.push_back(
        std::make_unique<Worker>(options, &shared, i, tls.get()));
    if (!workers.back()->Init(&error)) {
      std::fprintf(stderr, "loadgen: %s\n", error.c_str());
      return 2;
    }
  }

  const double cpu_start = CpuSeconds();
  shared.start_ns = NowNs();
  shared.deadline_ns =
      shared.start_ns + static_cast<int64_t>(options.duration_s * kNsPerS);
  // Generous: the run itself, hold mode's login phase, and the drains.
  StartWatchdog(shared.deadline_ns + kMaxLoginPhaseNs +
                    static_cast<int64_t>((4 * options.io_timeout_s + 60) *
                                         kNsPerS),
                options.io_timeout_s, &shared);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });

  if (options.mode == Mode::kHold) {
    // Workers bound their own login phase; wait for all of them.
    while (shared.workers_logged_in.load(std::memory_order_acquire) <
           options.threads) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const int64_t hold_start = NowNs();
    const int64_t hold_ns = static_cast<int64_t>(options.duration_s * kNsPerS);
    const int64_t held_at_sample = shared.held.load();
    report.hold_fill_s = (hold_start - shared.start_ns) / 1e9;
    report.held_at_fill = static_cast<uint64_t>(held_at_sample);
    // The cue for a caller that samples the target's memory itself (e.g.
    // a forking server's whole process tree) and then ends the hold early
    // with SIGINT.
    std::fprintf(stderr, "loadgen: holding %lld sessions\n",
                 static_cast<long long>(held_at_sample));
    std::fflush(stderr);
    // Sample the target's memory mid-hold, once it has settled.
    SleepUntil(hold_start + hold_ns / 2, shared);
    if (!options.pids.empty()) {
      uint64_t rss = 0;
      if (ReadRssBytes(options.pids, &rss, &error)) {
        report.rss_during_bytes = rss;
        if (held_at_sample > 0) {
          report.rss_per_session_bytes =
              (static_cast<int64_t>(rss) -
               static_cast<int64_t>(*report.rss_before_bytes)) /
              held_at_sample;
        }
      } else {
        std::fprintf(stderr, "loadgen: %s\n", error.c_str());
      }
    }
    SleepUntil(hold_start + hold_ns, shared);
    report.duration_s = (NowNs() - hold_start) / 1e9;
    shared.quit_now.store(true, std::memory_order_release);
  }
  for (auto& t : threads) t.join();
  const int64_t end_ns = NowNs();

  int64_t last_done = 0;
  for (auto& w : workers) {
    report.stats.Merge(w->result());
    last_done = std::max(last_done, w->last_done_ns());
  }
  if (options.mode != Mode::kHold) {
    report.duration_s =
        last_done > shared.start_ns ? (last_done - shared.start_ns) / 1e9 : 0;
  } else {
    report.held = report.stats.sessions;
  }
  report.wall_s = (end_ns - shared.start_ns) / 1e9;
  report.loadgen_cpu_s = CpuSeconds() - cpu_start;

  std::fputs(Summary(report).c_str(), stderr);
  std::printf("%s\n", ToJson(report).c_str());
  std::fflush(stdout);
  return report.stats.errors_total() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace popgate::loadgen

int main(int argc, char** argv) { return popgate::loadgen::Main(argc, argv); }
