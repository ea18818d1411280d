#include "forward/forward_copy.h"

#include <errno.h>
#include <poll.h>

#include <memory>
#include <optional>
#include <string_view>

#include "forward/forward_activity.h"
#include "forward/forward_drain.h"
#include "runtime/join.h"

namespace popgate {
namespace {

// Four TLS records' worth of plaintext: fewer, larger reads and sends on
// the plain side; the TLS side still encrypts in full 16 KB records.
constexpr size_t kChunk = 64 * 1024;
// A close_notify that cannot be sent in this long is given up.
constexpr absl::Duration kCloseTime = absl::Seconds(5);

// Passes a FIN on: close_notify first when the sink is TLS.
Task<void> HalfClose(Stream& to) {
  co_await to.Close(kCloseTime);
  to.ShutdownWrite();
}

// A timed-out read or write is the session's idleness; another failure is
// that side's.
DirectionEnd ErrorEnd(int rc, DirectionEnd side) {
  return rc == -ECANCELED ? DirectionEnd::kIdle : side;
}

// One direction, `from` -> `to`, until EOF or error; then its end is
// recorded and the sides are cut (or the client drains), as RunDirection
// in forwarder.cc does. One coroutine per direction (its frame is what an
// idle session holds). `client_lines`: set for the client -> backend
// direction, every chunk of which passes through here anyway.
Detached RunCopy(Ring& ring, Stream& from, Stream& to, uint64_t& bytes,
                 ForwardActivity& activity, QuitTracker* client_lines,
                 absl::Duration drain, JoinCounter& join) {
  const bool from_client = client_lines != nullptr;
  DirectionEnd end = DirectionEnd::kEof;
  while (true) {
    absl::Duration left = activity.Left();
    if (left <= absl::ZeroDuration()) {
      end = DirectionEnd::kIdle;
      break;
    }
    // Wait with no buffer held: idle sessions cost no chunk memory.
    int n = co_await from.WaitReadable(left);
    if (n == -ECANCELED) continue;  // re-check shared idleness
    std::unique_ptr<char[]> buf;
    if (n > 0) {
      buf.reset(new char[kChunk]);
      n = co_await from.Read({buf.get(), kChunk}, activity.idle_timeout);
    }
    if (n == 0) {
      co_await HalfClose(to);
      break;
    }
    if (n < 0) {
      end = ErrorEnd(n, DirectionEnd::kSourceError);
      break;
    }
    activity.Touch();
    std::string_view chunk(buf.get(), static_cast<size_t>(n));
    int rc = co_await to.WriteAll(chunk, activity.idle_timeout);
    if (rc < 0) {
      end = ErrorEnd(rc, DirectionEnd::kSinkError);
      break;
    }
    bytes += static_cast<uint64_t>(n);
    if (from_client) client_lines->Feed(chunk);
    activity.Touch();
  }
  activity.Record(end, from_client);
  if (from_client) {
    if (end != DirectionEnd::kEof || activity.backend_ended) {
      CutBoth(from.fd(), to.fd());
    }
  } else {
    if ((end == DirectionEnd::kEof || end == DirectionEnd::kSourceError) &&
        !activity.client_done) {
      if (end == DirectionEnd::kSourceError) co_await HalfClose(to);
      co_await DrainClient(ring, to.fd(), drain);
    }
    CutBoth(from.fd(), to.fd());
  }
  join.Done();
}

// A client that stops reading stalls the backend -> client direction in
// WriteAll, so that direction cannot see the backend's end queued behind
// the bytes it has not read yet. This watches for it instead: one poll on
// the backend socket for the whole session (its FIN, an error, or our own
// cut at the end wakes it; no timer runs meanwhile). After the backend's
// end the client gets the drain time; if the direction is still stuck
// then, the session ends as the backend's (kBackendClosed) and both sides
// are cut.
Detached WatchBackendEnd(Ring& ring, int client_fd, int backend_fd,
                         absl::Duration drain, ForwardActivity& activity,
                         JoinCounter& join) {
  co_await PollFd(ring, backend_fd, POLLRDHUP);
  if (!activity.backend_done) {
    int ev = -ECANCELED;
    if (drain > absl::ZeroDuration()) {
      std::optional<absl::Duration> limit;
      if (drain != absl::InfiniteDuration()) limit = drain;
      // The client's FIN or error, or our cut, end the wait early.
      ev = co_await PollFd(ring, client_fd, POLLRDHUP, limit);
    }
    if (ev == -ECANCELED && !activity.backend_done) {
      activity.Record(DirectionEnd::kEof, /*from_client=*/false);
      AbortIfUnsent(client_fd);
      CutBoth(client_fd, backend_fd);
    }
  }
  join.Done();
}

}  // namespace

Task<ForwardStats> ForwardCopy(Ring& ring, Stream& client, Stream& backend,
                               const ForwardOptions& options) {
  ForwardStats stats;
  ForwardActivity activity(options.idle_timeout, options.client_lines);
  BoundSocketBuffers(client.fd(), options.socket_buffer, SocketSide::kClient);
  BoundSocketBuffers(backend.fd(), options.socket_buffer, SocketSide::kBackend);
  JoinCounter join(3);
  WatchBackendEnd(ring, client.fd(), backend.fd(), options.client_drain_timeout,
                  activity, join);
  RunCopy(ring, client, backend, stats.client_to_backend, activity,
          &activity.client_lines, options.client_drain_timeout, join);
  RunCopy(ring, backend, client, stats.backend_to_client, activity,
          /*client_lines=*/nullptr, options.client_drain_timeout, join);
  co_await join.Wait();
  stats.end = activity.End();
  co_return stats;
}

}  // namespace popgate
