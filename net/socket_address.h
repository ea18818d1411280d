// Socket addresses from "host:port" / "[v6]:port" strings. Resolution may
// use DNS, so it runs only while loading config (main thread), never on a
// worker.
#ifndef POPGATE_NET_SOCKET_ADDRESS_H_
#define POPGATE_NET_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace popgate {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* get() const {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
  int family() const { return storage.ss_family; }
  // "1.2.3.4:110" or "[::1]:110".
  std::string ToString() const;
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t len);
};

absl::StatusOr<SocketAddress> ResolveHostPort(std::string_view host_port);

}  // namespace popgate

#endif  // POPGATE_NET_SOCKET_ADDRESS_H_
