#include "runtime/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace popgate {

bool PipePool::Acquire(Pipe& out) {
  if (!idle_.empty()) {
    out = std::move(idle_.back());
    idle_.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
  out.r.Reset(fds[0]);
  out.w.Reset(fds[1]);
  // Best effort: a smaller pipe only means more, shorter splices.
  fcntl(out.w.get(), F_SETPIPE_SZ, static_cast<int>(pipe_size_));
  return true;
}

void PipePool::Release(Pipe p, bool empty) {
  if (!empty || idle_.size() >= max_idle_) return;  // closes p
  idle_.push_back(std::move(p));
}

}  // namespace popgate
