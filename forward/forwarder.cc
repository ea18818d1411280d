#include "forward/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string_view>

#include "base/block_pool.h"
#include "forward/forward_activity.h"
#include "forward/forward_drain.h"
#include "runtime/buffer_ring.h"
#include "runtime/join.h"
#include "runtime/pipe_pool.h"
#include "tls/ktls_socket.h"

namespace popgate {
namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// Bursts up to this size are copied through user space (see
// RunDirection).
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
// close_notify is its clean end; another record (an alert, a key update)
// is one the kernel cannot take: ours to report.
std::optional<DirectionEnd> KtlsReadEnd(const End& from, int err) {
  if (!from.ktls || (err != -EIO && err != -EINVAL && err != -EBADMSG)) {
    return std::nullopt;
  }
  if (err != -EBADMSG && tls::ReadKernelTlsControlRecord(from.fd) ==
                             tls::KtlsControl::kCloseNotify) {
    return DirectionEnd::kEof;
  }
  return DirectionEnd::kProxyError;
}

// Whether a direction watches for its source's end while it waits on a
// stalled sink: the backend -> client direction does (see StallCheckPeriod).
struct StallWatch {
  int source_fd;
  absl::Duration drain;
  absl::Duration period;
  // When the source's end was first seen; InfiniteFuture() while not.
  absl::Time ended_at = absl::InfiniteFuture();
  // The sink made no room within `drain` after that: give up on it.
  bool drained = false;

