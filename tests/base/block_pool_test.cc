// The coroutine frame pool: blocks are reused by size class on the thread
// that frees them, each class keeps a bounded number, large frames and
// sanitizer builds bypass it, and Task frames come from it.
#include "runtime/frame_pool.h"

#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/task.h"

namespace popgate::internal {
namespace {

class FramePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FramesPooled()) GTEST_SKIP() << "sanitizer build: frames not pooled";
  }
};

TEST_F(FramePoolTest, FreedBlockIsReusedForTheSameClass) {
  void* a = AllocateFrame(200);
  const size_t before = FreeFramesForTests(200);
  FreeFrame(a, 200);
  EXPECT_EQ(FreeFramesForTests(200), before + 1);
  // 193..208 bytes share a class: the same block comes back.
  void* b = AllocateFrame(207);
  EXPECT_EQ(b, a);
  EXPECT_EQ(FreeFramesForTests(200), before);
  FreeFrame(b, 207);
}

TEST_F(FramePoolTest, EachClassKeepsABoundedNumber) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < kMaxFreeFrames + 50; ++i) {
    blocks.push_back(AllocateFrame(1000));
  }
  for (void* b : blocks) FreeFrame(b, 1000);
  EXPECT_EQ(FreeFramesForTests(1000), kMaxFreeFrames);
  // The rest went back to operator delete; the cached ones are usable.
  std::vector<void*> again;
  for (size_t i = 0; i < kMaxFreeFrames; ++i)
    again.push_back(AllocateFrame(1000));
  EXPECT_EQ(FreeFramesForTests(1000), 0u);
  for (void* b : again) FreeFrame(b, 1000);
}

// A session's state is bigger than malloc's per-thread cache takes; the
// pool takes it (PoolAllocated), and gives the block back for the next.
TEST_F(FramePoolTest, PoolAllocatedObjectsComeFromThePool) {
  struct Big : PoolAllocated {
    char bytes[1300];
  };
  Big* a = new Big;
  const size_t before = FreeFramesForTests(sizeof(Big));
  delete a;
  EXPECT_EQ(FreeFramesForTests(sizeof(Big)), before + 1);
  Big* b = new Big;
  EXPECT_EQ(static_cast<void*>(b), static_cast<void*>(a));
  delete b;
}

TEST_F(FramePoolTest, LargeFramesAreNotPooled) {
  void* big = AllocateFrame(kMaxPooledFrame + 1);
  FreeFrame(big, kMaxPooledFrame + 1);
  EXPECT_EQ(FreeFramesForTests(kMaxPooledFrame + 1), 0u);
}

TEST_F(FramePoolTest, ABlockFreedOnAnotherThreadJoinsThatThreadsList) {
  void* a = AllocateFrame(300);
  size_t seen = 0;
  std::thread t([&] {
    const size_t before = FreeFramesForTests(300);
    FreeFrame(a, 300);
    seen = FreeFramesForTests(300) - before;
    // The thread's blocks go back to operator delete when it ends.
  });
  t.join();
  EXPECT_EQ(seen, 1u);
}

TEST_F(FramePoolTest, ReleaseGivesEveryCachedBlockBack) {
  std::vector<std::pair<void*, size_t>> blocks;
  for (int i = 0; i < 10; ++i) blocks.emplace_back(AllocateFrame(500), 500);
  for (int i = 0; i < 10; ++i) blocks.emplace_back(AllocateFrame(90), 90);
  for (auto [b, size] : blocks) FreeFrame(b, size);
  EXPECT_GE(FreeFramesForTests(500), 10u);
  EXPECT_GE(FreeFramesForTests(90), 10u);
  ReleaseFreeFrames();
  EXPECT_EQ(FreeFramesForTests(500), 0u);
  EXPECT_EQ(FreeFramesForTests(90), 0u);
  // The pool goes on working after a release.
  void* a = AllocateFrame(500);
  FreeFrame(a, 500);
  EXPECT_EQ(FreeFramesForTests(500), 1u);
  ReleaseFreeFrames();
}

Task<int> Answer(int x) { co_return x * 2; }

Task<int> Outer() {
  int sum = 0;
  for (int i = 0; i < 10; ++i) sum += co_await Answer(i);
  co_return sum;
}

TEST_F(FramePoolTest, TaskFramesComeFromThePool) {
  // Run once so the classes of both frames hold a block, then again: no
  // class grows, as each frame reuses what the last run freed.
  auto run = [] {
    Task<int> t = Outer();
    // Drive the lazily started task to completion by hand.
    struct Driver {
      static Detached Go(Task<int> task, int& out) { out = co_await task; }
    };
    int out = -1;
    Driver::Go(std::move(t), out);
    return out;
  };
  EXPECT_EQ(run(), 90);
  std::vector<size_t> counts;
  for (size_t size = 16; size <= kMaxPooledFrame; size += 16) {
    counts.push_back(FreeFramesForTests(size));
  }
  size_t cached = 0;
  for (size_t c : counts) cached += c;
  EXPECT_GT(cached, 0u) << "no frame went back to the pool";
  EXPECT_EQ(run(), 90);
  size_t i = 0;
  for (size_t size = 16; size <= kMaxPooledFrame; size += 16, ++i) {
    EXPECT_EQ(FreeFramesForTests(size), counts[i]) << size;
  }
}

}  // namespace
}  // namespace popgate::internal
