// The per-thread block pool: blocks are reused by size class on the thread
// that frees them, the cache is bounded in bytes, large blocks and
// sanitizer builds bypass it (Task frames: tests/runtime/task_test.cc).
#include "base/block_pool.h"

#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace popgate::internal {
namespace {

class BlockPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!BlocksPooled()) GTEST_SKIP() << "sanitizer build: blocks not pooled";
  }
};

TEST_F(BlockPoolTest, FreedBlockIsReusedForTheSameClass) {
  void* a = AllocateBlock(200);
  const size_t before = FreeBlocksForTests(200);
  DeallocateBlock(a, 200);
  EXPECT_EQ(FreeBlocksForTests(200), before + 1);
  // 193..208 bytes share a class: the same block comes back.
  void* b = AllocateBlock(207);
  EXPECT_EQ(b, a);
  EXPECT_EQ(FreeBlocksForTests(200), before);
  DeallocateBlock(b, 207);
}

// The cache holds at most kMaxCachedBytes over all classes: a class may
// take far more than the old 128 blocks, and what would pass the bound
// goes back to operator delete.
TEST_F(BlockPoolTest, CacheIsBoundedInBytes) {
  ReleaseFreeBlocks();
  EXPECT_EQ(CachedBytesForTests(), 0u);
  constexpr size_t kBlock = 1008;  // a class of its own: 63 granules
  const size_t fit = kMaxCachedBytes / kBlock;
  std::vector<void*> blocks;
  for (size_t i = 0; i < fit + 50; ++i) blocks.push_back(AllocateBlock(kBlock));
  for (void* b : blocks) DeallocateBlock(b, kBlock);
  EXPECT_EQ(FreeBlocksForTests(kBlock), fit);
  EXPECT_EQ(CachedBytesForTests(), fit * kBlock);
  EXPECT_GT(fit, 1000u);
  // Full (less than a block of room left): a block of another class, one
  // granule larger, goes back to operator delete too.
  ASSERT_LT(kMaxCachedBytes - CachedBytesForTests(), kBlock + 16);
  void* other = AllocateBlock(kBlock + 16);
  DeallocateBlock(other, kBlock + 16);
  EXPECT_EQ(FreeBlocksForTests(kBlock + 16), 0u);
  // The cached ones are usable, and taking them frees the budget.
  std::vector<void*> again;
  for (size_t i = 0; i < fit; ++i) again.push_back(AllocateBlock(kBlock));
  EXPECT_EQ(FreeBlocksForTests(kBlock), 0u);
  EXPECT_EQ(CachedBytesForTests(), 0u);
  for (void* b : again) DeallocateBlock(b, kBlock);
  ReleaseFreeBlocks();
  EXPECT_EQ(CachedBytesForTests(), 0u);
  EXPECT_EQ(FreeBlocksForTests(kBlock), 0u);
}

// A session's state is bigger than malloc's per-thread cache takes; the
// pool takes it (PoolAllocated), and gives the block back for the next.
TEST_F(BlockPoolTest, PoolAllocatedObjectsComeFromThePool) {
  struct Big : PoolAllocated {
    char bytes[1300];
  };
  Big* a = new Big;
  const size_t before = FreeBlocksForTests(sizeof(Big));
  delete a;
  EXPECT_EQ(FreeBlocksForTests(sizeof(Big)), before + 1);
  Big* b = new Big;
  EXPECT_EQ(static_cast<void*>(b), static_cast<void*>(a));
  delete b;
}

TEST_F(BlockPoolTest, LargeBlocksAreNotPooled) {
  void* big = AllocateBlock(kMaxPooledBlock + 1);
  DeallocateBlock(big, kMaxPooledBlock + 1);
  EXPECT_EQ(FreeBlocksForTests(kMaxPooledBlock + 1), 0u);
}

TEST_F(BlockPoolTest, ABlockFreedOnAnotherThreadJoinsThatThreadsList) {
  void* a = AllocateBlock(300);
  size_t seen = 0;
  std::thread t([&] {
    const size_t before = FreeBlocksForTests(300);
    DeallocateBlock(a, 300);
    seen = FreeBlocksForTests(300) - before;
    // The thread's blocks go back to operator delete when it ends.
  });
  t.join();
  EXPECT_EQ(seen, 1u);
}

TEST_F(BlockPoolTest, ReleaseGivesEveryCachedBlockBack) {
  std::vector<std::pair<void*, size_t>> blocks;
  for (int i = 0; i < 10; ++i) blocks.emplace_back(AllocateBlock(500), 500);
  for (int i = 0; i < 10; ++i) blocks.emplace_back(AllocateBlock(90), 90);
  for (auto [b, size] : blocks) DeallocateBlock(b, size);
  EXPECT_GE(FreeBlocksForTests(500), 10u);
  EXPECT_GE(FreeBlocksForTests(90), 10u);
  ReleaseFreeBlocks();
  EXPECT_EQ(FreeBlocksForTests(500), 0u);
  EXPECT_EQ(FreeBlocksForTests(90), 0u);
  // The pool goes on working after a release.
  void* a = AllocateBlock(500);
  DeallocateBlock(a, 500);
  EXPECT_EQ(FreeBlocksForTests(500), 1u);
  ReleaseFreeBlocks();
}

}  // namespace
}  // namespace popgate::internal
