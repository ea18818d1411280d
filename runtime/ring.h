// One io_uring per worker thread, and awaitables over it.
//
// Every in-flight operation has a Completion whose address is the SQE's
// user_data. A Completion either resumes a coroutine or calls a function
// (for multishot operations, whose CQEs keep coming). An operation with a
// timeout has a Deadline in the ring's heap: when it passes, the ring
// cancels the operation (IORING_OP_ASYNC_CANCEL, whose own completion
// carries user_data 0 and is ignored), which then completes with
// -ECANCELED, as with a kernel LINK_TIMEOUT; an operation that completes
// first only leaves the heap. No kernel timer per operation: with a
// LINK_TIMEOUT per wait a plain session cost 1.07x the CPU (12 of its 32
// io_uring requests were the timeouts; BENCHMARKS.md).
//
// Lifetime rule: a coroutine frame that owns a Completion must not be
// destroyed while the operation is in flight. Sessions guarantee that by
// bounding every wait with a timeout or by shutting their sockets down.
#ifndef POPGATE_RUNTIME_RING_H_
#define POPGATE_RUNTIME_RING_H_

#include <liburing.h>
#include <sys/socket.h>

#include <coroutine>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"

namespace popgate {

struct Completion {
  std::coroutine_handle<> handle;
  // Used instead of `handle` when set (multishot and internal ops).
  void (*callback)(void* ctx, int result, uint32_t flags) = nullptr;
  void* ctx = nullptr;
  int result = 0;
  uint32_t flags = 0;
};

// When an in-flight operation times out (see above). Owned by the
// awaiter; the ring holds its address from AddDeadline until RemoveDeadline
// or until it expires.
struct Deadline {
  static constexpr size_t kNotQueued = static_cast<size_t>(-1);
  Completion* op = nullptr;   // what to cancel
  size_t index = kNotQueued;  // place in the ring's heap
};

// CLOCK_MONOTONIC in nanoseconds (the clock io_uring's waits use).
int64_t MonotonicNowNs();

// One line for an operator when io_uring_setup fails with `err` (an errno):
// the cause (kernel.io_uring_disabled, a seccomp profile, an old kernel,
// limits) and what to change.
std::string IoUringUnavailableMessage(int err);

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Fails with IoUringUnavailableMessage() when the kernel refuses a ring.
  absl::Status Init(unsigned entries);

  // Never returns null: submits pending SQEs to make room when full.
  io_uring_sqe* GetSqe();
  // Queues `d` to cancel `op` (whose SQE is already taken) after
  // `timeout`; RemoveDeadline takes it out again (nothing if it already
  // expired). This thread only. The heap holds one entry per operation in
  // flight with a timeout, so it is bounded by what the sessions wait for.
  void AddDeadline(Deadline* d, Completion* op, absl::Duration timeout);
  void RemoveDeadline(Deadline* d);
  size_t deadlines() const { return heap_.size(); }  // tests
  // Tests: every entry is due no sooner than its parent, and every
  // Deadline knows its place.
  bool DeadlineHeapValidForTests() const;

  // Submits, waits for at least one completion (or `max_wait`), and
  // dispatches every available CQE.
  void RunOnce(absl::Duration max_wait);

  // Thread-safe: resumes `h` on this ring's thread soon.
  void Post(std::coroutine_handle<> h);
  // Thread-safe: makes RunOnce return soon.
  void Wake();
  // This thread only: resumes `h` after the current batch of completions
  // (not from inside the caller's stack).
  void Defer(std::coroutine_handle<> h) { deferred_.push_back(h); }

  io_uring* raw() { return &ring_; }

 private:
  static void OnWake(void* ctx, int result, uint32_t flags);
  void ArmWake();
  // Cancels every operation whose deadline is at or before `now_ns`;
  // returns how long until the next one (InfiniteDuration if none).
  absl::Duration ExpireDeadlines(int64_t now_ns);
  // The deadline's time is copied into the heap, so that sifting compares
  // without touching the awaiters' frames; but every entry a sift moves
  // has its Deadline's index rewritten, a cache miss each with thousands
  // of sessions in flight. Four children per node: half the levels of a
  // binary heap, so half the moves, and a node's children share one or
  // two cache lines of the array.
  static constexpr size_t kHeapArity = 4;
  struct HeapEntry {
    int64_t at_ns;  // CLOCK_MONOTONIC
    Deadline* d;
  };
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void Place(size_t i, HeapEntry e) {
    heap_[i] = e;
    e.d->index = i;
  }

  io_uring ring_{};
  bool initialised_ = false;
  UniqueFd wake_fd_;
  uint64_t wake_buf_ = 0;
  Completion wake_completion_;
  std::mutex posted_mu_;
  std::vector<std::coroutine_handle<>> posted_;
  std::vector<std::coroutine_handle<>> running_;
  std::vector<std::coroutine_handle<>> deferred_;
  std::vector<std::coroutine_handle<>> deferred_running_;
  std::vector<std::pair<Completion*, std::pair<int, uint32_t>>> batch_;
  std::vector<HeapEntry> heap_;  // 4-ary min-heap on at_ns
};

