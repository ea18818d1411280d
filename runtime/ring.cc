#include "runtime/ring.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace popgate {

namespace {

// -1 if the sysctl does not exist (kernels before 6.6) or cannot be read.
int ReadSysctlInt(const char* path) {
  int value = -1;
  if (FILE* f = std::fopen(path, "r")) {
    if (std::fscanf(f, "%d", &value) != 1) value = -1;
    std::fclose(f);
  }
  return value;
}

}  // namespace

std::string IoUringUnavailableMessage(int err) {
  std::string why;
  if (err == EPERM) {
    const int disabled = ReadSysctlInt("/proc/sys/kernel/io_uring_disabled");
    if (disabled == 2) {
      why =
          "kernel.io_uring_disabled is 2 (io_uring is off for every "
          "process); set it to 0 (sysctl -w kernel.io_uring_disabled=0, and "
          "in /etc/sysctl.d/ to keep it)";
    } else if (disabled == 1) {
      why = absl::StrCat(
          "kernel.io_uring_disabled is 1 (io_uring only for CAP_SYS_ADMIN "
          "and the group kernel.io_uring_group = ",
          ReadSysctlInt("/proc/sys/kernel/io_uring_group"),
          "); run popgate with that group or set kernel.io_uring_disabled "
          "to 0");
    } else {
      why =
          "a seccomp profile blocks io_uring (the default profile of "
          "Docker, Podman and containerd does); allow io_uring_setup, "
          "io_uring_enter and io_uring_register for popgate (e.g. docker "
          "run --security-opt seccomp=PROFILE)";
    }
  } else if (err == ENOSYS) {
    why =
        "the kernel has no io_uring (built without CONFIG_IO_URING) or a "
        "seccomp profile hides it; popgate needs Linux 5.19 or later with "
        "io_uring_setup, io_uring_enter and io_uring_register allowed";
  } else if (err == ENOMEM) {
    why =
        "not enough lockable memory for the ring (kernels before 5.12 "
        "count it against RLIMIT_MEMLOCK); raise the limit (ulimit -l, "
        "systemd LimitMEMLOCK=)";
  } else if (err == EMFILE || err == ENFILE) {
    why = "out of file descriptors; raise the limit (ulimit -n)";
  } else if (err == EINVAL) {
    why = "the kernel's io_uring is too old; popgate needs Linux 5.19 or later";
  } else {
    why = "popgate needs io_uring (Linux 5.19 or later)";
  }
  return absl::StrCat(
      "io_uring is not available (io_uring_setup: ", strerror(err), "): ", why);
}

Ring::~Ring() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

absl::Status Ring::Init(unsigned entries) {
  io_uring_params params{};
  // One thread submits and reaps: let the kernel skip cross-thread work.
  // DEFER_TASKRUN: completion work (a receive finishing after its poll
  // fired) waits until this thread asks for events, instead of interrupting
  // it or waking it once per event; 4% less CPU per plain session at 32
  // connections, 1.3% at 1 (bench/compare/paired.py, 4 pairs each). It
  // needs every entry into the kernel to fetch events (RunOnce does).
  const unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
          IORING_SETUP_DEFER_TASKRUN,                          // 6.1+
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,  // 6.0
      0};
  int rc = -EINVAL;
  for (unsigned flags : kFlagSets) {
    params = {};
    params.flags = flags | IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    rc = io_uring_queue_init_params(entries, &ring_, &params);
    if (rc != -EINVAL) break;  // older kernels: retry without newer flags
  }
  if (rc < 0) return absl::UnavailableError(IoUringUnavailableMessage(-rc));
  initialised_ = true;
  wake_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) {
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  wake_completion_.callback = &Ring::OnWake;
  wake_completion_.ctx = this;
  ArmWake();
  return absl::OkStatus();
}

io_uring_sqe* Ring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

int64_t MonotonicNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void Ring::AddDeadline(Deadline* d, Completion* op, absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  // Timeouts beyond a century saturate instead of overflowing.
  const int64_t ns =
      absl::ToInt64Nanoseconds(std::min(timeout, absl::Hours(24 * 365 * 100)));
  d->op = op;
  heap_.push_back({MonotonicNowNs() + ns, d});
  d->index = heap_.size() - 1;
  SiftUp(d->index);
}

