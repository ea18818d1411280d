// Socket addresses from "host:port" / "[v6]:port" strings. ParseHostPort is
// the one parser of that syntax (config validation and resolution both use
// it); resolution may use DNS, so it runs only while loading config (main
// thread), never on a worker.
#ifndef POPGATE_NET_SOCKET_ADDRESS_H_
#define POPGATE_NET_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
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
  uint16_t port() const;
  // "1.2.3.4:110" or "[::1]:110".
  std::string ToString() const;
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t len);
};

// "host:port" split and checked, without any lookup.
struct HostPort {
  std::string host;  // brackets removed
  uint16_t port = 0;
  // AF_INET or AF_INET6 for an address literal, AF_UNSPEC for a name.
  int family = AF_UNSPEC;

  // The address for a literal host, nullopt for a name.
  std::optional<SocketAddress> Numeric() const;
};

// Accepts "1.2.3.4:110", "[2001:db8::1]:110" and "name.example:110" and
// refuses whatever could not be resolved later: an IPv6 literal must pass
// inet_pton (so "[:]:80" is an error), digits-and-dots must be a dotted-quad
// IPv4 address, a name must follow the resolver's rules (labels of 1..63
// letters, digits, '-' or '_', not starting or ending with '-', 253 octets
// at most). Ports are 1..65535; 0 only with `allow_port_zero` (tests bind
// ephemeral ports). Errors quote the input escaped, never raw.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text,
                                       bool allow_port_zero = false);

// ParseHostPort (port 0 allowed), then getaddrinfo; the first result.
absl::StatusOr<SocketAddress> ResolveHostPort(std::string_view host_port);

}  // namespace popgate

#endif  // POPGATE_NET_SOCKET_ADDRESS_H_
