// session_metrics_bench: what the metrics cost each session at its end, on
// the worker thread: SessionEndFrom (the record -> SessionEnd view) and
// SessionMetrics::RecordSessionEnd into the worker's shard (counters and
// histograms, label sets already seen: the steady state). Also the
// session's log line beside it, for scale. The figures are in
// docs/logging.md ("Metrics from the same record").
//
// Run: session_metrics_bench [--benchmark_filter=...] (a few seconds).
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "metrics/registry.h"
#include "metrics/session_metrics.h"
#include "session/session_log.h"
#include "session/session_metrics.h"

namespace popgate {
namespace {

SessionRecord Forwarded() {
  SessionRecord r;
  r.start = absl::Now() - absl::Seconds(2);
  r.session_id = "6f1c2a9e-0-1b";
  r.listener = "0.0.0.0:995";
  r.client = "198.51.100.7:51234";
  r.tenant = "example-com";
  r.user = "alice@example.com";
  r.mechanism = "USER";
  r.backend = "10.0.1.3:110";
  r.bytes_in = 24;
  r.bytes_out = 51200;
  r.forwarding = "splice";
  r.tls = "TLSv1.3";
  r.login_at = r.start + absl::Milliseconds(20);
  r.login_answered = r.login_at + absl::Milliseconds(3);
  r.result = SessionResult::kOk;
  return r;
}

SessionRecord Failed() {
  SessionRecord r = Forwarded();
  r.forwarding.clear();
  r.backend.clear();
  r.bytes_in = r.bytes_out = 0;
  r.auth_failures = 1;
  r.login_failure = LoginFailure::kBadPassword;
  r.throttled = true;
  r.result = SessionResult::kAuthFailed;
  return r;
}

void BM_SessionEndFrom(benchmark::State& state) {
  const SessionRecord r = Forwarded();
  const absl::Time end = absl::Now();
  for (auto _ : state) {
    metrics::SessionEnd e = SessionEndFrom(r, r.listener, end);
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_SessionEndFrom);

// The whole per-session cost: the view plus Record into shard 0.
void Record(benchmark::State& state, const SessionRecord& r) {
  metrics::Registry registry(3);
  metrics::SessionMetrics m(registry);
  const absl::Time end = absl::Now();
  for (auto _ : state) {
    m.RecordSessionEnd(0, SessionEndFrom(r, r.listener, end));
  }
}
void BM_RecordForwarded(benchmark::State& state) { Record(state, Forwarded()); }
BENCHMARK(BM_RecordForwarded);
void BM_RecordFailedLogin(benchmark::State& state) { Record(state, Failed()); }
BENCHMARK(BM_RecordFailedLogin);

// For scale: the session's JSON log line, made in the same place.
void BM_FormatSessionLog(benchmark::State& state) {
  const SessionRecord r = Forwarded();
  const absl::Time end = absl::Now();
  for (auto _ : state) {
    std::string line = FormatSessionLog(r, end);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_FormatSessionLog);

}  // namespace
}  // namespace popgate

BENCHMARK_MAIN();