inline __kernel_timespec ToKernelTimespec(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  __kernel_timespec ts{};
  ts.tv_sec = absl::ToInt64Seconds(d);
  ts.tv_nsec = absl::ToInt64Nanoseconds(d - absl::Seconds(ts.tv_sec));
  return ts;
}

// Awaitable for one SQE. `Prep` fills the SQE; with a timeout the op
// completes with -ECANCELED when it expires (the ring's Deadline heap).
template <typename Prep>
class IoOp {
 public:
  IoOp(Ring& ring, Prep prep, std::optional<absl::Duration> timeout)
      : ring_(ring), prep_(std::move(prep)) {
    if (timeout) {
      timeout_ = *timeout;
      has_timeout_ = true;
    }
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    completion_.handle = h;
    io_uring_sqe* sqe = ring_.GetSqe();
    prep_(sqe);
    io_uring_sqe_set_data(sqe, &completion_);
    if (has_timeout_) ring_.AddDeadline(&deadline_, &completion_, timeout_);
  }
  // Runs on every completion (the lifetime rule above: the frame is not
  // destroyed while the op is in flight), so the heap never keeps the
  // address of an awaiter that is gone. A subclass with an await_resume of
  // its own must call this one.
  int await_resume() noexcept {
    if (has_timeout_) ring_.RemoveDeadline(&deadline_);
    return completion_.result;
  }

 protected:
  Ring& ring_;
  Prep prep_;
  absl::Duration timeout_;
  bool has_timeout_ = false;
  Completion completion_;
  Deadline deadline_;
};

template <typename Prep>
IoOp<Prep> MakeOp(Ring& ring, Prep prep,
                  std::optional<absl::Duration> timeout = std::nullopt) {
  return IoOp<Prep>(ring, std::move(prep), timeout);
}

// --- The operations the proxy uses. Results are the raw CQE results:
// >= 0 on success, -errno on failure, -ECANCELED on timeout.

inline auto Recv(Ring& r, int fd, void* buf, size_t len,
                 std::optional<absl::Duration> timeout = std::nullopt) {
  return MakeOp(
      r, [=](io_uring_sqe* s) { io_uring_prep_recv(s, fd, buf, len, 0); },
      timeout);
}

inline auto Send(Ring& r, int fd, const void* buf, size_t len,
                 std::optional<absl::Duration> timeout = std::nullopt) {
  return MakeOp(
      r,
      [=](io_uring_sqe* s) {
        io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL);
      },
      timeout);
}

// A send that never waits: what fits in the socket buffer now, or -EAGAIN.
// Needs no timeout, so no deadline goes into the heap and none comes out:
// most replies fit at once.
inline auto SendNow(Ring& r, int fd, const void* buf, size_t len) {
  return MakeOp(r, [=](io_uring_sqe* s) {
    io_uring_prep_send(s, fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  });
}

inline auto Connect(Ring& r, int fd, const sockaddr* addr, socklen_t len,
                    std::optional<absl::Duration> timeout = std::nullopt) {
  return MakeOp(
      r, [=](io_uring_sqe* s) { io_uring_prep_connect(s, fd, addr, len); },
      timeout);
}

// Completes at once, but only after the ring has run what was already
// waiting: a long-running coroutine's way of letting the others in.
inline auto Yield(Ring& r) {
  return MakeOp(r, [](io_uring_sqe* s) { io_uring_prep_nop(s); });
}

inline auto PollFd(Ring& r, int fd, unsigned events,
                   std::optional<absl::Duration> timeout = std::nullopt) {
  return MakeOp(
      r, [=](io_uring_sqe* s) { io_uring_prep_poll_add(s, fd, events); },
      timeout);
}

inline auto ShutdownFd(Ring& r, int fd, int how) {
  return MakeOp(r,
                [=](io_uring_sqe* s) { io_uring_prep_shutdown(s, fd, how); });
}

// Completes after `d` (result -ETIME is the normal outcome), or sooner
// when Wake() is called from the ring's thread while it waits.
class SleepOp {
 public:
  SleepOp(Ring& ring, absl::Duration d)
      : ring_(ring), ts_(ToKernelTimespec(d)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    completion_.handle = h;
    io_uring_sqe* sqe = ring_.GetSqe();
    io_uring_prep_timeout(sqe, &ts_, 0, 0);
    io_uring_sqe_set_data(sqe, &completion_);
  }
  void await_resume() const noexcept {}
  // Cuts the sleep short (IORING_OP_TIMEOUT_REMOVE completes it with
  // -ECANCELED). Only while suspended in it; the awaiting frame stays until
  // the timeout's own completion arrives, so the kernel never touches
  // freed memory.
  void Wake() {
    if (woken_) return;
    woken_ = true;
    io_uring_sqe* sqe = ring_.GetSqe();
    io_uring_prep_timeout_remove(sqe, reinterpret_cast<uint64_t>(&completion_),
                                 0);
    io_uring_sqe_set_data(sqe, nullptr);  // its own completion is ignored
  }

 private:
  Ring& ring_;
  __kernel_timespec ts_;
  Completion completion_;
  bool woken_ = false;
};

inline SleepOp Sleep(Ring& r, absl::Duration d) { return SleepOp(r, d); }

}  // namespace popgate

#endif  // POPGATE_RUNTIME_RING_H_
