// A fixed-size thread pool for password hashing, so that io_uring workers
// never run a slow hash themselves. Jobs run FIFO; the destructor drains the
// queue and joins the threads.
#ifndef POPGATE_AUTH_HASH_POOL_H_
#define POPGATE_AUTH_HASH_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace popgate::auth {

class HashPool {
 public:
  explicit HashPool(size_t threads);
  ~HashPool();
  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  // Queues `job`; never blocks beyond a mutex.
  void Submit(std::function<void()> job);
  size_t threads() const { return threads_.size(); }

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_HASH_POOL_H_
