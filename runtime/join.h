// Waiting for a fixed number of detached coroutines (the two directions of
// a forwarded session) to finish.
#ifndef POPGATE_RUNTIME_JOIN_H_
#define POPGATE_RUNTIME_JOIN_H_

#include <coroutine>

namespace popgate {

class JoinCounter {
 public:
  explicit JoinCounter(int count) : remaining_(count) {}

  // Called by each coroutine as it finishes; the last one resumes the
  // waiter (which may then destroy this counter: touch nothing after).
  void Done() {
    if (--remaining_ == 0 && waiter_) waiter_.resume();
  }

  auto Wait() {
    struct Awaiter {
      JoinCounter& j;
      bool await_ready() const noexcept { return j.remaining_ == 0; }
      void await_suspend(std::coroutine_handle<> h) noexcept { j.waiter_ = h; }
      void await_resume() const noexcept {}
    };
    return Awaiter{*this};
  }

 private:
  int remaining_;
  std::coroutine_handle<> waiter_;
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_JOIN_H_
