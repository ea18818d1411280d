#include "bench/loadgen/ring_loop.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace popgate::loadgen {
namespace {

// Linked-timeout completions carry this user_data and are not dispatched:
// the operation they guard reports -ECANCELED itself.
constexpr uint64_t kTimeoutTag = 0;

}  // namespace

RingLoop::~RingLoop() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

bool RingLoop::Init(unsigned entries, int64_t op_timeout_ns,
                    std::string* error) {
  op_timeout_.tv_sec = op_timeout_ns / 1000000000;
  op_timeout_.tv_nsec = op_timeout_ns % 1000000000;
  io_uring_params params{};
  // One thread submits and reaps: let the kernel skip cross-thread
  // synchronisation and run completion work only when we ask for events.
  // The ring starts disabled because its issuer is the thread that enables
  // it (EnableOnThisThread), not the one that creates it.
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                 IORING_SETUP_R_DISABLED;
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc == -EINVAL) {  // kernels before 6.1
    params = io_uring_params{};
    rc = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (rc < 0) {
    *error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  initialised_ = true;
  disabled_ = (params.flags & IORING_SETUP_R_DISABLED) != 0;
  return true;
}

bool RingLoop::EnableOnThisThread(std::string* error) {
  if (!disabled_) return true;
  // liburing 2.3 declares io_uring_enable_rings() but does not export it.
  long rc = ::syscall(__NR_io_uring_register, ring_.ring_fd,
                      IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (rc < 0) {
    *error = std::string("IORING_REGISTER_ENABLE_RINGS: ") +
             std::strerror(errno);
    return false;
  }
  disabled_ = false;
  return true;
}

io_uring_sqe* RingLoop::GetLinkedPair() {
  if (io_uring_sq_space_left(&ring_) < 2) io_uring_submit(&ring_);
  // After a submit the whole queue is free (entries >= 2).
  return io_uring_get_sqe(&ring_);
}

void RingLoop::LinkTimeout() {
  io_uring_sqe* t = io_uring_get_sqe(&ring_);
  io_uring_prep_link_timeout(t, &op_timeout_, 0);
  io_uring_sqe_set_data64(t, kTimeoutTag);
  in_flight_ += 2;  // the operation and its timeout each complete once
}

void RingLoop::Connect(int fd, const sockaddr* addr, socklen_t len,
                       Completion* c) {
  io_uring_sqe* sqe = GetLinkedPair();
  io_uring_prep_connect(sqe, fd, addr, len);
  io_uring_sqe_set_data(sqe, c);
  sqe->flags |= IOSQE_IO_LINK;
  LinkTimeout();
}

void RingLoop::Recv(int fd, void* buf, size_t len, Completion* c) {
  io_uring_sqe* sqe = GetLinkedPair();
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  io_uring_sqe_set_data(sqe, c);
  sqe->flags |= IOSQE_IO_LINK;
  LinkTimeout();
}

void RingLoop::Send(int fd, const void* buf, size_t len, Completion* c) {
  io_uring_sqe* sqe = GetLinkedPair();
  io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, c);
  sqe->flags |= IOSQE_IO_LINK;
  LinkTimeout();
}

void RingLoop::Cancel(Completion* c) {
  if (io_uring_sq_space_left(&ring_) < 1) io_uring_submit(&ring_);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_cancel(sqe, c, 0);
  // Its own completion is not dispatched, like a linked timeout's.
  io_uring_sqe_set_data64(sqe, kTimeoutTag);
  ++in_flight_;
}

int RingLoop::RunOnce(int64_t max_wait_ns) {
  __kernel_timespec ts{};
  ts.tv_sec = max_wait_ns / 1000000000;
  ts.tv_nsec = max_wait_ns % 1000000000;
  io_uring_cqe* cqe = nullptr;
  int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY &&
      rc != -EAGAIN) {
    // Nothing was submitted and nothing will complete: say so rather than
    // spin. (EEXIST, for one, means the ring is used off its issuer thread.)
    error_ = std::string("io_uring_enter: ") + std::strerror(-rc);
    return -1;
  }
  int dispatched = 0;
  // Copy out first: a handler may queue new SQEs, which is fine, but it
  // must not see this CQE batch half-consumed.
  unsigned head;
  unsigned seen = 0;
  struct Done {
    Completion* c;
    int res;
  };
  Done batch[256];
  size_t n = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    --in_flight_;
    if (cqe->user_data != kTimeoutTag) {
      batch[n++] = {reinterpret_cast<Completion*>(cqe->user_data), cqe->res};
    }
    if (n == std::size(batch)) break;
  }
  io_uring_cq_advance(&ring_, seen);
  for (size_t i = 0; i < n; ++i) {
    batch[i].c->OnComplete(batch[i].res);
    ++dispatched;
  }
  return dispatched;
}

}  // namespace popgate::loadgen
