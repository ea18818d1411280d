#include "forward/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string_view>

#include "runtime/buffer_ring.h"
#include "forward/forward_activity.h"
#include "runtime/join.h"
#include "runtime/pipe_pool.h"
#include "tls/ktls_socket.h"

namespace popgate {
namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// Bursts up to this size are copied through user space (see Pump).
constexpr size_t kSmallCopy = 16 * 1024;
constexpr size_t kProvidedSize = BufferRing::kBufferSize;

// A provided buffer taken by a receive, given back to the ring when done.
class ProvidedLease {
 public:
  ProvidedLease(BufferRing* ring, int id) : ring_(ring), id_(id) {}
  ~ProvidedLease() {
    if (id_ >= 0) ring_->Recycle(static_cast<uint16_t>(id_));
  }
  ProvidedLease(const ProvidedLease&) = delete;
  ProvidedLease& operator=(const ProvidedLease&) = delete;
  const char* data() const {
    return id_ >= 0 ? ring_->Get(static_cast<uint16_t>(id_)) : nullptr;
  }

 private:
  BufferRing* ring_;
  int id_;
};

enum class PumpEnd { kEof, kSourceError, kSinkError, kPipeError, kIdle };

// One side of the forwarding; `ktls`: a TLS connection handed to the kernel.
struct End {
  int fd;
  bool ktls;
};

// Passes a FIN on. A kernel-TLS peer gets a close_notify first, as the
// user-space path would send (clients may treat a bare FIN as truncation).
void HalfClose(const End& to) {
  if (to.ktls) tls::SendKernelTlsCloseNotify(to.fd);
  ::shutdown(to.fd, SHUT_WR);
}

// A read from a kernel-TLS socket fails (EIO from recv, EINVAL from
// splice) when the next record is not application data. The client's
// close_notify is its clean end; anything else ends the session.
bool IsCleanKtlsEnd(const End& from, int err) {
  if (!from.ktls || (err != -EIO && err != -EINVAL)) return false;
  return tls::ReadKernelTlsControlRecord(from.fd) ==
         tls::KtlsControl::kCloseNotify;
}

// Shared by both directions: a session is idle only when neither moves.
// Waits for `events` on `fd`, for as long as the session as a whole is not
// idle. Returns the poll result, or -ETIME once the session is idle.
Task<int> WaitFor(Ring& ring, int fd, unsigned events,
                  ForwardActivity& activity) {
  while (true) {
    absl::Duration left = activity.Left();
    if (left <= absl::ZeroDuration()) co_return -ETIME;
    int ev = co_await PollFd(ring, fd, events, left);
    if (ev != -ECANCELED) co_return ev;
    // Timed out: the other direction may have been busy meanwhile.
  }
}

// Sends all of `data` on a non-blocking socket, waiting for room as needed.
// 0, -ETIME when the session went idle meanwhile, or -errno.
Task<int> SendAll(Ring& ring, int fd, std::string_view data,
                  ForwardActivity& activity) {
  while (!data.empty()) {
    int n = co_await Send(ring, fd, data.data(), data.size());
    if (n == -EAGAIN) {
      int ev = co_await WaitFor(ring, fd, POLLOUT, activity);
      if (ev == -ETIME) co_return -ETIME;
      if (ev < 0 || (ev & (POLLERR | POLLHUP))) co_return -EPIPE;
      continue;
    }
    if (n <= 0) co_return n == 0 ? -EPIPE : n;
    data.remove_prefix(static_cast<size_t>(n));
    activity.Touch();
  }
  co_return 0;
}

// Moves bytes `from` -> `to` until EOF or error. Waits for readability with
// a poll (holding neither a buffer, a pipe nor a kernel thread: a splice
// that blocked would park an io-wq worker per idle session). Then:
// - POP3 commands and short replies are a few bytes each. The kernel runs
//   every splice on an io-wq thread, so splicing them would cost two thread
//   hand-offs per line; a recv and a send on the ring run inline instead.
// - A burst that fills that small buffer (a RETR) is spliced, chunk after
//   chunk, while data keeps coming: mail bodies never enter user space.
Task<PumpEnd> Pump(Ring& ring, PipePool& pool, BufferRing* buffers,
                   End from_end, End to_end, uint64_t& bytes,
                   ForwardActivity& activity) {
  const int from = from_end.fd;
  const int to = to_end.fd;
  const unsigned chunk = static_cast<unsigned>(pool.pipe_size());
  Pipe pipe;
  bool have_pipe = false;
  bool pipe_empty = true;
  PumpEnd end = PumpEnd::kEof;
  while (true) {
    if (!have_pipe) {
      // The next bytes go into a small buffer. Preferably one of the
      // worker's provided buffers: the kernel picks it only when data
      // arrives, so waiting holds none, and it takes one operation instead
      // of a poll and a recv. When they are all in use: poll, then recv
      // into a private buffer.
      ProvidedRecv pr{-ENOBUFS, -1};
      if (buffers != nullptr && buffers->ready()) {
        absl::Duration left = activity.Left();
        if (left <= absl::ZeroDuration()) {
          end = PumpEnd::kIdle;
          break;
        }
        pr = co_await RecvProvided(ring, *buffers, from, left);
        // Timed out: the other direction may have been busy meanwhile.
        if (pr.result == -ECANCELED) continue;
      }
      ProvidedLease lease(buffers, pr.buffer);
      std::unique_ptr<char[]> small;
      const char* data = lease.data();
      int got = pr.result;
      if (got == -ENOBUFS) {
        int ev = co_await WaitFor(ring, from, POLLIN | POLLRDHUP, activity);
        if (ev == -ETIME) {
          end = PumpEnd::kIdle;
          break;
        }
        if (ev < 0) {
          end = PumpEnd::kSourceError;
          break;
        }
        small.reset(new char[kSmallCopy]);
        data = small.get();
        got = co_await Recv(ring, from, small.get(), kSmallCopy);
      }
      if (got == -EAGAIN) continue;  // woken without data after all
      if (got == 0 || IsCleanKtlsEnd(from_end, got)) {
        HalfClose(to_end);
        end = PumpEnd::kEof;
        break;
      }
      if (got < 0) {
        end = PumpEnd::kSourceError;
        break;
      }
      activity.Touch();
      int rc = co_await SendAll(ring, to, {data, static_cast<size_t>(got)},
                                activity);
      if (rc < 0) {
        end = rc == -ETIME ? PumpEnd::kIdle : PumpEnd::kSinkError;
        break;
      }
      bytes += static_cast<uint64_t>(got);
      // A read that did not fill its buffer: the burst is over.
      if (static_cast<size_t>(got) < (small ? kSmallCopy : kProvidedSize)) {
        continue;
      }
      if (!pool.Acquire(pipe)) {
        end = PumpEnd::kPipeError;
        break;
      }
      have_pipe = true;
    }
    auto [n, out] = co_await SplicePairOp(
        ring, from, pipe.w.get(), pipe.r.get(), to, chunk, kSpliceFlags);
    if (n == -EAGAIN) {
      pool.Release(std::move(pipe), /*empty=*/true);
      have_pipe = false;
      continue;
    }
    if (n == 0 || IsCleanKtlsEnd(from_end, n)) {
      HalfClose(to_end);
      end = PumpEnd::kEof;
      break;
    }
    if (n < 0) {
      end = PumpEnd::kSourceError;
      break;
    }
    pipe_empty = false;
    activity.Touch();
    unsigned left = static_cast<unsigned>(n);
    if (out > 0) {
      left -= static_cast<unsigned>(out);
      bytes += static_cast<uint64_t>(out);
    } else if (out != -EAGAIN) {
      end = PumpEnd::kSinkError;
      break;
    }
    bool idle = false;
    while (left > 0) {
      int m = co_await Splice(ring, pipe.r.get(), to, left, kSpliceFlags);
      if (m == -EAGAIN) {
        // The peer is not reading: wait, and read nothing more meanwhile.
        int ev = co_await WaitFor(ring, to, POLLOUT, activity);
        if (ev == -ETIME) {
          idle = true;
          break;
        }
        if (ev < 0 || (ev & (POLLERR | POLLHUP))) break;
        continue;
      }
      if (m <= 0) break;
      left -= static_cast<unsigned>(m);
      bytes += static_cast<uint64_t>(m);
      activity.Touch();
    }
    if (left > 0) {
      end = idle ? PumpEnd::kIdle : PumpEnd::kSinkError;
      break;
    }
    pipe_empty = true;
  }
  if (have_pipe) pool.Release(std::move(pipe), pipe_empty);
  co_return end;
}

Detached RunPump(Ring& ring, PipePool& pool, BufferRing* buffers, End from,
                 End to, uint64_t& bytes, ForwardActivity& activity,
                 PumpEnd& end, JoinCounter& join, int cut_a, int cut_b) {
  end = co_await Pump(ring, pool, buffers, from, to, bytes, activity);
  if (activity.EndedCleanly(end == PumpEnd::kEof, end == PumpEnd::kIdle)) {
    end = PumpEnd::kEof;
  } else {
    // One side is broken: end the other direction too.
    ::shutdown(cut_a, SHUT_RDWR);
    ::shutdown(cut_b, SHUT_RDWR);
  }
  join.Done();
}

}  // namespace

