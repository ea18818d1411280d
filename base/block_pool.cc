#include "runtime/frame_pool.h"

#include <cstdint>
#include <new>

namespace popgate::internal {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPooled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPooled = false;
#else
constexpr bool kPooled = true;
#endif
#else
constexpr bool kPooled = true;
#endif

constexpr size_t kGranule = 16;
constexpr size_t kClasses = kMaxPooledFrame / kGranule;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so it stays usable after this thread's
// destructors ran (a frame freed then goes back to operator delete).
struct Lists {
  FreeBlock* head[kClasses];
  uint32_t count[kClasses];
  bool closed;
};
thread_local Lists t_lists{};

void Release(Lists& l) noexcept {
  for (size_t c = 0; c < kClasses; ++c) {
    while (FreeBlock* b = l.head[c]) {
      l.head[c] = b->next;
      ::operator delete(b);
    }
    l.count[c] = 0;
  }
}

// Returns the thread's blocks when it ends.
struct Releaser {
  bool armed = false;
  ~Releaser() {
    t_lists.closed = true;
    Release(t_lists);
  }
};
thread_local Releaser t_releaser;

// 1..16 -> 0, 17..32 -> 1, ...
size_t ClassOf(size_t size) { return (size - 1) / kGranule; }

}  // namespace

void* AllocateFrame(size_t size) {
  if (!kPooled || size == 0 || size > kMaxPooledFrame) {
    return ::operator new(size);
  }
  const size_t c = ClassOf(size);
  Lists& l = t_lists;
  if (FreeBlock* b = l.head[c]) {
    l.head[c] = b->next;
    --l.count[c];
    return b;
  }
  t_releaser.armed = true;  // registers the release at thread exit
  return ::operator new((c + 1) * kGranule);
}

void FreeFrame(void* frame, size_t size) noexcept {
  if (!kPooled || size == 0 || size > kMaxPooledFrame) {
    ::operator delete(frame);
    return;
  }
  const size_t c = ClassOf(size);
  Lists& l = t_lists;
  if (l.closed || l.count[c] >= kMaxFreeFrames) {
    ::operator delete(frame);
    return;
  }
  auto* b = static_cast<FreeBlock*>(frame);
  b->next = l.head[c];
  l.head[c] = b;
  ++l.count[c];
}

void ReleaseFreeFrames() noexcept { Release(t_lists); }

bool FramesPooled() { return kPooled; }

size_t FreeFramesForTests(size_t size) {
  if (size == 0 || size > kMaxPooledFrame) return 0;
  return t_lists.count[ClassOf(size)];
}

}  // namespace popgate::internal
