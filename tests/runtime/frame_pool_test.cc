// FramePool: frames of one size class are reused on the thread that freed
// them, the per-class bound holds, large frames are never pooled, and a
// thread's pooled frames are freed when it exits.
#include "runtime/frame_pool.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/task.h"

namespace popgate {
namespace {

using internal::FramePool;

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() GTEST_SKIP() << "the pool is off under ASan"
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

// Each test runs on a thread of its own, so the counts start at zero.
template <typename F>
void OnFreshThread(F f) {
  std::thread t(f);
  t.join();
}

TEST(FramePoolTest, ReusesAFrameOfTheSameClass) {
  SKIP_UNDER_ASAN();
  OnFreshThread([] {
    void* a = FramePool::Allocate(100);
    FramePool::Free(a, 100);
    EXPECT_EQ(FramePool::Pooled(), 1u);
    // 120 bytes is in the same 64-byte class as 100.
    void* b = FramePool::Allocate(120);
    EXPECT_EQ(a, b);
    EXPECT_EQ(FramePool::Pooled(), 0u);
    // Another class does not take it.
    FramePool::Free(b, 120);
    void* c = FramePool::Allocate(300);
    EXPECT_NE(c, b);
    FramePool::Free(c, 300);
    EXPECT_EQ(FramePool::Pooled(), 2u);
  });
}

TEST(FramePoolTest, KeepsAtMostTheBoundPerClass) {
  SKIP_UNDER_ASAN();
  OnFreshThread([] {
    std::vector<void*> frames;
    for (uint32_t i = 0; i < FramePool::kMaxPerClass + 50; ++i) {
      frames.push_back(FramePool::Allocate(64));
    }
    for (void* f : frames) FramePool::Free(f, 64);
    EXPECT_EQ(FramePool::Pooled(), FramePool::kMaxPerClass);
  });
}

TEST(FramePoolTest, LargeFramesAreNotPooled) {
  SKIP_UNDER_ASAN();
  OnFreshThread([] {
    const size_t big = FramePool::kMaxFrame + 1;
    void* a = FramePool::Allocate(big);
    FramePool::Free(a, big);
    EXPECT_EQ(FramePool::Pooled(), 0u);
  });
}

TEST(FramePoolTest, FreshThreadStartsEmpty) {
  // Frames pooled by an earlier thread are not visible here (and were
  // freed when it exited: LeakSanitizer and valgrind would see them).
  OnFreshThread([] {
    for (int i = 0; i < 10; ++i) FramePool::Free(FramePool::Allocate(200), 200);
  });
  OnFreshThread([] { EXPECT_EQ(FramePool::Pooled(), 0u); });
}

Task<int> Leaf(int v) { co_return v + 1; }
Task<int> Chain(int depth) {
  if (depth == 0) co_return 0;
  co_return co_await Leaf(co_await Chain(depth - 1));
}

TEST(FramePoolTest, CoroutineFramesComeBackToThePool) {
  SKIP_UNDER_ASAN();
  OnFreshThread([] {
    {
      Task<int> t = Chain(3);
      // Lazily started: driving it needs a ring; destroying it unstarted
      // still frees its frame through the pool.
    }
    EXPECT_EQ(FramePool::Pooled(), 1u);
  });
}

}  // namespace
}  // namespace popgate
