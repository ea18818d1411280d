// Reads the front balancer's PROXY header without taking a byte of what
// follows it (a TLS ClientHello, pipelined POP3): the bytes are peeked,
// parsed, and only the header's own length is then read off the socket.
//
// Waiting costs no busy loop. With nothing queued the ring polls for
// POLLIN. With a partial header queued POLLIN would fire again at once
// (the peeked bytes are still there), so the ring polls for POLLRDHUP
// instead, bounded by a short back-off (5 ms doubling to 50 ms): a peer
// that closes is seen at once, one that trickles its header is re-peeked
// a few times a second at most, and one that stops is cut by the deadline.
#include "session/front_proxy.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "net/proxy_protocol.h"
#include "session/session_state.h"

namespace popgate {
namespace {

constexpr absl::Duration kFirstBackoff = absl::Milliseconds(5);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(50);

bool Fail(SessionState& s, SessionResult result, std::string detail) {
  s.rec.result = result;
  s.rec.detail = std::move(detail);
  return false;
}

// The parser's error as the session log's detail. Its messages are fixed
// texts (no client byte is quoted), so they can go into the log as they
// are; "not a PROXY protocol header" means the client sent something else
// first (a plain POP3 client, a scanner).
std::string ParseErrorDetail(const absl::Status& status) {
  absl::string_view msg = status.message();
  if (msg == "not a PROXY protocol header") return "missing PROXY header";
  if (absl::StartsWith(msg, "malformed PROXY header")) return std::string(msg);
  absl::ConsumePrefix(&msg, "PROXY header: ");
  return absl::StrCat("malformed PROXY header: ", msg);
}

// Takes exactly `n` bytes off the socket. They were just peeked, so they
// are queued and a non-blocking recv returns them at once.
bool Consume(int fd, char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::recv(fd, buf + done, n - done, MSG_DONTWAIT);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<size_t>(got);
  }
  return true;
}

}  // namespace

Task<bool> ReadFrontProxy(SessionState& s) {
  const Snapshot& snap = *s.snap;
  // The balancer is the socket's peer; the header says who the client is.
  const SocketAddress balancer = s.peer;
  if (balancer.len == 0 ||
      !snap.listener_proxy_trusted[s.listener_index].Contains(balancer.get())) {
    co_return Fail(s, SessionResult::kProxyUntrusted,
                   "source not in proxy_trusted_networks");
  }
  // One deadline for the whole header, however it is spread over segments.
  const absl::Time deadline =
      std::min(s.rec.start + snap.config.server.proxy_protocol_timeout,
               s.login_deadline);
  std::array<char, kMaxProxyHeader> buf;
  size_t seen = 0;  // bytes peeked the last time round
  absl::Duration backoff = kFirstBackoff;
  bool peer_closed = false;
  std::optional<ProxyHeader> header;
  while (true) {
    // MSG_DONTWAIT: a syscall that cannot block, cheaper than a trip
    // through the ring, and the header is usually there at accept.
    const ssize_t n =
        ::recv(s.client_fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      co_return Fail(s, SessionResult::kProxyHeaderError,
                     "connection closed in PROXY header");
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      co_return Fail(s, SessionResult::kProxyHeaderError,
                     "connection closed in PROXY header");
    }
    if (n > 0) {
      const size_t len = static_cast<size_t>(n);
      absl::StatusOr<std::optional<ProxyHeader>> parsed =
          ParseProxyHeader(std::string_view(buf.data(), len));
      if (!parsed.ok()) {
        co_return Fail(s, SessionResult::kProxyHeaderError,
                       ParseErrorDetail(parsed.status()));
      }
      if (parsed->has_value()) {
        header = **std::move(parsed);
        break;
      }
      // Incomplete. The peer's FIN came with or before these bytes: no
      // more will follow.
      if (peer_closed) {
        co_return Fail(s, SessionResult::kProxyHeaderError,
                       "connection closed in PROXY header");
      }
      if (len > seen) backoff = kFirstBackoff;  // it is still sending
      seen = len;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      co_return Fail(s, SessionResult::kProxyHeaderError,
                     "PROXY header timeout");
    }
    int r;
    if (seen == 0) {
      r = co_await PollFd(s.ring, s.client_fd, POLLIN | POLLRDHUP, left);
    } else {
      r = co_await PollFd(s.ring, s.client_fd, POLLRDHUP,
                          std::min(backoff, left));
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    // -ECANCELED: the wait's timeout; peek again (the deadline is checked
    // above). A mask with RDHUP/HUP/ERR: one more peek (the last bytes may
    // complete the header), then the close counts.
    if (r > 0 && (r & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      peer_closed = true;
    } else if (r < 0 && r != -ECANCELED && r != -EINTR) {
      co_return Fail(s, SessionResult::kProxyHeaderError,
                     "connection closed in PROXY header");
    }
  }

  if (!Consume(s.client_fd, buf.data(), header->length)) {
    co_return Fail(s, SessionResult::kProxyHeaderError,
                   "connection closed in PROXY header");
  }
  s.rec.front = balancer.ToString();
  if (header->local || !header->src) {
    // v2 LOCAL or v1 UNKNOWN: the balancer's own health check. It keeps
    // the socket's addresses, gets the greeting and may QUIT; the limits
    // do not count it (admission reads front_local).
    s.front_local = true;
    co_return true;
  }
  s.peer = *header->src;
  s.rec.client = s.peer.ToString();
  s.trusted_client = snap.trusted_networks.Contains(s.peer.get());
  if (header->dst) s.front_dst = std::make_unique<SocketAddress>(*header->dst);
  co_return true;
}

}  // namespace popgate
