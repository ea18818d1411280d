// A mutex for coroutines on one ring's thread: lets two coroutines of one
// session (the two forwarding directions) take turns at a shared resource,
// such as a TLS connection's output, without blocking the thread.
#ifndef POPGATE_RUNTIME_ASYNC_MUTEX_H_
#define POPGATE_RUNTIME_ASYNC_MUTEX_H_

#include <coroutine>
#include <vector>

#include "runtime/ring.h"

namespace popgate {

class AsyncMutex {
 public:
  explicit AsyncMutex(Ring& ring) : ring_(ring) {}

  class LockOp {
   public:
    explicit LockOp(AsyncMutex& m) : m_(m) {}
    bool await_ready() noexcept {
      if (m_.locked_) return false;
      m_.locked_ = true;
      return true;
    }
    void await_suspend(std::coroutine_handle<> h) { m_.waiters_.push_back(h); }
    void await_resume() const noexcept {}

   private:
    AsyncMutex& m_;
  };

  LockOp Lock() { return LockOp(*this); }
  bool locked() const { return locked_; }
  // Hands the lock straight to the next waiter (resumed after this batch).
  void Unlock() {
    if (waiters_.empty()) {
      locked_ = false;
      return;
    }
    std::coroutine_handle<> next = waiters_.front();
    waiters_.erase(waiters_.begin());
    ring_.Defer(next);
  }

 private:
  Ring& ring_;
  bool locked_ = false;
  std::vector<std::coroutine_handle<>> waiters_;  // FIFO; tiny
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_ASYNC_MUTEX_H_
