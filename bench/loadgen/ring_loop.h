// One io_uring per worker thread, and the only code that touches it. Every
// socket operation is submitted with a linked timeout, so no wait can last
// longer than --io-timeout: a stuck target shows up as "timeout" errors,
// never as a hung benchmark.
#ifndef POPGATE_BENCH_LOADGEN_RING_LOOP_H_
#define POPGATE_BENCH_LOADGEN_RING_LOOP_H_

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace popgate::loadgen {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Receives the result of one submitted operation (cqe->res: >= 0 or
// -errno; -ECANCELED when its linked timeout fired).
class Completion {
 public:
  virtual void OnComplete(int result) = 0;

 protected:
  ~Completion() = default;
};

class RingLoop {
 public:
  RingLoop() = default;
  RingLoop(const RingLoop&) = delete;
  RingLoop& operator=(const RingLoop&) = delete;
  ~RingLoop();

  // `entries`: submission queue size; `op_timeout_ns`: the linked timeout
  // attached to every operation.
  bool Init(unsigned entries, int64_t op_timeout_ns, std::string* error);

  // Must be called on the thread that will use the ring, before any
  // operation.
  bool EnableOnThisThread(std::string* error);

  void Connect(int fd, const sockaddr* addr, socklen_t len, Completion* c);
  void Recv(int fd, void* buf, size_t len, Completion* c);
  void Send(int fd, const void* buf, size_t len, Completion* c);
  // Asks the kernel to cancel `c`'s operation in flight (it then completes
  // with -ECANCELED, or with its result if it already finished): for a
  // connect that shutdown(2) cannot end.
  void Cancel(Completion* c);

  // Submits what is queued, waits up to `max_wait_ns` for at least one
  // completion, and dispatches every completion available. Returns the
  // number of operation completions dispatched, or -1 if the ring failed
  // (see error()); operations in flight then never complete.
  int RunOnce(int64_t max_wait_ns);
  const std::string& error() const { return error_; }

  uint64_t in_flight() const { return in_flight_; }

 private:
  // Reserves two adjacent SQEs (operation + linked timeout), submitting
  // first if the queue is too full.
  io_uring_sqe* GetLinkedPair();
  void LinkTimeout();

  io_uring ring_{};
  bool initialised_ = false;
  bool disabled_ = false;
  // Read by the kernel when the LINK_TIMEOUT is submitted (prep copies it),
  // so one shared value is enough.
  __kernel_timespec op_timeout_{};
  uint64_t in_flight_ = 0;
  std::string error_;
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_RING_LOOP_H_
