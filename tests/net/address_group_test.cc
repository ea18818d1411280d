#include "net/address_group.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "net/socket_address.h"

namespace popgate {
namespace {

SocketAddress V4(const char* text, uint16_t port = 1234) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, text, &sin.sin_addr), 1) << text;
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin),
                                     sizeof(sin));
}

SocketAddress V6(const char* text, uint16_t port = 1234) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1) << text;
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin6),
                                     sizeof(sin6));
}

TEST(AddressGroupTest, Ipv4HostIsTheAddressItself) {
  EXPECT_EQ(AddressGroup(V4("203.0.113.7"), 32, 64), "203.0.113.7");
  EXPECT_EQ(AddressGroup(V4("127.0.0.2"), 32, 64), "127.0.0.2");
  // The port is no part of the group.
  EXPECT_EQ(AddressGroup(V4("203.0.113.7", 1), 32, 64),
            AddressGroup(V4("203.0.113.7", 65535), 32, 64));
}

TEST(AddressGroupTest, Ipv4ShorterPrefixClearsHostBits) {
  EXPECT_EQ(AddressGroup(V4("203.0.113.7"), 24, 64), "203.0.113.0/24");
  EXPECT_EQ(AddressGroup(V4("203.0.113.200"), 24, 64), "203.0.113.0/24");
  EXPECT_EQ(AddressGroup(V4("203.0.113.7"), 25, 64), "203.0.113.0/25");
  EXPECT_EQ(AddressGroup(V4("203.0.113.200"), 25, 64), "203.0.113.128/25");
  EXPECT_EQ(AddressGroup(V4("10.255.1.1"), 9, 64), "10.128.0.0/9");
  EXPECT_EQ(AddressGroup(V4("10.1.2.3"), 16, 64), "10.1.0.0/16");
  EXPECT_EQ(AddressGroup(V4("255.255.255.255"), 31, 64), "255.255.255.254/31");
  EXPECT_EQ(AddressGroup(V4("198.51.100.1"), 0, 64), "0.0.0.0/0");
}

TEST(AddressGroupTest, Ipv6Slash64) {
  EXPECT_EQ(AddressGroup(V6("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 32, 64),
            "2001:db8:1:2::/64");
  // Two hosts of one /64 are one group; the next /64 is another.
  EXPECT_EQ(AddressGroup(V6("2001:db8:1:2::1"), 32, 64),
            AddressGroup(V6("2001:db8:1:2:ffff::9"), 32, 64));
  EXPECT_NE(AddressGroup(V6("2001:db8:1:2::1"), 32, 64),
            AddressGroup(V6("2001:db8:1:3::1"), 32, 64));
  // The IPv4 prefix does not touch IPv6 addresses.
  EXPECT_EQ(AddressGroup(V6("2001:db8:1:2::1"), 8, 64), "2001:db8:1:2::/64");
}

TEST(AddressGroupTest, Ipv6OtherPrefixes) {
  EXPECT_EQ(AddressGroup(V6("2001:db8:abcd:12ff::1"), 32, 48),
            "2001:db8:abcd::/48");
  EXPECT_EQ(AddressGroup(V6("2001:db8::1"), 32, 128), "2001:db8::1/128");
  EXPECT_EQ(AddressGroup(V6("::1"), 32, 128), "::1/128");
  EXPECT_EQ(AddressGroup(V6("::1"), 32, 64), "::/64");
  // Not on a byte boundary: /60 keeps the top nibble of the fourth group.
  EXPECT_EQ(AddressGroup(V6("2001:db8:1:2345::1"), 32, 60),
            "2001:db8:1:2340::/60");
  EXPECT_EQ(AddressGroup(V6("2001:db8::1"), 32, 0), "::/0");
}

TEST(AddressGroupTest, V4MappedCountsAsIpv4) {
  EXPECT_EQ(AddressGroup(V6("::ffff:203.0.113.7"), 32, 64), "203.0.113.7");
  EXPECT_EQ(AddressGroup(V6("::ffff:203.0.113.7"), 24, 64), "203.0.113.0/24");
  // The same client through a dual-stack and an IPv4 listener: one key.
  EXPECT_EQ(AddressGroup(V6("::ffff:192.0.2.1"), 32, 64),
            AddressGroup(V4("192.0.2.1"), 32, 64));
}

TEST(AddressGroupTest, PrefixesAreClamped) {
  EXPECT_EQ(AddressGroup(V4("203.0.113.7"), 99, 64), "203.0.113.7");
  EXPECT_EQ(AddressGroup(V4("203.0.113.7"), -5, 64), "0.0.0.0/0");
  EXPECT_EQ(AddressGroup(V6("2001:db8::1"), 32, 500), "2001:db8::1/128");
  EXPECT_EQ(AddressGroup(V6("2001:db8::1"), 32, -1), "::/0");
}

TEST(AddressGroupTest, OtherFamiliesAreOneGroup) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strcpy(sun.sun_path, "/tmp/x");
  EXPECT_EQ(
      AddressGroup(SocketAddress::FromSockaddr(
                       reinterpret_cast<const sockaddr*>(&sun), sizeof(sun)),
                   32, 64),
      "local");
  EXPECT_EQ(AddressGroup(SocketAddress{}, 32, 64), "local");
}

}  // namespace
}  // namespace popgate
