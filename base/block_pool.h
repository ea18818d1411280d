// Where a session's short-lived heap blocks come from: per-thread free
// lists by size class, for coroutine frames (runtime/task.h), a session's
// state (session/session_state.h), line buffers (pop3/line_reader.h) and
// the forwarder's private receive buffer.
//
// Every Task and Detached frame is a heap block (GCC elides none of ours:
// each is awaited across a suspension), and a plain session allocates and
// frees a few dozen of them, plus buffers of 1 and 16 KiB. glibc's
// per-thread cache keeps only seven blocks per size, and none above 1,032
// bytes, so with tens of sessions in flight most of them went through
// malloc's slower bins (_int_malloc, _int_free and consolidation were 3-4%
// of a worker's CPU in a sessions profile; with a thousand sessions in
// flight, 9% in unlink_chunk, _int_malloc, _int_free and consolidation).
// Blocks are made and freed on the worker thread that runs the session,
// so a thread-local list needs no lock; a block freed on another thread
// just joins that thread's list.
//
// A thread's lists hold at most kMaxCachedBytes together (beyond that
// blocks go back to malloc). The bound is in bytes, not blocks per class:
// with a thousand sessions in flight, sessions end and start in waves of
// hundreds, and a bound of 128 blocks a class (and even of 4 MiB in all)
// still sent much of a wave back through malloc (perf probe on
// _int_malloc, 1,000 connections). The cache never holds more than was
// live at once before, and it is emptied before the process trims its
// heap (ReleaseFreeBlocks; server/trim_policy.h trims after a big drop in
// sessions), so it keeps no memory past a burst. Under the sanitizers
// blocks come straight from operator new, so that ASan still sees every
// use after free.
#ifndef POPGATE_BASE_BLOCK_POOL_H_
#define POPGATE_BASE_BLOCK_POOL_H_

#include <cstddef>
#include <utility>

namespace popgate::internal {

// Blocks up to this size are pooled, in 16-byte classes (malloc's own
// rounding: a coarser class would cost idle sessions memory); larger ones
// come from operator new. The forwarder's private receive buffer (16 KiB)
// is the largest that needs it.
inline constexpr size_t kMaxPooledBlock = 16 * 1024;
// Free blocks a thread keeps, all classes together, in bytes.
inline constexpr size_t kMaxCachedBytes = 32 << 20;

void* AllocateBlock(size_t size);
// `size` as given to AllocateBlock.
void DeallocateBlock(void* block, size_t size) noexcept;

// Gives this thread's free blocks back to operator delete. Cached
// blocks are scattered over the heap and pin the pages malloc_trim would
// return after a burst of sessions: the workers release theirs before the
// process trims (server/main.cc).
void ReleaseFreeBlocks() noexcept;

// False in sanitizer builds (every block from operator new).
bool BlocksPooled();
// This thread's free blocks in the class of `size` (tests).
size_t FreeBlocksForTests(size_t size);
// The bytes of all of this thread's free blocks (tests).
size_t CachedBytesForTests();

}  // namespace popgate::internal

namespace popgate {

// Objects of a class derived from this come from the thread's pool
// (coroutine promises, a session's state).
struct PoolAllocated {
  static void* operator new(std::size_t size) {
    return internal::AllocateBlock(size);
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    internal::DeallocateBlock(p, size);
  }
};

// A byte buffer from the pool, freed with its owner; empty when
// default-made or moved from.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  explicit PooledBuffer(size_t size)
      : data_(static_cast<char*>(internal::AllocateBlock(size))), size_(size) {}
  PooledBuffer(PooledBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  PooledBuffer& operator=(PooledBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() { Reset(); }

  char* get() const { return data_; }
  size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }
  void Reset() {
    if (data_ != nullptr) internal::DeallocateBlock(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace popgate

#endif  // POPGATE_BASE_BLOCK_POOL_H_
