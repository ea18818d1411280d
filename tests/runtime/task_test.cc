// Coroutine plumbing: Task, Detached, JoinCounter, AsyncMutex.
#include "runtime/task.h"

#include <memory>
#include <string>
#include <vector>

#include "base/block_pool.h"
#include "gtest/gtest.h"
#include "runtime/async_mutex.h"
#include "runtime/join.h"
#include "runtime/ring.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::RunTask;
using testing::RunUntil;

Task<int> Immediate(int v) { co_return v; }

// A long chain of tasks that finish without suspending: symmetric transfer
// keeps the stack flat (a loop of plain resume() calls would overflow it).
Task<long> SumMany(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await Immediate(i);
  co_return sum;
}

// GCC makes the symmetric transfer a tail call only when optimising: in the
// asan preset (Debug, -O0) each synchronous co_await keeps a few frames
// until the coroutine really suspends, and 200,000 of them overflow the
// 8 MiB stack (measured). Sessions never chain that many without an
// io_uring suspension (a line read from the buffer is a few per line), so
// the unoptimised build checks a smaller count.
#ifdef __OPTIMIZE__
constexpr int kSynchronousAwaits = 1'000'000;
#else
constexpr int kSynchronousAwaits = 20'000;
#endif

TEST(TaskTest, ManySynchronousAwaitsDoNotGrowTheStack) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  constexpr int kN = kSynchronousAwaits;
  std::optional<long> sum = RunTask(ring, SumMany(kN));
  ASSERT_TRUE(sum.has_value());
  EXPECT_EQ(*sum, static_cast<long>(kN) * (kN - 1) / 2);
}

Task<std::unique_ptr<std::string>> MoveOnly() {
  co_return std::make_unique<std::string>("moved");
}

TEST(TaskTest, MoveOnlyResult) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  auto outer = []() -> Task<std::string> {
    std::unique_ptr<std::string> p = co_await MoveOnly();
    co_return *p;
  };
  EXPECT_EQ(RunTask(ring, outer()), "moved");
}

// A Task that is never awaited is destroyed without running (lazy start).
TEST(TaskTest, UnawaitedTaskNeverRuns) {
  bool ran = false;
  {
    auto t = [](bool& ran) -> Task<void> {
      ran = true;
      co_return;
    }(ran);
  }
  EXPECT_FALSE(ran);
}

Detached Finish(Ring& ring, JoinCounter& join, absl::Duration after,
                std::vector<int>& order, int id) {
  co_await Sleep(ring, after);
  order.push_back(id);
  join.Done();
}

TEST(JoinCounterTest, WaitsForEveryCoroutine) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  std::vector<int> order;
  auto run = [](Ring& ring, std::vector<int>& order) -> Task<int> {
    JoinCounter join(2);
    Finish(ring, join, absl::Milliseconds(5), order, 1);
    Finish(ring, join, absl::Milliseconds(1), order, 2);
    co_await join.Wait();
    co_return static_cast<int>(order.size());
  };
  EXPECT_EQ(RunTask(ring, run(ring, order)), 2);
}

TEST(JoinCounterTest, AlreadyDoneDoesNotSuspend) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  auto run = []() -> Task<int> {
    JoinCounter join(1);
    join.Done();
    co_await join.Wait();
    co_return 7;
  };
  EXPECT_EQ(RunTask(ring, run()), 7);
}

Detached Locker(Ring& ring, AsyncMutex& mu, std::vector<std::string>& log,
                int id, int& finished) {
  co_await mu.Lock();
  log.push_back("lock" + std::to_string(id));
  // Hold the lock across a real suspension.
  co_await Sleep(ring, absl::Milliseconds(1));
  log.push_back("unlock" + std::to_string(id));
  mu.Unlock();
  ++finished;
}

TEST(AsyncMutexTest, OneHolderAtATimeInFifoOrder) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  AsyncMutex mu(ring);
  std::vector<std::string> log;
  int finished = 0;
  for (int i = 0; i < 3; ++i) Locker(ring, mu, log, i, finished);
  EXPECT_TRUE(mu.locked());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (finished < 3 && absl::Now() < deadline) {
    ring.RunOnce(absl::Milliseconds(20));
  }
  ASSERT_EQ(finished, 3);
  EXPECT_FALSE(mu.locked());
  EXPECT_EQ(log, (std::vector<std::string>{"lock0", "unlock0", "lock1",
                                           "unlock1", "lock2", "unlock2"}));
}

// Unlock hands over through Ring::Defer: the next holder runs after the
// current batch, not inside the unlocking coroutine's stack.
TEST(AsyncMutexTest, HandOverIsDeferred) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  AsyncMutex mu(ring);
  bool second_has_lock = false;
  auto second = [](AsyncMutex& mu, bool& has) -> Detached {
    co_await mu.Lock();
    has = true;
    mu.Unlock();
  };
  auto first = [](Ring& ring, AsyncMutex& mu, bool& has) -> Task<bool> {
    co_await mu.Lock();
    co_await Sleep(ring, absl::Milliseconds(1));
    mu.Unlock();
    const bool during = has;  // still in our stack: must be false
    co_return during;
  };
  std::optional<bool> during;
  bool done = false;
  testing::internal::DriveTask(first(ring, mu, second_has_lock), during, done);
  second(mu, second_has_lock);
  ASSERT_TRUE(RunUntil(ring, done));
  EXPECT_FALSE(*during);
  ASSERT_TRUE(RunUntil(ring, second_has_lock));
  EXPECT_FALSE(mu.locked());
}

// Every frame comes from the block pool (base/block_pool.h).
Task<int> Answer(int x) { co_return x * 2; }

Task<int> Outer() {
  int sum = 0;
  for (int i = 0; i < 10; ++i) sum += co_await Answer(i);
  co_return sum;
}

TEST(TaskFramePoolTest, TaskFramesComeFromThePool) {
  if (!internal::BlocksPooled()) GTEST_SKIP() << "sanitizer build";
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
  for (size_t size = 16; size <= internal::kMaxPooledBlock; size += 16) {
    counts.push_back(internal::FreeBlocksForTests(size));
  }
  size_t cached = 0;
  for (size_t c : counts) cached += c;
  EXPECT_GT(cached, 0u) << "no frame went back to the pool";
  EXPECT_EQ(run(), 90);
  size_t i = 0;
  for (size_t size = 16; size <= internal::kMaxPooledBlock; size += 16, ++i) {
    EXPECT_EQ(internal::FreeBlocksForTests(size), counts[i]) << size;
  }
}

}  // namespace
}  // namespace popgate
