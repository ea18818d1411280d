#include "runtime/buffer_ring.h"

#include <string.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace popgate {

void BufferRing::Reset() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_);
    std::free(br_);
    br_ = nullptr;
    storage_.reset();
  }
}

absl::Status BufferRing::Init(io_uring* ring, uint16_t group, unsigned count) {
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, count * sizeof(io_uring_buf)) != 0) {
    return absl::ResourceExhaustedError("buffer ring allocation failed");
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    std::free(mem);
    return absl::UnavailableError(
        absl::StrCat("io_uring_register_buf_ring: ", strerror(-rc)));
  }
  ring_ = ring;
  br_ = static_cast<io_uring_buf_ring*>(mem);
  count_ = count;
  group_ = group;
  storage_.reset(new char[size_t{count} * kBufferSize]);
  io_uring_buf_ring_init(br_);
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br_, Get(static_cast<uint16_t>(i)), kBufferSize,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  return absl::OkStatus();
}

void BufferRing::Recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, Get(id), kBufferSize, id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

}  // namespace popgate
