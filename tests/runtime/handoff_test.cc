// Hand-off between threads: Ring::Post (eventfd wake-up) resumes a
// coroutine on the ring's own thread; RunOnPool runs a job on the hash pool
// and comes back to the ring.
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "auth/hash_pool.h"
#include "gtest/gtest.h"
#include "runtime/pool_await.h"
#include "runtime/ring.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::RunTask;

// Suspends and hands the handle to a new thread, which posts it back.
struct PostFromThread {
  Ring& ring;
  std::thread& thread;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    thread = std::thread([this, h] { ring.Post(h); });
  }
  void await_resume() const noexcept {}
};

TEST(HandOffTest, PostFromAnotherThreadResumesOnTheRingThread) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  std::thread poster;
  auto run = [](Ring& ring, std::thread& poster) -> Task<std::thread::id> {
    co_await PostFromThread{ring, poster};
    co_return std::this_thread::get_id();
  };
  std::optional<std::thread::id> resumed_on = RunTask(ring, run(ring, poster));
  poster.join();
  ASSERT_TRUE(resumed_on.has_value());
  EXPECT_EQ(*resumed_on, std::this_thread::get_id());
}

// Many threads post at once, some while the ring thread sleeps in RunOnce
// and some while it dispatches: every coroutine is resumed exactly once.
TEST(HandOffTest, ConcurrentPostsEachResumeOnce) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<std::coroutine_handle<>> handles;
  std::vector<int> resumed(kTotal, 0);
  int finished = 0;
  struct Park {
    std::vector<std::coroutine_handle<>>& out;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) { out.push_back(h); }
    void await_resume() const noexcept {}
  };
  auto waiter = [](std::vector<std::coroutine_handle<>>& out, int& count,
                   int& finished) -> Detached {
    co_await Park{out};
    ++count;
    ++finished;
  };
  for (int i = 0; i < kTotal; ++i) waiter(handles, resumed[i], finished);
  ASSERT_EQ(handles.size(), static_cast<size_t>(kTotal));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        ring.Post(handles[t * kPerThread + i]);
        if (i % 50 == 0) std::this_thread::yield();
      }
    });
  }
  go.store(true);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (finished < kTotal && absl::Now() < deadline) {
    ring.RunOnce(absl::Milliseconds(50));
  }
  for (auto& t : threads) t.join();
  ring.RunOnce(absl::ZeroDuration());
  EXPECT_EQ(finished, kTotal);
  for (int i = 0; i < kTotal; ++i) EXPECT_EQ(resumed[i], 1) << i;
}

// Wake() from another thread ends a RunOnce that would otherwise wait for
// a long time. (The bound is generous: it only tells "woken" from "waited
// out the full 60 s".)
TEST(HandOffTest, WakeEndsAWaitingRunOnce) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  ring.RunOnce(absl::ZeroDuration());  // the eventfd read is in the kernel
  std::atomic<bool> stop{false};
  std::thread waker([&] {
    while (!stop.load()) {
      ring.Wake();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const absl::Time start = absl::Now();
  ring.RunOnce(absl::Seconds(60));
  const absl::Duration took = absl::Now() - start;
  stop.store(true);
  waker.join();
  EXPECT_LT(took, absl::Seconds(30));
}

TEST(HandOffTest, RunOnPoolRunsOnAPoolThreadAndResumesOnTheRing) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  auth::HashPool pool(2);
  struct Result {
    std::thread::id job_thread;
    std::thread::id resumed_on;
    int value = 0;
  };
  auto run = [](Ring& ring, auth::HashPool& pool) -> Task<Result> {
    Result r;
    std::thread::id job_thread;
    r.value = co_await RunOnPool(pool, ring, [&job_thread] {
      job_thread = std::this_thread::get_id();
      return 42;
    });
    r.job_thread = job_thread;
    r.resumed_on = std::this_thread::get_id();
    co_return r;
  };
  std::optional<Result> r = RunTask(ring, run(ring, pool));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->value, 42);
  EXPECT_NE(r->job_thread, std::this_thread::get_id());
  EXPECT_EQ(r->resumed_on, std::this_thread::get_id());
}

// Many logins hashing at once: every job's result comes back to its own
// coroutine, on the ring thread.
TEST(HandOffTest, ManyConcurrentPoolJobs) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  auth::HashPool pool(2);
  constexpr int kJobs = 300;
  std::vector<int> got(kJobs, -1);
  int finished = 0;
  bool wrong_thread = false;
  const std::thread::id me = std::this_thread::get_id();
  auto job = [](Ring& ring, auth::HashPool& pool, int i, int& out,
                int& finished, bool& wrong, std::thread::id me) -> Detached {
    out = co_await RunOnPool(pool, ring, [i] { return i * 3; });
    if (std::this_thread::get_id() != me) wrong = true;
    ++finished;
  };
  for (int i = 0; i < kJobs; ++i) {
    job(ring, pool, i, got[i], finished, wrong_thread, me);
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (finished < kJobs && absl::Now() < deadline) {
    ring.RunOnce(absl::Milliseconds(20));
  }
  ASSERT_EQ(finished, kJobs);
  EXPECT_FALSE(wrong_thread);
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(got[i], i * 3) << i;
}

}  // namespace
}  // namespace popgate
