#include "proxy/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <coroutine>

#include "proxy/unique_fd.h"

namespace popgate {
namespace {

// Bytes per splice. The pipe is enlarged to match so one splice in and one
// out move a whole chunk; pipe pages are only allocated while data is in
// flight, so an idle session does not pay for the size.
constexpr unsigned kChunk = 256 * 1024;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

struct Pipe {
  UniqueFd r, w;
  bool Open() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
    r.Reset(fds[0]);
    w.Reset(fds[1]);
    // Best effort: a smaller pipe only means more, shorter splices.
    fcntl(w.get(), F_SETPIPE_SZ, kChunk);
    return true;
  }
};

enum class PumpEnd { kEof, kSourceError, kSinkError, kPipeError };

// Moves bytes `from` -> `to` until EOF or error.
Task<PumpEnd> Pump(Ring& ring, int from, int to, Pipe& pipe,
                   uint64_t& bytes) {
  while (true) {
    int n = co_await Splice(ring, from, pipe.w.get(), kChunk, kSpliceFlags);
    if (n == -EAGAIN) {
      // Nothing to read: wait for data without holding a kernel thread
      // (a splice that blocks would park an io-wq worker per idle session).
      int ev = co_await PollFd(ring, from, POLLIN | POLLRDHUP);
      if (ev < 0) co_return PumpEnd::kSourceError;
      continue;
    }
    if (n == 0) {
      ::shutdown(to, SHUT_WR);
      co_return PumpEnd::kEof;
    }
    if (n < 0) co_return PumpEnd::kSourceError;
    unsigned left = static_cast<unsigned>(n);
    while (left > 0) {
      int m = co_await Splice(ring, pipe.r.get(), to, left, kSpliceFlags);
      if (m == -EAGAIN) {
        // The peer is not reading: wait, and read nothing more meanwhile.
        int ev = co_await PollFd(ring, to, POLLOUT);
        if (ev < 0 || (ev & (POLLERR | POLLHUP))) co_return PumpEnd::kSinkError;
        continue;
      }
      if (m <= 0) co_return PumpEnd::kSinkError;
      left -= static_cast<unsigned>(m);
      bytes += static_cast<uint64_t>(m);
    }
  }
}

// Runs a pump as its own coroutine and signals a shared join counter.
struct Join {
  int remaining = 2;
  std::coroutine_handle<> waiter;
};

Detached RunPump(Ring& ring, int from, int to, Pipe& pipe, uint64_t& bytes,
                 PumpEnd& end, Join& join, int cut_a, int cut_b) {
  end = co_await Pump(ring, from, to, pipe, bytes);
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

Task<ForwardStats> ForwardSplice(Ring& ring, int client_fd, int backend_fd) {
  ForwardStats stats;
  Pipe up, down;
  if (!up.Open() || !down.Open()) {
    stats.end = "pipe_error";
    co_return stats;
  }
  for (int fd : {client_fd, backend_fd}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  Join join;
  PumpEnd up_end = PumpEnd::kEof, down_end = PumpEnd::kEof;
  RunPump(ring, client_fd, backend_fd, up, stats.client_to_backend, up_end,
          join, client_fd, backend_fd);
  RunPump(ring, backend_fd, client_fd, down, stats.backend_to_client,
          down_end, join, client_fd, backend_fd);
  co_await JoinAwaiter{join};
  if (up_end == PumpEnd::kSourceError || down_end == PumpEnd::kSinkError) {
    stats.end = "client_error";
  } else if (down_end == PumpEnd::kSourceError ||
             up_end == PumpEnd::kSinkError) {
    stats.end = "backend_error";
  }
  co_return stats;
}

}  // namespace popgate
