#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

absl::Status SetV6Only(int fd, const SocketAddress& addr, bool ipv6_only) {
  if (addr.family() != AF_INET6) return absl::OkStatus();
  const int v = ipv6_only ? 1 : 0;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)) < 0) {
    return absl::InternalError(absl::StrCat("IPV6_V6ONLY on ", addr.ToString(),
                                            ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UniqueFd> OpenListener(const SocketAddress& addr, int backlog,
                                      bool ipv6_only) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    return absl::InternalError(absl::StrCat("SO_REUSEPORT: ", strerror(errno)));
  }
  if (absl::Status s = SetV6Only(fd.get(), addr, ipv6_only); !s.ok()) return s;
  // POP3 is request/reply in small lines: Nagle would hold replies back.
  // Accepted sockets inherit the option, saving a syscall per session.
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::bind(fd.get(), addr.get(), addr.len) < 0) {
    return absl::UnavailableError(
        absl::StrCat("bind ", addr.ToString(), ": ", strerror(errno)));
  }
  if (::listen(fd.get(), backlog) < 0) {
    return absl::InternalError(absl::StrCat("listen: ", strerror(errno)));
  }
  return fd;
}

absl::Status CheckNobodyListens(const SocketAddress& addr, bool ipv6_only) {
  if (addr.port() == 0) return absl::OkStatus();  // an ephemeral port is ours
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  // With SO_REUSEADDR on both sides Linux refuses the bind only for a
  // listening socket (or one bound without SO_REUSEADDR), which is what we
  // look for; our own sockets do not exist yet.
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (absl::Status s = SetV6Only(fd.get(), addr, ipv6_only); !s.ok()) return s;
  if (::bind(fd.get(), addr.get(), addr.len) == 0) return absl::OkStatus();
  if (errno == EADDRINUSE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "another process already listens on ", addr.ToString(),
        ": stop it first, or set [server] takeover_listeners = true to share "
        "the address during a hand-over"));
  }
  return absl::UnavailableError(
      absl::StrCat("bind ", addr.ToString(), ": ", strerror(errno)));
}

}  // namespace popgate
