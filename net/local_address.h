// Whether an address reaches one of our own listeners on this host: the
// config check that stops a backend address from looping back into popgate.
#ifndef POPGATE_NET_LOCAL_ADDRESS_H_
#define POPGATE_NET_LOCAL_ADDRESS_H_

#include <vector>

#include "net/socket_address.h"

namespace popgate {

// This host's interface addresses (getifaddrs; blocking only in the sense
// of a netlink round trip: main thread, config time). Empty if it fails:
// loopback and the unspecified address are recognised without it.
std::vector<SocketAddress> LocalInterfaceAddresses();

// True if a connection to `target` would be accepted by a socket listening
// on `listener` (with IPV6_V6ONLY = `ipv6_only`) on this host: the same
// port, and the same address, or a wildcard listener (0.0.0.0, [::]) and
// a target that is local: 127.0.0.0/8, ::1, the unspecified address
// (connect() sends that to loopback) or one of `local` (from
// LocalInterfaceAddresses()). IPv4-mapped IPv6 addresses count as IPv4;
// a dual-stack [::] listener also takes IPv4 targets.
bool ListenerReaches(const SocketAddress& listener, bool ipv6_only,
                     const SocketAddress& target,
                     const std::vector<SocketAddress>& local);

// A wildcard (0.0.0.0 or [::]) address: whether reaching it needs the
// host's interface list.
bool IsUnspecified(const SocketAddress& addr);

}  // namespace popgate

#endif  // POPGATE_NET_LOCAL_ADDRESS_H_
