#include "auth/hash_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

TEST(HashPoolTest, RunsAllJobsOnPoolThreads) {
  constexpr int kJobs = 200;
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> seen;
  std::atomic<int> done{0};
  {
    HashPool pool(4);
    EXPECT_EQ(pool.threads(), 4u);
    for (int i = 0; i < kJobs; ++i) {
      pool.Submit([&] {
        {
          std::lock_guard<std::mutex> lock(mu);
          seen.insert(std::this_thread::get_id());
        }
        done.fetch_add(1);
      });
    }
  }  // destructor drains and joins
  EXPECT_EQ(done.load(), kJobs);
  EXPECT_FALSE(seen.empty());
  EXPECT_LE(seen.size(), 4u);
  EXPECT_EQ(seen.count(caller), 0u);
}

TEST(HashPoolTest, ZeroThreadsStillUsesAPoolThread) {
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  {
    HashPool pool(0);
    EXPECT_EQ(pool.threads(), 1u);
    pool.Submit([&] { ran_on = std::this_thread::get_id(); });
  }
  EXPECT_NE(ran_on, std::thread::id());
  EXPECT_NE(ran_on, caller);
}

TEST(HashPoolTest, FifoWithOneThread) {
  std::vector<int> order;  // only the single pool thread touches it
  {
    HashPool pool(1);
    for (int i = 0; i < 50; ++i)
      pool.Submit([&order, i] { order.push_back(i); });
  }
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

TEST(HashPoolTest, DestructorDrainsQueuedJobs) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> done{0};
  {
    HashPool pool(1);
    // Blocks the only thread so that everything after it is still queued
    // when the destructor starts.
    pool.Submit([&] {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
      done.fetch_add(1);
    });
    for (int i = 0; i < 20; ++i) pool.Submit([&] { done.fetch_add(1); });
    {
      std::lock_guard<std::mutex> lock(mu);
      release = true;
    }
    cv.notify_all();
  }
  EXPECT_EQ(done.load(), 21);
}

TEST(HashPoolTest, JobsSubmittedByJobsDuringDrainRun) {
  std::atomic<int> done{0};
  {
    HashPool pool(2);
    for (int i = 0; i < 10; ++i) {
      pool.Submit([&pool, &done] {
        pool.Submit([&done] { done.fetch_add(1); });
        done.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(done.load(), 20);
}

TEST(HashPoolTest, ThreadsRunConcurrently) {
  // Two jobs that each wait for the other: only completes if the pool runs
  // them on two threads at once. Bounded waits so a bug fails, not hangs.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::atomic<int> met{0};
  {
    HashPool pool(2);
    for (int i = 0; i < 2; ++i) {
      pool.Submit([&] {
        std::unique_lock<std::mutex> lock(mu);
        ++arrived;
        cv.notify_all();
        if (cv.wait_for(lock, std::chrono::seconds(10),
                        [&] { return arrived == 2; })) {
          met.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(met.load(), 2);
}

TEST(HashPoolTest, MoveOnlyStateInJobs) {
  // std::function needs copyable callables; a shared_ptr is the usual way
  // to hand a job owned state. Check it is released after the job ran.
  auto state = std::make_shared<int>(41);
  std::weak_ptr<int> weak = state;
  {
    HashPool pool(1);
    pool.Submit([s = std::move(state)] { ++*s; });
  }
  EXPECT_TRUE(weak.expired());
}

// Holds the pool's only thread until released, so the queue's length is
// known exactly (no timing involved).
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return entered_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

TEST(HashPoolTest, TrySubmitRefusesBeyondTheBoundAndCounts) {
  Gate gate;
  std::atomic<int> ran{0};
  {
    HashPool pool(1, 3);
    ASSERT_TRUE(pool.TrySubmit([&] { gate.Wait(); }));
    gate.WaitEntered();  // the running job no longer counts as queued
    EXPECT_EQ(pool.queued(), 0u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(pool.TrySubmit([&] { ran.fetch_add(1); })) << i;
    }
    EXPECT_EQ(pool.queued(), 3u);
    EXPECT_FALSE(pool.TrySubmit([&] { ran.fetch_add(100); }));
    EXPECT_FALSE(pool.TrySubmit([&] { ran.fetch_add(100); }, 3));
    EXPECT_EQ(pool.rejected(), 2u);
    // A caller's own, larger bound is honoured.
    EXPECT_TRUE(pool.TrySubmit([&] { ran.fetch_add(1); }, 10));
    // Submit never refuses.
    pool.Submit([&] { ran.fetch_add(1); });
    EXPECT_EQ(pool.rejected(), 2u);
    gate.Open();
  }
  EXPECT_EQ(ran.load(), 5);  // the refused jobs never ran
}

TEST(HashPoolTest, ZeroBoundRefusesEveryJob) {
  Gate gate;
  HashPool pool(1, 0);
  ASSERT_TRUE(pool.TrySubmit([&] { gate.Wait(); }, 1));
  gate.WaitEntered();
  EXPECT_TRUE(pool.TrySubmit([] {}, 1));
  EXPECT_FALSE(pool.TrySubmit([] {}));
  EXPECT_EQ(pool.rejected(), 1u);
  gate.Open();
}

TEST(HashPoolTest, DefaultBound) {
  HashPool pool(1);
  EXPECT_EQ(pool.queue_limit(), HashPool::kDefaultQueueLimit);
}

}  // namespace
}  // namespace popgate::auth
