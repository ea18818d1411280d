// The end of a forwarded session once the backend has ended, shared by the
// splice and copy paths: the client gets client_drain_timeout to read what
// was sent and close; then popgate closes too, with a reset if bytes are
// still queued for the client, so their kernel memory is freed at once
// instead of waiting on a client that does not read.
#ifndef POPGATE_FORWARD_FORWARD_DRAIN_H_
#define POPGATE_FORWARD_FORWARD_DRAIN_H_

#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>

#include "absl/time/time.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate {

// Ends both directions: pending and later reads and writes on either socket
// complete at once.
inline void CutBoth(int a, int b) {
  ::shutdown(a, SHUT_RDWR);
  ::shutdown(b, SHUT_RDWR);
}

// Makes the coming close() of `fd` a reset if bytes still wait to be sent
// or acknowledged: the client did not read them in time.
inline void AbortIfUnsent(int fd) {
  int unsent = 0;
  if (::ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent > 0) {
    linger l{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
}

// True if `fd`'s peer has sent its FIN or the socket failed (even with
// bytes still unread before it). Never waits.
inline bool PeerEnded(int fd) {
  pollfd p{.fd = fd, .events = POLLRDHUP, .revents = 0};
  return ::poll(&p, 1, 0) == 1 &&
         (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// After the backend's end (our FIN or close_notify already queued to the
// client): waits for the client's FIN or error, or for the other direction
// to stop (it cuts the sockets), for at most `drain`.
inline Task<void> DrainClient(Ring& ring, int client_fd, absl::Duration drain) {
  int ev = -ECANCELED;
  if (drain > absl::ZeroDuration()) {
    std::optional<absl::Duration> limit;
    if (drain != absl::InfiniteDuration()) limit = drain;
    ev = co_await PollFd(ring, client_fd, POLLRDHUP, limit);
  }
  if (ev == -ECANCELED) AbortIfUnsent(client_fd);
}

// How often a direction stalled on a client that does not read looks
// whether its backend has ended meanwhile (its FIN waits behind unread
// bytes, so the read side cannot see it): a quarter of the drain time, at
// least 100 ms. Such a session then ends at most 1.25 drain times after
// the backend's end.
inline absl::Duration StallCheckPeriod(absl::Duration drain) {
  return std::max(drain / 4, absl::Milliseconds(100));
}

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_DRAIN_H_
