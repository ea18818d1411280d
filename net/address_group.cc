#include "net/address_group.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// Clears every bit of `bytes` past the first `prefix`.
void ClearHostBits(uint8_t* bytes, size_t size, int prefix) {
  for (size_t i = 0; i < size; ++i) {
    const int bit = static_cast<int>(i) * 8;
    if (bit >= prefix) {
      bytes[i] = 0;
    } else if (prefix - bit < 8) {
      bytes[i] &= static_cast<uint8_t>(0xff << (8 - (prefix - bit)));
    }
  }
}

std::string Ipv4Group(in_addr addr, int prefix) {
  prefix = std::clamp(prefix, 0, 32);
  uint8_t bytes[4];
  std::memcpy(bytes, &addr, sizeof(bytes));
  ClearHostBits(bytes, sizeof(bytes), prefix);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, bytes, text, sizeof(text));
  // A single host is written as itself: what an operator greps logs for.
  if (prefix == 32) return text;
  return absl::StrCat(text, "/", prefix);
}

}  // namespace

std::string AddressGroup(const SocketAddress& addr, int ipv4_prefix,
                         int ipv6_prefix) {
  if (addr.family() == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, &addr.storage, sizeof(sin));
    return Ipv4Group(sin.sin_addr, ipv4_prefix);
  }
  if (addr.family() == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &addr.storage, sizeof(sin6));
    // A dual-stack listener's IPv4 client: one client, one key, whichever
    // listener it came through.
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      in_addr v4;
      std::memcpy(&v4, sin6.sin6_addr.s6_addr + 12, sizeof(v4));
      return Ipv4Group(v4, ipv4_prefix);
    }
    const int prefix = std::clamp(ipv6_prefix, 0, 128);
    uint8_t bytes[16];
    std::memcpy(bytes, sin6.sin6_addr.s6_addr, sizeof(bytes));
    ClearHostBits(bytes, sizeof(bytes), prefix);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, bytes, text, sizeof(text));
    // Always with the prefix, /128 too: an IPv6 group is never mistaken
    // for the address of the host that happens to end in ::.
    return absl::StrCat(text, "/", prefix);
  }
  // Unix sockets (tests) and unknown families: all one group, so they are
  // still limited together rather than not at all.
  return "local";
}

}  // namespace popgate
