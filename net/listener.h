// Listening sockets: one per worker per configured address, bound with
// SO_REUSEPORT so the kernel spreads connections across workers.
#ifndef POPGATE_NET_LISTENER_H_
#define POPGATE_NET_LISTENER_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "net/socket_address.h"

namespace popgate {

// For an IPv6 address IPV6_V6ONLY is set explicitly to `ipv6_only` (the
// sysctl net.ipv6.bindv6only default is not trusted): false = a "[::]"
// listener takes IPv4 clients too, as v4-mapped addresses.
absl::StatusOr<UniqueFd> OpenListener(const SocketAddress& addr, int backlog,
                                      bool ipv6_only = false);

// The listen backlog popgate asks for (the kernel caps it at
// net.core.somaxconn, 4096 by default): also the most connections one
// wake of a multishot accept may take from one socket.
inline constexpr int kListenBacklog = 4096;

// SO_REUSEPORT would let us share an address with another process without
// a word (and take part of its traffic). Call this for every address
// before opening any of ours: it binds a probe socket without SO_REUSEPORT
// (SO_REUSEADDR on, so connections of a previous instance in TIME_WAIT or
// still draining do not count) and reports FailedPrecondition naming the
// address and the `takeover_listeners` setting if someone listens there.
absl::Status CheckNobodyListens(const SocketAddress& addr,
                                bool ipv6_only = false);

}  // namespace popgate

#endif  // POPGATE_NET_LISTENER_H_
