// Where coroutine frames come from: per-thread free lists by size class.
//
// Every Task and Detached frame is a heap block (GCC elides none of ours:
// each is awaited across a suspension), and a plain session allocates and
// frees a few dozen of them. glibc's per-thread cache keeps only seven
// blocks per size, and none above 1,032 bytes, so with tens of sessions in
// flight most frames went through malloc's slower bins (_int_malloc,
// _int_free and consolidation were 3-4% of a worker's CPU in a sessions
// profile; with thousands of sessions in flight those bins are cold and
// cost more). Frames are made and destroyed on the worker thread that
// runs them, so a thread-local list needs no lock; a block freed on
// another thread just joins that thread's list. Each list keeps at most
// kMaxFreeFrames blocks (beyond that they go back to malloc), so the cache
// stays bounded, and the lists are emptied before the process trims its
// heap (ReleaseFreeFrames). Under the sanitizers blocks come straight from
// operator new, so that ASan still sees every use after free.
//
// A session's own state, made and freed once per connection on its
// worker and larger than malloc's cache takes, comes from here too
// (PoolAllocated).
#ifndef POPGATE_RUNTIME_FRAME_POOL_H_
#define POPGATE_RUNTIME_FRAME_POOL_H_

#include <cstddef>

namespace popgate::internal {

// Frames up to this size are pooled, in 16-byte classes (malloc's own
// rounding: a coarser class would cost idle sessions memory); larger ones
// come from operator new. A session's largest frame (the pool login's,
// about 2.4 KiB) and its SessionState (1.3 KiB) fit.
inline constexpr size_t kMaxPooledFrame = 4096;
// Free blocks each class keeps per thread.
inline constexpr size_t kMaxFreeFrames = 128;

void* AllocateFrame(size_t size);
// `size` as given to AllocateFrame.
void FreeFrame(void* frame, size_t size) noexcept;

// Gives this thread's free blocks back to operator delete. Cached
// blocks are scattered over the heap and pin the pages malloc_trim would
// return after a burst of sessions: the workers release theirs before the
// process trims (server/main.cc).
void ReleaseFreeFrames() noexcept;

// False in sanitizer builds (every frame from operator new).
bool FramesPooled();
// This thread's free blocks in the class of `size` (tests).
size_t FreeFramesForTests(size_t size);

}  // namespace popgate::internal

namespace popgate {

// Objects of a class derived from this come from the thread's pool
// (coroutine promises, a session's state).
struct PoolAllocated {
  static void* operator new(std::size_t size) {
    return internal::AllocateFrame(size);
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    internal::FreeFrame(p, size);
  }
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_FRAME_POOL_H_
