// Pipes for splice, lent per chunk rather than owned per session: a
// direction holds a pipe only while bytes are in flight and gives it back
// once drained (an empty pipe carries nothing over). An idle forwarded
// session therefore holds no pipe at all, just its two sockets.
#ifndef POPGATE_RUNTIME_PIPE_POOL_H_
#define POPGATE_RUNTIME_PIPE_POOL_H_

#include <cstddef>
#include <vector>

#include "base/unique_fd.h"

namespace popgate {

struct Pipe {
  UniqueFd r, w;
};

class PipePool {
 public:
  // `pipe_size`: requested capacity (F_SETPIPE_SZ), best effort.
  // `max_idle`: pipes kept for reuse beyond that are closed on Release.
  PipePool(size_t pipe_size, size_t max_idle)
      : pipe_size_(pipe_size), max_idle_(max_idle) {}

  // False if no pipe could be made (fd limit).
  bool Acquire(Pipe& out);
  // `p` must be empty (fully drained); otherwise it is closed instead.
  void Release(Pipe p, bool empty);

  size_t pipe_size() const { return pipe_size_; }
  size_t idle() const { return idle_.size(); }

 private:
  size_t pipe_size_;
  size_t max_idle_;
  std::vector<Pipe> idle_;
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_PIPE_POOL_H_
