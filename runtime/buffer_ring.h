// Provided receive buffers (io_uring buffer ring): a receive picks a buffer
// only when data arrives, so thousands of idle TLS sessions waiting to read
// hold no receive buffer at all.
#ifndef POPGATE_RUNTIME_BUFFER_RING_H_
#define POPGATE_RUNTIME_BUFFER_RING_H_

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/ring.h"

namespace popgate {

class BufferRing {
 public:
  // One full TLS record (16 KiB plaintext + overhead) fits in a buffer.
  static constexpr unsigned kBufferSize = 16 * 1024 + 512;

  BufferRing() = default;
  ~BufferRing() { Reset(); }
  // Unregisters and frees; call on the ring's own thread (a single-issuer
  // ring refuses registrations from other threads).
  void Reset();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // `count` must be a power of two.
  absl::Status Init(io_uring* ring, uint16_t group, unsigned count);
  bool ready() const { return br_ != nullptr; }
  uint16_t group() const { return group_; }
  char* Get(uint16_t id) { return storage_.get() + size_t{id} * kBufferSize; }
  // Gives buffer `id` back to the kernel.
  void Recycle(uint16_t id);

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  unsigned count_ = 0;
  uint16_t group_ = 0;
  std::unique_ptr<char[]> storage_;
};

// The result of a receive into a provided buffer.
struct ProvidedRecv {
  int result = 0;   // bytes, 0 = EOF, -errno (-ENOBUFS: ring empty)
  int buffer = -1;  // buffer id when result > 0
};

// A receive that lets the kernel pick one of `group`'s buffers.
struct PrepRecvProvided {
  int fd;
  uint16_t group;
  void operator()(io_uring_sqe* sqe) const {
    io_uring_prep_recv(sqe, fd, nullptr, BufferRing::kBufferSize, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
  }
};

class RecvProvidedOp : public IoOp<PrepRecvProvided> {
 public:
  using IoOp::IoOp;
  ProvidedRecv await_resume() noexcept {
    ProvidedRecv r;
    r.result = IoOp::await_resume();  // takes the deadline out of the heap
    if (completion_.flags & IORING_CQE_F_BUFFER) {
      r.buffer = static_cast<int>(completion_.flags >> IORING_CQE_BUFFER_SHIFT);
    }
    return r;
  }
};

inline RecvProvidedOp RecvProvided(
    Ring& ring, BufferRing& buffers, int fd,
    std::optional<absl::Duration> timeout = std::nullopt) {
  return RecvProvidedOp(ring, PrepRecvProvided{fd, buffers.group()}, timeout);
}

}  // namespace popgate

#endif  // POPGATE_RUNTIME_BUFFER_RING_H_
