// The network a client address is counted under by limits and throttling:
// one IPv4 host (/32 by default) or one IPv6 /64 (one host usually owns a
// whole /64, so counting single IPv6 addresses would count nothing).
#ifndef POPGATE_NET_ADDRESS_GROUP_H_
#define POPGATE_NET_ADDRESS_GROUP_H_

#include <string>

#include "net/socket_address.h"

namespace popgate {

// Printable and canonical: "203.0.113.7" for a full-length IPv4 prefix,
// "203.0.113.0/24" for a shorter one, "2001:db8:1:2::/64" for IPv6 (the
// host bits cleared; always with the prefix, /128 too). A v4-mapped IPv6
// address (a dual-stack listener's IPv4 client) counts as the IPv4
// address; any other family (a Unix socket in tests) is "local". Used as the
// key of connection limits, failure counters and Redis keys, and in log lines.
// Prefixes are clamped to 0..32 and 0..128.
std::string AddressGroup(const SocketAddress& addr, int ipv4_prefix,
                         int ipv6_prefix);

}  // namespace popgate

#endif  // POPGATE_NET_ADDRESS_GROUP_H_
