// A fixed-size thread pool for password hashing, so that io_uring workers
// never run a slow hash themselves. Jobs run FIFO; the destructor drains the
// queue and joins the threads.
//
// The queue is bounded for callers that can say no (TrySubmit): a flood of
// logins or handshakes must not grow memory without limit, and a job that
// waits behind thousands of others is useless anyway (its client has given
// up). Submit stays unbounded for callers that must not be refused.
#ifndef POPGATE_AUTH_HASH_POOL_H_
#define POPGATE_AUTH_HASH_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace popgate::auth {

class HashPool {
 public:
  // The bound TrySubmit(job) applies when the caller names none.
  static constexpr size_t kDefaultQueueLimit = 1024;

  explicit HashPool(size_t threads, size_t queue_limit = kDefaultQueueLimit);
  ~HashPool();
  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  // Queues `job`; never blocks beyond a mutex; never refuses.
  void Submit(std::function<void()> job);
  // Queues `job` unless `max_queued` jobs are already waiting (jobs being
  // run do not count). False: `job` was dropped without running, and
  // rejected() counts it. max_queued == 0 refuses every job.
  bool TrySubmit(std::function<void()> job, size_t max_queued);
  bool TrySubmit(std::function<void()> job) {
    return TrySubmit(std::move(job), queue_limit_);
  }

  size_t threads() const { return threads_.size(); }
  size_t queue_limit() const { return queue_limit_; }
  // Jobs TrySubmit refused since start (for logs and, later, metrics).
  uint64_t rejected() const {
    return rejected_.load(std::memory_order_relaxed);
  }
  // Jobs waiting now (not those running).
  size_t queued() const;

 private:
  void Run();

  const size_t queue_limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::atomic<uint64_t> rejected_{0};
  std::vector<std::thread> threads_;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_HASH_POOL_H_
