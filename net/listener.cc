#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"

namespace popgate {

absl::StatusOr<UniqueFd> OpenListener(const SocketAddress& addr, int backlog) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    return absl::InternalError(absl::StrCat("SO_REUSEPORT: ", strerror(errno)));
  }
  if (addr.family() == AF_INET6) {
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
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

}  // namespace popgate
