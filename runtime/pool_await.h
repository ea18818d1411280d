// Runs a blocking function on a thread pool (the hash pool) and resumes the
// awaiting coroutine on its own worker's ring afterwards: the worker keeps
// serving other sessions meanwhile. TryRunOnPool does the same through the
// pool's bounded queue.
#ifndef POPGATE_RUNTIME_POOL_AWAIT_H_
#define POPGATE_RUNTIME_POOL_AWAIT_H_

#include <coroutine>
#include <cstddef>
#include <optional>
#include <utility>

#include "runtime/ring.h"

namespace popgate {

// Pool: anything with Submit(std::function<void()>) that runs the job on
// another thread (auth::HashPool).
template <typename Pool, typename Fn>
class OnPool {
 public:
  OnPool(Pool& pool, Ring& ring, Fn fn)
      : pool_(pool), ring_(ring), fn_(std::move(fn)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    // `this` lives in the suspended coroutine's frame until it resumes.
    pool_.Submit([this, h] {
      result_ = fn_();
      ring_.Post(h);
    });
  }
  auto await_resume() { return std::move(result_); }

 private:
  Pool& pool_;
  Ring& ring_;
  Fn fn_;
  decltype(std::declval<Fn&>()()) result_{};
};

template <typename Pool, typename Fn>
OnPool<Pool, Fn> RunOnPool(Pool& pool, Ring& ring, Fn fn) {
  return OnPool<Pool, Fn>(pool, ring, std::move(fn));
}

// Like RunOnPool, but through the pool's bounded queue: yields nullopt at once,
// without suspending, when the queue is full (Pool::TrySubmit(job, limit)
// refused it).
template <typename Pool, typename Fn>
class TryOnPool {
 public:
  using Result = decltype(std::declval<Fn&>()());
  TryOnPool(Pool& pool, Ring& ring, size_t limit, Fn fn)
      : pool_(pool), ring_(ring), limit_(limit), fn_(std::move(fn)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    // `this` lives in the suspended coroutine's frame until it resumes.
    queued_ = pool_.TrySubmit(
        [this, h] {
          result_ = fn_();
          ring_.Post(h);
        },
        limit_);
    return queued_;  // false: resume at once
  }
  std::optional<Result> await_resume() {
    if (!queued_) return std::nullopt;
    return std::move(result_);
  }

 private:
  Pool& pool_;
  Ring& ring_;
  size_t limit_;
  Fn fn_;
  bool queued_ = false;
  Result result_{};
};

template <typename Pool, typename Fn>
TryOnPool<Pool, Fn> TryRunOnPool(Pool& pool, Ring& ring, size_t limit, Fn fn) {
  return TryOnPool<Pool, Fn>(pool, ring, limit, std::move(fn));
}

}  // namespace popgate

#endif  // POPGATE_RUNTIME_POOL_AWAIT_H_