void Ring::RemoveDeadline(Deadline* d) {
  const size_t i = d->index;
  if (i == Deadline::kNotQueued) return;  // expired: the op was cancelled
  d->index = Deadline::kNotQueued;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;  // it was the last entry
  Place(i, last);
  SiftUp(i);
  SiftDown(last.d->index);
}

void Ring::SiftUp(size_t i) {
  const HeapEntry e = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / kHeapArity;
    if (heap_[parent].at_ns <= e.at_ns) break;
    Place(i, heap_[parent]);
    i = parent;
  }
  Place(i, e);
}

void Ring::SiftDown(size_t i) {
  const HeapEntry e = heap_[i];
  const size_t n = heap_.size();
  while (true) {
    const size_t first = kHeapArity * i + 1;
    if (first >= n) break;
    const size_t last = std::min(first + kHeapArity, n);
    size_t child = first;
    for (size_t c = first + 1; c < last; ++c) {
      if (heap_[c].at_ns < heap_[child].at_ns) child = c;
    }
    if (e.at_ns <= heap_[child].at_ns) break;
    Place(i, heap_[child]);
    i = child;
  }
  Place(i, e);
}

bool Ring::DeadlineHeapValidForTests() const {
  for (size_t i = 0; i < heap_.size(); ++i) {
    if (heap_[i].d->index != i) return false;
    if (i > 0 && heap_[(i - 1) / kHeapArity].at_ns > heap_[i].at_ns) {
      return false;
    }
  }
  return true;
}

absl::Duration Ring::ExpireDeadlines(int64_t now_ns) {
  while (!heap_.empty() && heap_[0].at_ns <= now_ns) {
    Deadline* d = heap_[0].d;
    RemoveDeadline(d);
    // The op is still in flight (its completion would have removed the
    // deadline), or its completion waits in the CQ unread: then the
    // cancel finds nothing (-ENOENT) and the op's own result stands. The
    // address cannot have been reused meanwhile: that needs the op's
    // completion to have run, which removes the deadline first.
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel(sqe, d->op, 0);
    io_uring_sqe_set_data(sqe, nullptr);  // its own completion is ignored
  }
  if (heap_.empty()) return absl::InfiniteDuration();
  return absl::Nanoseconds(heap_[0].at_ns - now_ns);
}

void Ring::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data(sqe, &wake_completion_);
}

void Ring::OnWake(void* ctx, int /*result*/, uint32_t /*flags*/) {
  auto* self = static_cast<Ring*>(ctx);
  {
    std::lock_guard<std::mutex> lock(self->posted_mu_);
    self->running_.swap(self->posted_);
  }
  self->ArmWake();
  for (auto h : self->running_) h.resume();
  self->running_.clear();
}

void Ring::Post(std::coroutine_handle<> h) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(h);
  }
  // Non-blocking eventfd: a full counter (never in practice) only means a
  // wake-up is already pending.
  Wake();
}

void Ring::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
}

void Ring::RunOnce(absl::Duration max_wait) {
  if (!deferred_.empty()) max_wait = absl::ZeroDuration();
  if (!heap_.empty()) {
    // The wait ends by the next deadline, whose cancel the next turn sends.
    max_wait = std::min(max_wait, ExpireDeadlines(MonotonicNowNs()));
  }
  __kernel_timespec ts = ToKernelTimespec(max_wait);
  io_uring_cqe* cqe = nullptr;
  int rc =
      max_wait == absl::ZeroDuration()
          // Not io_uring_submit: under DEFER_TASKRUN that would leave the
          // deferred completions unrun (and skips the kernel when there is
          // nothing to submit).
          ? io_uring_submit_and_get_events(&ring_)
          : io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  if (rc < 0 && rc != -ETIME && rc != -EINTR) return;
  // Copy the batch out first: resuming coroutines queues new SQEs and may
  // even run the loop's own helpers, so the CQ must be consumed already.
  batch_.clear();
  unsigned head;
  unsigned seen = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    auto* c = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
    if (c != nullptr) batch_.push_back({c, {cqe->res, cqe->flags}});
  }
  io_uring_cq_advance(&ring_, seen);
  for (auto& [c, rf] : batch_) {
    c->result = rf.first;
    c->flags = rf.second;
    if (c->callback != nullptr) {
      c->callback(c->ctx, rf.first, rf.second);
    } else {
      c->handle.resume();
    }
  }
  while (!deferred_.empty()) {
    deferred_running_.swap(deferred_);
    for (auto h : deferred_running_) h.resume();
    deferred_running_.clear();
  }
}

}  // namespace popgate
