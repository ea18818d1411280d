#include "backend/health_checker.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backend/backend_login.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "forward/read_line.h"
#include "net/proxy_protocol.h"
#include "routing/rendezvous.h"
#include "runtime/buffer_ring.h"
#include "runtime/ring.h"
#include "runtime/service_thread.h"
#include "runtime/task.h"

namespace popgate {

namespace {

// A CAPA answer longer than this is not a POP3 server's.
constexpr int kMaxCapaLines = 64;
// After the verdict: how long QUIT's answer and TLS's close_notify may
// take. Reading the answer lets the backend close first (no reset, a clean
// line in its log); waiting longer would only hold a socket.
constexpr absl::Duration kGoodbyeBound = absl::Milliseconds(200);

struct CheckOutcome {
  bool ok = false;
  // False for failures on our side (out of file descriptors): they say
  // nothing about the backend.
  bool counts = true;
  std::string detail;
};

}  // namespace

struct HealthChecker::Impl {
  // One checked backend. Owned by the map while named, and by its
  // coroutine until that ends.
  struct Slot {
    CheckTarget target;
    bool removed = false;      // no more checks after the one in flight
    bool first_round = false;  // counted in first_round_left until checked
    bool reschedule = false;   // the interval changed: recompute the wait
    int fd = -1;               // the check's socket while one is open
    SleepOp* sleep = nullptr;
  };

  explicit Impl(std::function<void(std::string)> l) : log(std::move(l)) {}

  absl::Status Setup();  // on the checker's thread: its ring, buffers
  void Run();
  void ApplyPending();
  void CutEverything();
  absl::Duration Jittered(absl::Duration interval);
  Detached RunTarget(std::shared_ptr<Slot> slot, absl::Duration first_wait);
  Task<CheckOutcome> RunCheck(const CheckTarget& t, int* fd_slot);
  void FinishFirstRound(Slot& slot) {
    if (!slot.first_round) return;
    slot.first_round = false;
    first_round_left.fetch_sub(1, std::memory_order_acq_rel);
  }

  const std::function<void(std::string)> log;
  Ring ring;
  BufferRing buffers;
  std::thread thread;

  std::mutex mu;
  bool ring_ready = false;  // Wake() is safe (the ring exists)
  bool have_pending = false;
  std::vector<CheckTarget> pending;

  std::atomic<bool> stop{false};
  // -1 until the first SetTargets is applied; then the first round's
  // targets not yet checked.
  std::atomic<int> first_round_left{-1};

