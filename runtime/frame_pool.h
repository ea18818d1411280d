// Coroutine frames recycled per thread.
//
// A plain session creates and destroys about 35 coroutine frames (each
// ReadLine, Read, WriteAll, Pump, ...), and every one was a malloc and a
// free: about half of the 76 allocations a session made (perf probe on
// malloc, bench/tools/ring_ops_per_session.sh's set-up). Frames come in a
// handful of sizes and a worker's ring runs on one thread, so a free list
// per size class and thread gives them back without locks or the
// allocator's bookkeeping.
//
// Bounds: frames up to kMaxFrame bytes are pooled (larger ones go to the
// allocator), at most kMaxPerClass free frames per class and thread are
// kept (the rest are freed), and a thread's lists are emptied when it
// exits. Under AddressSanitizer the pool is off, so a use of a destroyed
// frame is still caught.
#ifndef POPGATE_RUNTIME_FRAME_POOL_H_
#define POPGATE_RUNTIME_FRAME_POOL_H_

#include <cstddef>
#include <cstdint>
#include <new>

namespace popgate::internal {

class FramePool {
 public:
  static constexpr size_t kGranule = 64;
  static constexpr size_t kClasses = 32;
  static constexpr size_t kMaxFrame = kGranule * kClasses;  // 2 KiB
  static constexpr uint32_t kMaxPerClass = 256;

  static void* Allocate(size_t n) {
#if !defined(__SANITIZE_ADDRESS__)
    if (n > 0 && n <= kMaxFrame) {
      const size_t c = Class(n);
      Lists& l = lists_;
      if (FreeFrame* f = l.head[c]) {
        l.head[c] = f->next;
        --l.count[c];
        return f;
      }
      return ::operator new(Rounded(c));
    }
#endif
    return ::operator new(n);
  }

  static void Free(void* p, size_t n) noexcept {
#if !defined(__SANITIZE_ADDRESS__)
    if (n > 0 && n <= kMaxFrame) {
      const size_t c = Class(n);
      Lists& l = lists_;
      if (!l.dead && l.count[c] < kMaxPerClass) {
        if (!l.drain_registered) RegisterDrain();
        auto* f = static_cast<FreeFrame*>(p);
        f->next = l.head[c];
        l.head[c] = f;
        ++l.count[c];
        return;
      }
      ::operator delete(p, Rounded(c));
      return;
    }
#endif
    ::operator delete(p, n);
  }

  // Free frames this thread holds (for tests).
  static uint32_t Pooled() {
    uint32_t n = 0;
    for (uint32_t c : lists_.count) n += c;
    return n;
  }

 private:
  struct FreeFrame {
    FreeFrame* next;
  };
  // Trivially destructible, so it stays usable while the thread's other
  // thread_local objects are destroyed (a frame freed then is freed for
  // real once `dead` is set).
  struct Lists {
    FreeFrame* head[kClasses];
    uint32_t count[kClasses];
    bool drain_registered;
    bool dead;
  };
  // Empties the lists when its thread exits.
  struct Drain {
    ~Drain() {
      Lists& l = lists_;
      l.dead = true;
      for (size_t c = 0; c < kClasses; ++c) {
        while (FreeFrame* f = l.head[c]) {
          l.head[c] = f->next;
          ::operator delete(f, Rounded(c));
        }
        l.count[c] = 0;
      }
    }
  };

  static size_t Class(size_t n) { return (n - 1) / kGranule; }
  static size_t Rounded(size_t c) { return (c + 1) * kGranule; }
  static void RegisterDrain() {
    static thread_local Drain drain;
    (void)&drain;
    lists_.drain_registered = true;
  }

  static inline thread_local constinit Lists lists_{};
};

}  // namespace popgate::internal

#endif  // POPGATE_RUNTIME_FRAME_POOL_H_
