// The run's result: one JSON object for programs (bench/compare parses it;
// keep the keys stable) and a few lines for people.
#ifndef POPGATE_BENCH_LOADGEN_REPORT_H_
#define POPGATE_BENCH_LOADGEN_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "bench/loadgen/options.h"
#include "bench/loadgen/stats.h"

namespace popgate::loadgen {

struct Report {
  Mode mode = Mode::kSessions;
  std::string target;
  int concurrency = 0;
  int threads = 0;
  bool verify = true;
  TlsMode tls = TlsMode::kNone;
  bool tls_resume = false;
  TlsVersion tls_version = TlsVersion::kAny;
  TlsSigalgs tls_sigalgs = TlsSigalgs::kAny;
  // The measured window: first connect to the last counted session
  // (sessions, handshakes) or message (throughput); the idle time (hold).
  double duration_s = 0;
  double wall_s = 0;  // the whole run, drain included
  Stats stats;
  uint64_t held = 0;
  // Hold mode: first connect until every login had finished.
  double hold_fill_s = 0;
  uint64_t held_at_fill = 0;  // sessions logged in at that moment
  std::optional<uint64_t> rss_before_bytes;
  std::optional<uint64_t> rss_during_bytes;
  std::optional<int64_t> rss_per_session_bytes;
  double loadgen_cpu_s = 0;
  // --attackers given: the login latency and the "attack" object are
  // reported (absent otherwise, so the other runs' JSON stays as it was).
  bool attack = false;
  int attackers = 0;
  AttackPattern attack_pattern = AttackPattern::kSpray;
  size_t attack_sources = 0;
  size_t attack_users = 0;
  double attack_rate = 0;
  size_t sources = 0;  // --source addresses of the good sessions
  double offered_rate = 0;  // --rate (0: closed loop)
};

std::string ToJson(const Report& report);
std::string Summary(const Report& report);

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_REPORT_H_
