// One load-generating thread: its own io_uring, its own connections, users
// and counters. Workers share nothing on the hot path; the few things they
// coordinate on (the --sessions budget, hold-mode phases, Ctrl-C) are
// atomics in SharedControl.
#ifndef POPGATE_BENCH_LOADGEN_WORKER_H_
#define POPGATE_BENCH_LOADGEN_WORKER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "bench/loadgen/attack.h"
#include "bench/loadgen/connection.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/ring_loop.h"
#include "bench/loadgen/stats.h"
#include "bench/loadgen/tls_transport.h"
#include "bench/loadgen/verifier.h"

namespace popgate::loadgen {

// Hold mode: logging in the held set may take at most this long.
inline constexpr int64_t kMaxLoginPhaseNs = int64_t{300} * 1000000000;

struct SharedControl {
  int64_t start_ns = 0;
  int64_t deadline_ns = 0;  // sessions/throughput: stop starting work
  // sessions mode with --sessions N: sessions claimed so far.
  std::atomic<int64_t> sessions_started{0};
  // hold mode
  std::atomic<int> workers_logged_in{0};  // workers done logging in
  std::atomic<int64_t> held{0};           // sessions logged in and idle
  std::atomic<bool> quit_now{false};      // end the hold
  std::atomic<bool> interrupted{false};   // SIGINT/SIGTERM
};

class Worker final : public ConnectionHost, public AttackHost {
 public:
  // `tls`: the run's TLS context (null without --tls); outlives the worker.
  Worker(const Options& options, SharedControl* shared, int index,
         const TlsClient* tls);
  bool Init(std::string* error);
  void Run();

  const Stats& result() const { return stats_; }
  // When the last unit of work counted in the rates finished (a session in
  // sessions mode, a message in throughput mode); 0 if none.
  int64_t last_done_ns() const { return last_done_ns_; }

  // ConnectionHost
  RingLoop& ring() override { return ring_; }
  const Options& options() const override { return options_; }
  uint32_t NextSource() override;
  // AttackHost
  AttackStats& attack_stats() override { return stats_.attack; }
  AttackPlan& attack_plan() override { return attack_plan_; }
  void OnAttackerReady(AttackConnection* a) override;
  Stats& stats() override { return stats_; }
  ExpectedContent& expected() override { return expected_; }
  const TlsClient* tls() const override { return tls_; }
  bool stopping() const override { return stopping_; }
  void OnLoggedIn(Connection* c) override;
  void OnSessionEnd(Connection* c, bool ok) override;
  void OnMessageDone() override;

 private:
  void RunLoad();
  void RunHold();
  // Starts the next session on `c` if the run is not winding down; false if
  // it did not (no session started, `c` stays idle). `scheduled_ns`: see
  // Connection::Start.
  bool StartNext(Connection* c, int64_t scheduled_ns = 0);
  // --rate: when this worker's session number `k` is due. The run's starts
  // are evenly spaced; worker i takes every threads-th one, from the i-th.
  int64_t DueNs(int64_t k) const;
  // --rate: starts every session that is due on an idle connection; counts
  // the due ones that find none as late (they start when one frees).
  void StartDue();
  void StartQueued();
  void AbortAll();
  // One turn of the ring (wait at most `wait_ns`), then start queued
  // sessions unless `start` is false. False if the ring failed: every
  // session has then been abandoned and the worker must return.
  bool Tick(int64_t wait_ns, bool start);
  // Runs the ring until nothing is live, aborting at `abort_at_ns`.
  void Drain(int64_t abort_at_ns);
  // Hold mode: tells the main thread this worker is done logging in (once).
  void ReportLoggedIn();
  Connection* NewConnection();
  // Starts the attackers that are ready, as far as --attack-rate allows.
  void StartAttackers();
  void StopAttackers();

  const Options& options_;
  SharedControl* shared_;
  const int index_;
  const TlsClient* const tls_;
  int concurrency_ = 0;   // this worker's share of --concurrency
  int64_t hold_quota_ = 0;  // hold mode: this worker's share of --sessions
  int64_t hold_started_ = 0;
  size_t recv_buffer_ = 0;

  Stats stats_;
  ExpectedContent expected_;
  std::deque<int> free_users_;
  std::vector<Connection*> restart_;  // ended; start their next session
  std::vector<Connection*> held_;
  int64_t live_ = 0;  // connections with a session in progress
  bool stopping_ = false;
  int64_t last_done_ns_ = 0;
  bool reported_logged_in_ = false;
  uint64_t next_source_ = 0;  // --source: index of the next address
  // --rate (open loop): the idle connections, this worker's next session
  // number, and the first one not yet counted as late.
  std::vector<Connection*> idle_;
  double rate_interval_ns_ = 0;  // between two starts of the whole run
  int64_t rate_next_ = 0;
  int64_t rate_late_counted_ = 0;

  // Attack (--attackers): this worker's attackers and its share of the
  // rate cap.
  AttackPlan attack_plan_;
  int attackers_share_ = 0;
  double attack_rate_ = 0;  // attempts/s, 0 = no cap
  int64_t attack_started_ = 0;
  std::vector<AttackConnection*> attack_ready_;

  // Declared before the ring so that the ring is torn down first: no
  // operation can then complete into a freed connection.
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<AttackConnection>> attackers_;
  RingLoop ring_;
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_WORKER_H_