  // What is left of the drain time once the source's end has been read.
  absl::Duration DrainLeft() const {
    if (ended_at == absl::InfiniteFuture()) return drain;
    return std::max(drain - (absl::Now() - ended_at), absl::ZeroDuration());
  }
};

// -ETIME: the session went idle. -ESHUTDOWN: the watched source ended
// and the sink did not make room within the drain time.
constexpr int kDrained = -ESHUTDOWN;

// Shared by both directions: a session is idle only when neither moves.
// Waits for `events` on `fd`, for as long as the session as a whole is not
// idle. Returns the poll result, -ETIME once the session is idle, or
// kDrained (`watch` only).
Task<int> WaitFor(Ring& ring, int fd, unsigned events,
                  ForwardActivity& activity, StallWatch* watch = nullptr) {
  while (true) {
    absl::Duration left = activity.Left();
    if (left <= absl::ZeroDuration()) co_return -ETIME;
    if (watch != nullptr) left = std::min(left, watch->period);
    int ev = co_await PollFd(ring, fd, events, left);
    if (ev != -ECANCELED) co_return ev;
    // Timed out: the other direction may have been busy meanwhile.
    if (watch != nullptr) {
      absl::Time now = absl::Now();
      if (watch->ended_at == absl::InfiniteFuture()) {
        if (PeerEnded(watch->source_fd)) watch->ended_at = now;
      } else if (now - watch->ended_at >= watch->drain) {
        watch->drained = true;
        co_return kDrained;
      }
    }
  }
}

// Sends all of `data` on a non-blocking socket, waiting for room as needed.
// 0, -ETIME when the session went idle meanwhile, kDrained, or -errno.
Task<int> SendAll(Ring& ring, int fd, std::string_view data,
                  ForwardActivity& activity, StallWatch* watch) {
  while (!data.empty()) {
    int n = co_await Send(ring, fd, data.data(), data.size());
    if (n == -EAGAIN) {
      int ev = co_await WaitFor(ring, fd, POLLOUT, activity, watch);
      if (ev == -ETIME || ev == kDrained) co_return ev;
      if (ev < 0 || (ev & (POLLERR | POLLHUP))) co_return -EPIPE;
      continue;
    }
    if (n <= 0) co_return n == 0 ? -EPIPE : n;
    data.remove_prefix(static_cast<size_t>(n));
    activity.Touch();
  }
  co_return 0;
}

// Where a direction's bytes go and what it notes on the way.
struct Direction {
  End from;
  End to;
  uint64_t& bytes;
  // The client -> backend direction: the lines it sees (all of them: this
  // direction never splices, see RunDirection).
  QuitTracker* client_lines;
  // The backend -> client direction: watches the backend while stalled.
  StallWatch* watch;
};

// One non-blocking splice(2), here on the worker thread: bytes or -errno.
// Not through the ring: io_uring hands every splice to an io-wq thread
// (splice may wait on a pipe's lock), which costs two context switches and
// a wake-up of the ring per call; with non-blocking pipes and sockets the
// call returns at once, moving page references (and, into a kernel-TLS
// socket, encrypting at most one pipe's worth).
int SpliceNow(int in, int out, unsigned len) {
  ssize_t n = ::splice(in, nullptr, out, nullptr, len, kSpliceFlags);
  return n < 0 ? -errno : static_cast<int>(n);
}

DirectionEnd SinkEnd(int rc) {
  if (rc == -ETIME) return DirectionEnd::kIdle;
  if (rc == kDrained) return DirectionEnd::kEof;  // the source had ended
  return DirectionEnd::kSinkError;
}

// The end a read of `d.from` that returned `rc` (0 or -errno) means; a
// clean end is passed on to `d.to` as a half-close.
DirectionEnd ReadEnd(const Direction& d, int rc) {
  DirectionEnd end = DirectionEnd::kEof;
  if (rc < 0) {
    end = KtlsReadEnd(d.from, rc).value_or(DirectionEnd::kSourceError);
  }
  if (end == DirectionEnd::kEof) HalfClose(d.to);
  return end;
}

// The receive for when every provided buffer of the worker is in use. Polls,
// then receives into a private buffer (`small`, allocated here from the
// worker's block pool: only while it is needed; with a thousand sessions
// in flight a turn's receives outrun the provided buffers about once a
// session). The receive's result, or -ETIME once the session is
// idle, or the poll's error.
Task<int> RecvPrivate(Ring& ring, int from, ForwardActivity& activity,
                      PooledBuffer& small) {
  int ev = co_await WaitFor(ring, from, POLLIN | POLLRDHUP, activity);
  if (ev < 0) co_return ev == -ETIME ? -ETIME : -EPIPE;
  small = PooledBuffer(kSmallCopy);
  co_return co_await Recv(ring, from, small.get(), kSmallCopy);
}

// A burst from the backend (a RETR) that filled a small buffer: spliced,
// chunk after chunk, through a pipe from `pool` while data keeps coming,
// so mail bodies never enter user space. Between two chunks the ring gets
// a turn (Yield): the splices run on this thread, and a burst that kept
// coming would otherwise hold it. nullopt once the burst is over (the
// pipe goes back to the pool and the direction waits again) or when no
// pipe could be had (the direction copies on), else the direction's end.
Task<std::optional<DirectionEnd>> SpliceBurst(Ring& ring, PipePool& pool,
                                              const Direction& d,
                                              ForwardActivity& activity) {
  const int from = d.from.fd;
  const int to = d.to.fd;
  const unsigned chunk = static_cast<unsigned>(pool.pipe_size());
  Pipe pipe;
  // No pipe to be had (the descriptor limit): the burst goes on through
  // the small-buffer copy instead, slower but with nothing lost.
  if (!pool.Acquire(pipe)) co_return std::nullopt;
  bool pipe_empty = true;
  bool yield_first = false;  // the burst's first chunk follows at once
  std::optional<DirectionEnd> end;
  while (true) {
    if (yield_first) co_await Yield(ring);
    yield_first = true;
    int n = SpliceNow(from, pipe.w.get(), chunk);
    if (n == -EAGAIN) break;  // the burst is over
    if (n <= 0) {
      end = ReadEnd(d, n);
      break;
    }
    const int out = SpliceNow(pipe.r.get(), to, static_cast<unsigned>(n));
    pipe_empty = false;
    activity.Touch();
    unsigned left = static_cast<unsigned>(n);
    if (out > 0) {
      left -= static_cast<unsigned>(out);
      d.bytes += static_cast<uint64_t>(out);
    } else if (out != -EAGAIN) {
      end = DirectionEnd::kSinkError;
      break;
    }
    int stalled = 0;
    while (left > 0) {
      int m = SpliceNow(pipe.r.get(), to, left);
      if (m == -EAGAIN) {
        // The peer is not reading: wait, and read nothing more meanwhile.
        int ev = co_await WaitFor(ring, to, POLLOUT, activity, d.watch);
        if (ev == -ETIME || ev == kDrained) {
          stalled = ev;
          break;
        }
        if (ev < 0 || (ev & (POLLERR | POLLHUP))) break;
        continue;
      }
      if (m <= 0) break;
      left -= static_cast<unsigned>(m);
      d.bytes += static_cast<uint64_t>(m);
      activity.Touch();
    }
    if (left > 0) {
      end = SinkEnd(stalled);
      break;
    }
    pipe_empty = true;
  }
  pool.Release(std::move(pipe), pipe_empty);
  co_return end;
}

// One direction, `from` -> `to`, until EOF or error; then its end is
// recorded and the sides are cut (or the client drains). The frame of this
// coroutine is what an idle session holds per direction, so the rare paths
// (no provided buffer, a burst to splice, the drain) are coroutines of
// their own, allocated only while they run.
// Waits for readability on the ring holding neither a pipe nor a buffer.
// Then:
// - POP3 commands and short replies are a few bytes each: one recv and one
//   send on the ring, where splicing them would take a pipe and two
//   syscalls per line (bench/micro/splice_bench: copying is cheaper below
//   16 KiB). Only these bytes are looked at, for QUIT.
// - A burst from the backend that fills that small buffer (a RETR) is
//   spliced (SpliceBurst). The client's bytes are always copied.
// Ends:
// - client -> backend (`d.client_lines` set): its clean end (the client's
//   FIN) was passed on as a half-close and the backend may still answer;
//   any other end, or any end once the backend has ended, cuts both sides.
// - backend -> client (`d.watch` set): after the backend's end (EOF or
//   reset) the client gets the drain time to read what was sent and close
//   (DrainClient); then, and after any other end, both sides are cut.
Detached RunDirection(Ring& ring, PipePool& pool, BufferRing* buffers,
                      Direction d, ForwardActivity& activity,
                      JoinCounter& join) {
  const int from = d.from.fd;
  const int to = d.to.fd;
  const bool from_client = d.client_lines != nullptr;
  DirectionEnd end = DirectionEnd::kEof;
  while (true) {
    // The next bytes go into a small buffer. Preferably one of the
    // worker's provided buffers: the kernel picks it only when data
    // arrives, so waiting holds none, and it takes one operation instead
    // of a poll and a recv. When they are all in use: RecvPrivate.
    ProvidedRecv pr{-ENOBUFS, -1};
    if (buffers != nullptr && buffers->ready()) {
      absl::Duration left = activity.Left();
      if (left <= absl::ZeroDuration()) {
        end = DirectionEnd::kIdle;
        break;
      }
      pr = co_await RecvProvided(ring, *buffers, from, left);
      // Timed out: the other direction may have been busy meanwhile.
      if (pr.result == -ECANCELED) continue;
    }
    ProvidedLease lease(buffers, pr.buffer);
    PooledBuffer small;
    int got = pr.result;
    if (got == -ENOBUFS) {
      got = co_await RecvPrivate(ring, from, activity, small);
      if (got == -ETIME) {
        end = DirectionEnd::kIdle;
        break;
      }
    }
    if (got == -EAGAIN) continue;  // woken without data after all
    if (got <= 0) {
      end = ReadEnd(d, got);
      break;
    }
    activity.Touch();
    std::string_view bytes(small ? small.get() : lease.data(),
                           static_cast<size_t>(got));
    int rc = co_await SendAll(ring, to, bytes, activity, d.watch);
    if (rc < 0) {
      end = SinkEnd(rc);
      break;
    }
    d.bytes += static_cast<uint64_t>(got);
    if (from_client) d.client_lines->Feed(bytes);
    // A read that did not fill its buffer: the burst is over. The
    // client's bytes are commands, never mail: even a burst of them (a
    // pipelined run of DELEs) is cheaper to copy than to splice, and
    // seeing them all keeps the QUIT check exact.
    if (static_cast<size_t>(got) < (small ? kSmallCopy : kProvidedSize) ||
        from_client) {
      continue;
    }
    std::optional<DirectionEnd> burst_end =
        co_await SpliceBurst(ring, pool, d, activity);
    if (burst_end) {
      end = *burst_end;
      break;
    }
  }
  activity.Record(end, from_client);
  if (from_client) {
    if (end != DirectionEnd::kEof || activity.backend_ended) {
      CutBoth(from, to);
    }
  } else {
    if (d.watch->drained) {
      // Stalled on the client past the drain time after the backend's end.
      AbortIfUnsent(to);
    } else if ((end == DirectionEnd::kEof ||
                end == DirectionEnd::kSourceError) &&
               !activity.client_done) {
      if (end == DirectionEnd::kSourceError) HalfClose(d.to);
      co_await DrainClient(ring, to, d.watch->DrainLeft());
    }
    CutBoth(from, to);
  }
  join.Done();
}

}  // namespace

