#include "base/block_pool.h"

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
constexpr size_t kClasses = kMaxPooledBlock / kGranule;

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so it stays usable after this thread's
// destructors ran (a block freed then goes back to operator delete).
struct Lists {
  FreeBlock* head[kClasses];
  uint32_t count[kClasses];
  size_t cached_bytes;  // of every list
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
  l.cached_bytes = 0;
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
size_t BlockBytes(size_t c) { return (c + 1) * kGranule; }

}  // namespace

void* AllocateBlock(size_t size) {
  if (!kPooled || size == 0 || size > kMaxPooledBlock) {
    return ::operator new(size);
  }
  const size_t c = ClassOf(size);
  Lists& l = t_lists;
  if (FreeBlock* b = l.head[c]) {
    l.head[c] = b->next;
    --l.count[c];
    l.cached_bytes -= BlockBytes(c);
    return b;
  }
  t_releaser.armed = true;  // registers the release at thread exit
  return ::operator new(BlockBytes(c));
}

void DeallocateBlock(void* block, size_t size) noexcept {
  if (!kPooled || size == 0 || size > kMaxPooledBlock) {
    ::operator delete(block);
    return;
  }
  const size_t c = ClassOf(size);
  Lists& l = t_lists;
  if (l.closed || l.cached_bytes + BlockBytes(c) > kMaxCachedBytes) {
    ::operator delete(block);
    return;
  }
  auto* b = static_cast<FreeBlock*>(block);
  b->next = l.head[c];
  l.head[c] = b;
  ++l.count[c];
  l.cached_bytes += BlockBytes(c);
}

void ReleaseFreeBlocks() noexcept { Release(t_lists); }

bool BlocksPooled() { return kPooled; }

size_t FreeBlocksForTests(size_t size) {
  if (size == 0 || size > kMaxPooledBlock) return 0;
  return t_lists.count[ClassOf(size)];
}

size_t CachedBytesForTests() { return t_lists.cached_bytes; }

}  // namespace popgate::internal
