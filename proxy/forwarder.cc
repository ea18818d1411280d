#include "proxy/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <coroutine>

#include "proxy/pipe_pool.h"

namespace popgate {
namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

enum class PumpEnd { kEof, kSourceError, kSinkError, kPipeError };

// Moves bytes `from` -> `to` until EOF or error. Waits for readability with
// a poll (holding neither a pipe nor a kernel thread: a splice that blocked
// would park an io-wq worker per idle session), then splices chunk after
// chunk while data keeps coming.
Task<PumpEnd> Pump(Ring& ring, PipePool& pool, int from, int to,
                   uint64_t& bytes) {
  const unsigned chunk = static_cast<unsigned>(pool.pipe_size());
  Pipe pipe;
  bool have_pipe = false;
  bool pipe_empty = true;
  PumpEnd end = PumpEnd::kEof;
  while (true) {
    if (!have_pipe) {
      int ev = co_await PollFd(ring, from, POLLIN | POLLRDHUP);
      if (ev < 0) {
        end = PumpEnd::kSourceError;
        break;
      }
      if (!pool.Acquire(pipe)) {
        end = PumpEnd::kPipeError;
        break;
      }
      have_pipe = true;
    }
    int n = co_await Splice(ring, from, pipe.w.get(), chunk, kSpliceFlags);
    if (n == -EAGAIN) {
      pool.Release(std::move(pipe), /*empty=*/true);
      have_pipe = false;
      continue;
    }
    if (n == 0) {
      ::shutdown(to, SHUT_WR);  // half-close: pass the FIN on
      end = PumpEnd::kEof;
      break;
    }
    if (n < 0) {
      end = PumpEnd::kSourceError;
      break;
    }
    pipe_empty = false;
    unsigned left = static_cast<unsigned>(n);
    while (left > 0) {
      int m = co_await Splice(ring, pipe.r.get(), to, left, kSpliceFlags);
      if (m == -EAGAIN) {
        // The peer is not reading: wait, and read nothing more meanwhile.
        int ev = co_await PollFd(ring, to, POLLOUT);
        if (ev < 0 || (ev & (POLLERR | POLLHUP))) break;
        continue;
      }
      if (m <= 0) break;
      left -= static_cast<unsigned>(m);
      bytes += static_cast<uint64_t>(m);
    }
    if (left > 0) {
      end = PumpEnd::kSinkError;
      break;
    }
    pipe_empty = true;
  }
  if (have_pipe) pool.Release(std::move(pipe), pipe_empty);
  co_return end;
}

// Runs a pump as its own coroutine and signals a shared join counter.
struct Join {
  int remaining = 2;
  std::coroutine_handle<> waiter;
};

Detached RunPump(Ring& ring, PipePool& pool, int from, int to,
                 uint64_t& bytes, PumpEnd& end, Join& join, int cut_a,
                 int cut_b) {
  end = co_await Pump(ring, pool, from, to, bytes);
  if (end != PumpEnd::kEof) {
    // One side is broken: end the other direction too.
    ::shutdown(cut_a, SHUT_RDWR);
    ::shutdown(cut_b, SHUT_RDWR);
  }
  if (--join.remaining == 0) join.waiter.resume();
}

struct JoinAwaiter {
  Join& join;
  bool await_ready() const noexcept { return join.remaining == 0; }
  void await_suspend(std::coroutine_handle<> h) noexcept { join.waiter = h; }
  void await_resume() const noexcept {}
};

}  // namespace

Task<ForwardStats> ForwardSplice(Ring& ring, PipePool& pool, int client_fd,
                                 int backend_fd) {
  ForwardStats stats;
  for (int fd : {client_fd, backend_fd}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  Join join;
  PumpEnd up_end = PumpEnd::kEof, down_end = PumpEnd::kEof;
  RunPump(ring, pool, client_fd, backend_fd, stats.client_to_backend,
          up_end, join, client_fd, backend_fd);
  RunPump(ring, pool, backend_fd, client_fd, stats.backend_to_client,
          down_end, join, client_fd, backend_fd);
  co_await JoinAwaiter{join};
  if (up_end == PumpEnd::kPipeError || down_end == PumpEnd::kPipeError) {
    stats.end = "pipe_error";
  } else if (up_end == PumpEnd::kSourceError || down_end == PumpEnd::kSinkError) {
    stats.end = "client_error";
  } else if (down_end == PumpEnd::kSourceError ||
             up_end == PumpEnd::kSinkError) {
    stats.end = "backend_error";
  }
  co_return stats;
}

}  // namespace popgate