void BoundSocketBuffers(int fd, int bytes, SocketSide side) {
  if (bytes <= 0) return;
  // Bytes from the backend waiting here for the client: a stalled client
  // makes the client's send queue and the backend's receive queue fill.
  //  - The backend socket: SO_RCVBUF (and SO_SNDBUF for the reverse way),
  //    which lock the sizes (no autotuning from here on). The backend is
  //    near (a data centre), so a window of this size costs no throughput.
  //  - The client socket: TCP_NOTSENT_LOWAT bounds only the bytes not yet
  //    sent, and leaves what is in flight to the congestion window: a
  //    client far away keeps its throughput (SO_SNDBUF would cap it at
  //    about bytes / RTT), and one that stops reading holds at most about
  //    this much once its window has closed. SO_RCVBUF for the reverse
  //    way (commands). Not TCP (tests over Unix sockets): SO_SNDBUF.
  if (side == SocketSide::kClient &&
      ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof(bytes)) ==
          0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    return;
  }
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

Task<ForwardStats> ForwardSplice(Ring& ring, PipePool& pool,
                                 BufferRing* buffers, int client_fd,
                                 int backend_fd, const ForwardOptions& options,
                                 bool client_ktls) {
  ForwardStats stats;
  ForwardActivity activity(options.idle_timeout, options.client_lines);
  // No F_GETFL first: a socket's other settable status flags (O_APPEND,
  // O_ASYNC, O_DIRECT, O_NOATIME) are never set here, so this keeps them
  // as they are and saves a system call per socket.
  for (int fd : {client_fd, backend_fd}) fcntl(fd, F_SETFL, O_NONBLOCK);
  BoundSocketBuffers(client_fd, options.socket_buffer, SocketSide::kClient);
  BoundSocketBuffers(backend_fd, options.socket_buffer, SocketSide::kBackend);
  StallWatch watch{.source_fd = backend_fd,
                   .drain = options.client_drain_timeout,
                   .period = StallCheckPeriod(options.client_drain_timeout)};
  const End client{client_fd, client_ktls};
  const End backend{backend_fd, false};
  JoinCounter join(2);
  RunDirection(ring, pool, buffers,
               {client, backend, stats.client_to_backend,
                &activity.client_lines, nullptr},
               activity, join);
  RunDirection(ring, pool, buffers,
               {backend, client, stats.backend_to_client, nullptr, &watch},
               activity, join);
  co_await join.Wait();
  stats.end = activity.End();
  co_return stats;
}

}  // namespace popgate