  // The ring's thread only.
  absl::flat_hash_map<BackendHealth*, std::shared_ptr<Slot>> slots;
  absl::flat_hash_set<Slot*> live;  // slots whose RunTarget is alive
  bool applied_once = false;
  absl::BitGen rng;
};

absl::Duration HealthChecker::Impl::Jittered(absl::Duration interval) {
  // +-10%: instances that started together drift apart instead of
  // checking in lockstep for ever. The floor keeps a zero interval (the
  // struct allows one; the config does not) from spinning.
  return std::max(interval, absl::Milliseconds(10)) *
         absl::Uniform(rng, 0.9, 1.1);
}

Task<CheckOutcome> HealthChecker::Impl::RunCheck(const CheckTarget& t,
                                                 int* fd_slot) {
  CheckOutcome out;
  const absl::Time deadline = absl::Now() + t.policy.timeout;
  auto remaining = [deadline] {
    return std::max(deadline - absl::Now(), absl::Milliseconds(1));
  };
  const bool use_tls = t.policy.tls && t.tls_mode != BackendTls::kNone;
  const std::string preamble = t.proxy_v2 ? EncodeProxyV2Local() : "";

  if (t.tls_mode == BackendTls::kImplicit && !use_tls) {
    // The greeting is inside TLS and `tls = false` skips the handshake:
    // all there is to check is that the port accepts.
    UniqueFd fd(::socket(t.addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
      out.counts = false;
      out.detail = absl::StrCat("socket: ", strerror(errno));
      co_return out;
    }
    *fd_slot = fd.get();
    int rc =
        co_await Connect(ring, fd.get(), t.addr.get(), t.addr.len, remaining());
    if (rc < 0) {
      out.detail = rc == -ECANCELED ? std::string("connect timeout")
                                    : absl::StrCat("connect: ", strerror(-rc));
      co_return out;
    }
    out.ok = true;
    out.detail = "ok";
    co_return out;
  }

  BackendTlsParams tls;
  tls.mode = t.tls_mode;
  tls.ctx = t.tls_ctx;
  tls.name = t.tls_name;
  tls.buffers = &buffers;
  tls.handshake_timeout = t.handshake_timeout;
  BackendConnectParams p;
  p.addr = &t.addr;
  p.timeout = t.policy.timeout;
  p.tls = use_tls ? &tls : nullptr;
  p.preamble = preamble;
  p.fd_slot = fd_slot;
  BackendConnection c = co_await ConnectBackend(ring, p);
  if (!c.ok) {
    // A refused certificate or STLS is not ill health for passive marking,
    // but logins through this path would fail all the same: the check
    // fails. Only our own lack of a socket does not count.
    out.counts = c.health_failure || !c.error.starts_with("socket:");
    out.detail = c.error;
    co_return out;
  }

  Stream& stream = *c.stream;
  if (t.policy.capa) {
    auto fail = [&out](std::string why) {
      out.detail = "CAPA: " + std::move(why);
      return out;
    };
    if (co_await stream.WriteAll("CAPA\r\n", remaining()) < 0) {
      co_return fail("write failed");
    }
    std::string_view line;
    LineStatus st =
        co_await ReadLine(stream, *c.reader, line, remaining(), deadline);
    if (st != LineStatus::kLine) co_return fail(DescribeLineStatus(st));
    // The backend's words stay out of the log: it is ours, but its text
    // is free-form.
    if (!line.starts_with("+OK")) co_return fail("not +OK");
    bool ended = false;
    for (int i = 0; i <= kMaxCapaLines && !ended; ++i) {
      st = co_await ReadLine(stream, *c.reader, line, remaining(), deadline);
      if (st != LineStatus::kLine) co_return fail(DescribeLineStatus(st));
      ended = line == ".";
    }
    if (!ended) {
      co_return fail(absl::StrCat("more than ", kMaxCapaLines, " lines"));
    }
  }
  out.ok = true;
  out.detail = "ok";

  // Our own connection: say goodbye, but the verdict is in already.
  const absl::Duration bye = std::min(remaining(), kGoodbyeBound);
  if (co_await stream.WriteAll("QUIT\r\n", bye) == 0) {
    std::string_view line;
    co_await ReadLine(stream, *c.reader, line, bye, absl::Now() + bye);
  }
  co_await stream.Close(bye);
  co_return out;
}

Detached HealthChecker::Impl::RunTarget(std::shared_ptr<Slot> slot,
                                        absl::Duration first_wait) {
  live.insert(slot.get());
  absl::Time next = absl::Now() + first_wait;
  while (!slot->removed) {
    while (!slot->removed && absl::Now() < next) {
      SleepOp sleep(ring, next - absl::Now());
      slot->sleep = &sleep;
      co_await sleep;
      slot->sleep = nullptr;
      if (slot->reschedule) {
        // A shorter interval applies now, not after the old long wait.
        slot->reschedule = false;
        next = std::min(next,
                        absl::Now() + Jittered(slot->target.policy.interval));
      }
    }
    if (slot->removed) break;
    // A copy: a reload may replace the target while this check runs.
    const CheckTarget target = slot->target;
    const absl::Time started = absl::Now();
    CheckOutcome r = co_await RunCheck(target, &slot->fd);
    slot->fd = -1;
    // Stop cut this check short: its failure is ours, not the backend's.
    if (r.counts && !stop.load(std::memory_order_acquire)) {
      if (std::optional<std::string> line =
              target.health->RecordCheck(r.ok, r.detail, absl::Now())) {
        log(*std::move(line));
      }
    }
    FinishFirstRound(*slot);
    next = started + Jittered(slot->target.policy.interval);
  }
  FinishFirstRound(*slot);
  live.erase(slot.get());
}

void HealthChecker::Impl::ApplyPending() {
  std::vector<CheckTarget> next;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!have_pending) return;
    have_pending = false;
    next = std::move(pending);
    pending.clear();
  }
  const bool first = !applied_once;
  applied_once = true;
  int fresh_first = 0;
  absl::flat_hash_set<BackendHealth*> named;
  for (CheckTarget& t : next) {
    if (t.health == nullptr) continue;
    BackendHealth* key = t.health.get();
    named.insert(key);
    auto it = slots.find(key);
    if (it != slots.end()) {
      // Same backend: its schedule goes on, with the new settings.
      Slot& s = *it->second;
      if (s.target.policy.interval != t.policy.interval) {
        s.reschedule = true;
        if (s.sleep != nullptr) s.sleep->Wake();
      }
      s.target = std::move(t);
      continue;
    }
    auto slot = std::make_shared<Slot>();
    slot->target = std::move(t);
    slot->first_round = first;
    if (first) ++fresh_first;
    // Spread: where in the interval this backend's first check falls
    // depends on this process's random token, so instances differ, and on
    // the address, so one instance's backends differ.
    const int64_t interval_ns = std::max<int64_t>(
        absl::ToInt64Nanoseconds(slot->target.policy.interval), 1);
    const uint64_t h = routing::StableHash64(ProcessLoopToken(),
                                             slot->target.health->address());
    const absl::Duration first_wait =
        absl::Nanoseconds(static_cast<int64_t>(h % uint64_t(interval_ns)));
    slots.emplace(key, slot);
    RunTarget(std::move(slot), first_wait);
  }
  if (first) {
    // From -1 to the count; checks that already ended (a socket() failure
    // ends one without waiting) took theirs off below -1, never through 0.
    first_round_left.fetch_add(fresh_first + 1, std::memory_order_acq_rel);
  }
  for (auto it = slots.begin(); it != slots.end();) {
    if (named.contains(it->first)) {
      ++it;
      continue;
    }
    Slot& s = *it->second;
    s.removed = true;
    if (s.sleep != nullptr) s.sleep->Wake();
    slots.erase(it++);
  }
}

