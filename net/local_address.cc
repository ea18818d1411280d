#include "net/local_address.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace popgate {
namespace {

// An IP address without its port, IPv4-mapped IPv6 folded to IPv4.
struct Ip {
  bool v4 = false;
  std::array<uint8_t, 16> bytes{};  // v4: first 4
  bool valid = false;

  bool operator==(const Ip& o) const {
    return valid && o.valid && v4 == o.v4 &&
           std::memcmp(bytes.data(), o.bytes.data(), v4 ? 4 : 16) == 0;
  }
};

Ip IpOf(const SocketAddress& a) {
  Ip ip;
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    std::memcpy(ip.bytes.data(), &in->sin_addr, 4);
    ip.v4 = ip.valid = true;
  } else if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      std::memcpy(ip.bytes.data(), in6->sin6_addr.s6_addr + 12, 4);
      ip.v4 = true;
    } else {
      std::memcpy(ip.bytes.data(), in6->sin6_addr.s6_addr, 16);
    }
    ip.valid = true;
  }
  return ip;
}

bool IsZero(const Ip& ip) {
  for (int i = 0; i < (ip.v4 ? 4 : 16); ++i) {
    if (ip.bytes[i] != 0) return false;
  }
  return true;
}

bool IsLoopback(const Ip& ip) {
  if (ip.v4) return ip.bytes[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoop = {0, 0, 0, 0, 0, 0, 0, 0,
                                                    0, 0, 0, 0, 0, 0, 0, 1};
  return ip.bytes == kLoop;
}

// connect() to 0.0.0.0 or :: goes to the loopback address (Linux).
Ip Destination(Ip ip) {
  if (IsZero(ip)) {
    if (ip.v4) {
      ip.bytes[0] = 127;
      ip.bytes[3] = 1;
    } else {
      ip.bytes[15] = 1;
    }
  }
  return ip;
}

}  // namespace

std::vector<SocketAddress> LocalInterfaceAddresses() {
  std::vector<SocketAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      out.push_back(
          SocketAddress::FromSockaddr(i->ifa_addr, sizeof(sockaddr_in)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      out.push_back(
          SocketAddress::FromSockaddr(i->ifa_addr, sizeof(sockaddr_in6)));
    }
  }
  freeifaddrs(list);
  return out;
}

bool IsUnspecified(const SocketAddress& addr) {
  const Ip ip = IpOf(addr);
  return ip.valid && IsZero(ip);
}

bool ListenerReaches(const SocketAddress& listener, bool ipv6_only,
                     const SocketAddress& target,
                     const std::vector<SocketAddress>& local) {
  if (listener.port() == 0 || listener.port() != target.port()) return false;
  const Ip l = IpOf(listener);
  const Ip t = Destination(IpOf(target));
  if (!l.valid || !t.valid) return false;
  if (!IsZero(l)) return Destination(l) == t;
  // A wildcard listener: which families it takes.
  const bool v6_socket = listener.family() == AF_INET6 && !l.v4;
  if (t.v4 && v6_socket && ipv6_only) return false;
  if (!t.v4 && !v6_socket) return false;
  if (IsLoopback(t)) return true;
  for (const SocketAddress& a : local) {
    if (IpOf(a) == t) return true;
  }
  return false;
}

}  // namespace popgate