Task<ForwardStats> ForwardSplice(Ring& ring, PipePool& pool,
                                 BufferRing* buffers, int client_fd,
                                 int backend_fd, absl::Duration idle_timeout,
                                 bool client_ktls) {
  ForwardStats stats;
  ForwardActivity activity(idle_timeout);
  for (int fd : {client_fd, backend_fd}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  JoinCounter join(2);
  PumpEnd up_end = PumpEnd::kEof, down_end = PumpEnd::kEof;
  const End client{client_fd, client_ktls};
  const End backend{backend_fd, false};
  RunPump(ring, pool, buffers, client, backend, stats.client_to_backend,
          activity, up_end, join, client_fd, backend_fd);
  RunPump(ring, pool, buffers, backend, client, stats.backend_to_client,
          activity, down_end, join, client_fd, backend_fd);
  co_await join.Wait();
  if (up_end == PumpEnd::kIdle || down_end == PumpEnd::kIdle) {
    stats.end = "idle_timeout";
  } else if (up_end == PumpEnd::kPipeError || down_end == PumpEnd::kPipeError) {
    stats.end = "pipe_error";
  } else if (up_end == PumpEnd::kSourceError ||
             down_end == PumpEnd::kSinkError) {
    stats.end = "client_error";
  } else if (down_end == PumpEnd::kSourceError ||
             up_end == PumpEnd::kSinkError) {
    stats.end = "backend_error";
  }
  co_return stats;
}

}  // namespace popgate