void HealthChecker::Impl::CutEverything() {
  for (auto& [key, slot] : slots) {
    slot->removed = true;
    if (slot->sleep != nullptr) slot->sleep->Wake();
  }
  slots.clear();
}

absl::Status HealthChecker::Impl::Setup() {
  if (absl::Status s = ring.Init(256); !s.ok()) return s;
  // TLS checks share a few provided buffers; without kernel support TLS
  // reads use private buffers instead (slower, still correct).
  if (absl::Status s = buffers.Init(ring.raw(), 1, 16); !s.ok()) {
    log(LogLine(LogLevel::kWarning, "warning",
                absl::StrCat(",\"warning\":\"health checker: no provided "
                             "buffers (TLS checks use private ones): ",
                             JsonEscape(std::string(s.message())), "\"")));
  }
  std::lock_guard<std::mutex> lock(mu);
  ring_ready = true;
  return absl::OkStatus();
}

void HealthChecker::Impl::Run() {
  // Running coroutines hold `this`: the thread leaves only once each has
  // ended.
  while (true) {
    const bool stopping = stop.load(std::memory_order_acquire);
    if (!stopping) {
      ApplyPending();
    } else {
      CutEverything();
      // Cut the checks in flight (again each turn: cheap, and a check may
      // have opened its socket since). Every pending operation on a socket
      // shut down completes, so each coroutine unwinds through its normal
      // path; a QUIT it still tries fails at once.
      for (Slot* s : live) {
        if (s->fd >= 0) ::shutdown(s->fd, SHUT_RDWR);
      }
      if (live.empty()) break;
    }
    ring.RunOnce(stopping ? absl::Milliseconds(50) : absl::Seconds(1));
  }
  buffers.Reset();
}

HealthChecker::HealthChecker(std::function<void(std::string)> log)
    : impl_(std::make_unique<Impl>(std::move(log))) {}

HealthChecker::~HealthChecker() { Stop(); }

absl::Status HealthChecker::Start() {
  if (impl_->thread.joinable() || impl_->stop.load()) {
    return absl::FailedPreconditionError("health checker already started");
  }
  Impl* impl = impl_.get();
  absl::StatusOr<std::thread> thread = StartServiceThread(
      "popgate-health", [impl] { return impl->Setup(); },
      [impl] { impl->Run(); });
  if (!thread.ok()) return thread.status();
  impl_->thread = *std::move(thread);
  return absl::OkStatus();
}

void HealthChecker::SetTargets(std::vector<CheckTarget> targets) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->pending = std::move(targets);
  impl_->have_pending = true;
  if (impl_->ring_ready) impl_->ring.Wake();
}

bool HealthChecker::FirstRoundDone() const {
  return impl_->first_round_left.load(std::memory_order_acquire) == 0;
}

void HealthChecker::Stop() {
  impl_->stop.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->ring_ready) impl_->ring.Wake();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace popgate
