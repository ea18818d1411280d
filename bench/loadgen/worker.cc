#include "bench/loadgen/worker.h"

#include <algorithm>
#include <cstdio>

namespace popgate::loadgen {
namespace {

constexpr int64_t kNsPerS = 1000000000;
// The ring wait is bounded so deadlines and cross-thread flags are noticed
// promptly even when no completion arrives.
constexpr int64_t kTickNs = 20 * 1000000;

int64_t Share(int64_t total, int parts, int index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

}  // namespace

Worker::Worker(const Options& options, SharedControl* shared, int index,
               const TlsClient* tls)
    : options_(options),
      shared_(shared),
      index_(index),
      tls_(tls),
      attack_plan_(options, index, options.threads) {}

bool Worker::Init(std::string* error) {
  concurrency_ =
      static_cast<int>(Share(options_.concurrency, options_.threads, index_));
  if (options_.mode == Mode::kHold) {
    hold_quota_ = Share(options_.sessions, options_.threads, index_);
  }
  // Users i with i % threads == index belong to this worker, so no user is
  // ever logged in twice at once, across threads included.
  for (int i = index_; i < options_.users; i += options_.threads) {
    free_users_.push_back(i);
  }
  recv_buffer_ = options_.recv_buffer;
  if (recv_buffer_ == 0) {
    switch (options_.mode) {
      case Mode::kThroughput: recv_buffer_ = 128 * 1024; break;
      case Mode::kSessions: recv_buffer_ = 16 * 1024; break;
      case Mode::kHandshakes: recv_buffer_ = 16 * 1024; break;
      case Mode::kHold: recv_buffer_ = 4 * 1024; break;
    }
  }
  attackers_share_ =
      static_cast<int>(Share(options_.attackers, options_.threads, index_));
  attack_rate_ = options_.attack_rate / options_.threads;
  if (options_.rate > 0) rate_interval_ns_ = 1e9 / options_.rate;
  // Two SQEs per operation (the operation and its linked timeout), one
  // operation per connection; a full queue is submitted early, so this is a
  // throughput setting, not a limit.
  unsigned entries = static_cast<unsigned>(
      std::clamp(2 * (concurrency_ + attackers_share_) + 16, 64, 4096));
  return ring_.Init(entries,
                    static_cast<int64_t>(options_.io_timeout_s * kNsPerS),
                    error);
}

Connection* Worker::NewConnection() {
  connections_.push_back(std::make_unique<Connection>(this, recv_buffer_));
  return connections_.back().get();
}

uint32_t Worker::NextSource() {
  // Workers start at their index and stride by the thread count, so the
  // addresses are used evenly across threads too.
  const auto& sources = options_.sources;
  uint32_t s =
      sources[(next_source_ * options_.threads + index_) % sources.size()];
  ++next_source_;
  return s;
}

void Worker::OnAttackerReady(AttackConnection* a) {
  // Never straight back into Continue(): a refusal that comes back at once
  // would recurse. The next turn of the loop starts it.
  attack_ready_.push_back(a);
}

void Worker::StartAttackers() {
  if (attack_ready_.empty()) return;
  size_t allowed = attack_ready_.size();
  if (attack_rate_ > 0) {
    const double elapsed = (NowNs() - shared_->start_ns) / 1e9;
    const double budget = attack_rate_ * elapsed - attack_started_;
    allowed = budget <= 0 ? 0 : std::min(allowed, static_cast<size_t>(budget));
  }
  if (allowed == 0) return;
  // The first `allowed` go now (oldest first); the rest wait their turn.
  std::vector<AttackConnection*> go(attack_ready_.begin(),
                                    attack_ready_.begin() + allowed);
  attack_ready_.erase(attack_ready_.begin(), attack_ready_.begin() + allowed);
  attack_started_ += static_cast<int64_t>(allowed);
  for (AttackConnection* a : go) a->Continue();
}

void Worker::StopAttackers() {
  attack_ready_.clear();
  for (auto& a : attackers_) a->Stop();
}

void Worker::Run() {
  std::string error;
  if (!ring_.EnableOnThisThread(&error)) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    stats_.AddError(ErrorKind::kIo);
    ReportLoggedIn();
    return;
  }
  if (options_.mode == Mode::kHold) {
    RunHold();
  } else {
    RunLoad();
  }
}

bool Worker::StartNext(Connection* c, int64_t scheduled_ns) {
  if (stopping_ || free_users_.empty()) return false;
  if ((options_.mode == Mode::kSessions ||
       options_.mode == Mode::kHandshakes) &&
      options_.sessions > 0 &&
      shared_->sessions_started.fetch_add(1, std::memory_order_relaxed) >=
          options_.sessions) {
    stopping_ = true;  // the --sessions budget is spent
    return false;
  }
  if (options_.mode == Mode::kHold) {
    if (hold_started_ >= hold_quota_) return false;
    ++hold_started_;
  }
  int user = free_users_.front();
  free_users_.pop_front();
  ++live_;
  c->Start(user, scheduled_ns);
  return true;
}

int64_t Worker::DueNs(int64_t k) const {
  const double n = static_cast<double>(k) * options_.threads + index_;
  return shared_->start_ns + static_cast<int64_t>(n * rate_interval_ns_);
}

void Worker::StartDue() {
  const int64_t now = NowNs();
  while (!stopping_) {
    const int64_t due = DueNs(rate_next_);
    if (due > now || due >= shared_->deadline_ns) return;
    if (idle_.empty()) break;
    Connection* c = idle_.back();
    idle_.pop_back();
    if (!StartNext(c, due)) {
      idle_.push_back(c);
      return;
    }
    ++rate_next_;
  }
  // Every connection is busy: the starts due by now are late. Each is
  // counted once; it starts (late) when a connection frees, and its
  // latency still counts from when it was due.
  for (int64_t k = std::max(rate_late_counted_, rate_next_);; ++k) {
    const int64_t due = DueNs(k);
    if (due > now || due >= shared_->deadline_ns) break;
    ++stats_.late;
    rate_late_counted_ = k + 1;
  }
}

void Worker::StartQueued() {
  // Start() can fail synchronously and queue the connection again; those
  // wait for the next turn (after a ring wait), which is a natural backoff.
  std::vector<Connection*> queued;
  queued.swap(restart_);
  if (options_.rate > 0) {
    // Open loop: an ended session frees its connection for the schedule.
    idle_.insert(idle_.end(), queued.begin(), queued.end());
    StartDue();
    return;
  }
  for (Connection* c : queued) StartNext(c);
}

void Worker::OnSessionEnd(Connection* c, bool ok) {
  --live_;
  free_users_.push_back(c->user());
  if (ok && (options_.mode == Mode::kSessions ||
             options_.mode == Mode::kHandshakes)) {
    last_done_ns_ = NowNs();
  }
  restart_.push_back(c);
}

void Worker::OnMessageDone() {
  if (options_.mode == Mode::kThroughput) last_done_ns_ = NowNs();
}

void Worker::OnLoggedIn(Connection* c) {
  // The session stays live (it still has to QUIT) but frees its login slot.
  held_.push_back(c);
  shared_->held.fetch_add(1, std::memory_order_relaxed);
  restart_.push_back(NewConnection());
}

void Worker::AbortAll() {
  for (auto& c : connections_) c->Abort();
}

bool Worker::Tick(int64_t wait_ns, bool start) {
  if (ring_.RunOnce(wait_ns) < 0) {
    std::fprintf(stderr, "loadgen: worker %d: %s; abandoning its sessions\n",
                 index_, ring_.error().c_str());
    for (auto& c : connections_) c->Abandon();
    restart_.clear();
    return false;
  }
  if (start) {
    StartQueued();
    StartAttackers();
  } else {
    restart_.clear();
    attack_ready_.clear();
  }
  return true;
}

void Worker::Drain(int64_t abort_at_ns) {
  bool aborted = false;
  // After an abort every operation completes at once (shutdown) or at its
  // linked timeout; give up waiting one timeout later regardless.
  const int64_t give_up_ns =
      abort_at_ns + static_cast<int64_t>(options_.io_timeout_s * kNsPerS) +
      kNsPerS;
  while (live_ > 0 || ring_.in_flight() > 0) {
    int64_t now = NowNs();
    if (!aborted && now >= abort_at_ns) {
      AbortAll();
      aborted = true;
    }
    if (now >= give_up_ns) break;
    if (!Tick(kTickNs, /*start=*/false)) return;
  }
}

void Worker::RunLoad() {
  const bool open_loop = options_.rate > 0;
  for (int i = 0; i < concurrency_; ++i) {
    if (open_loop) {
      idle_.push_back(NewConnection());
    } else {
      StartNext(NewConnection());
    }
  }
  if (open_loop) StartDue();
  for (int i = 0; i < attackers_share_; ++i) {
    attackers_.push_back(std::make_unique<AttackConnection>(this));
    attack_ready_.push_back(attackers_.back().get());
  }
  while (true) {
    int64_t now = NowNs();
    if (!stopping_ && (now >= shared_->deadline_ns ||
                       shared_->interrupted.load(std::memory_order_relaxed))) {
      stopping_ = true;
    }
    if (stopping_) break;
    // Budget spent, all done (attackers alone run until the deadline; the
    // open loop until its schedule ends).
    if (!open_loop && live_ == 0 && restart_.empty() && attackers_.empty()) {
      break;
    }
    int64_t wait = std::clamp<int64_t>(shared_->deadline_ns - now, 1, kTickNs);
    if (open_loop && !idle_.empty()) {
      // The ring's own wait timeout wakes us when the next start is due.
      wait = std::clamp<int64_t>(DueNs(rate_next_) - now, 1, wait);
    }
    if (!Tick(wait, /*start=*/true)) return;
  }
  // Attackers end now: an attempt in flight is not counted.
  StopAttackers();
  // Sessions in progress finish (throughput: their current message, then
  // QUIT); each of their steps is bounded by --io-timeout, the whole drain
  // by one timeout plus a second.
  Drain(NowNs() + static_cast<int64_t>(options_.io_timeout_s * kNsPerS) +
        kNsPerS);
}

void Worker::ReportLoggedIn() {
  if (reported_logged_in_) return;
  reported_logged_in_ = true;
  shared_->workers_logged_in.fetch_add(1, std::memory_order_release);
}

void Worker::RunHold() {
  const int64_t login_deadline = NowNs() + kMaxLoginPhaseNs;
  for (int i = 0; i < concurrency_; ++i) StartNext(NewConnection());
  // Phase 1: log in this worker's share, concurrency_ at a time.
  while (static_cast<int64_t>(held_.size()) < live_ || !restart_.empty()) {
    if (shared_->interrupted.load(std::memory_order_relaxed) ||
        NowNs() >= login_deadline) {
      stopping_ = true;
      break;
    }
    if (!Tick(kTickNs, /*start=*/hold_started_ < hold_quota_)) {
      return ReportLoggedIn();
    }
  }
  // Logins still in flight after an interrupt or the login deadline end
  // now (shutdown) or at their linked timeout; wait no longer than that.
  if (static_cast<int64_t>(held_.size()) < live_) {
    for (auto& c : connections_) {
      if (!c->held()) c->Abort();
    }
    const int64_t give_up_ns =
        NowNs() + static_cast<int64_t>(options_.io_timeout_s * kNsPerS) +
        kNsPerS;
    while (static_cast<int64_t>(held_.size()) < live_ &&
           NowNs() < give_up_ns) {
      if (!Tick(kTickNs, /*start=*/false)) return ReportLoggedIn();
    }
  }
  ReportLoggedIn();
  // Phase 2: idle. Nothing is in flight; the main thread times the hold.
  while (!shared_->quit_now.load(std::memory_order_acquire)) {
    if (!Tick(kTickNs, /*start=*/false)) return;
  }
  // Phase 3: QUIT every held session.
  stopping_ = true;
  for (Connection* c : held_) c->StartQuit();
  Drain(NowNs() + static_cast<int64_t>(options_.io_timeout_s * kNsPerS) +
        kNsPerS);
}

}  // namespace popgate::loadgen
