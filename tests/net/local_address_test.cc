// ListenerReaches: which backend addresses would loop back into one of our
// own listeners.
#include "net/local_address.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "net/socket_address.h"

namespace popgate {
namespace {

SocketAddress A(const char* text) {
  absl::StatusOr<HostPort> hp = ParseHostPort(text, true);
  EXPECT_TRUE(hp.ok()) << text << ": " << hp.status();
  std::optional<SocketAddress> a = hp.ok() ? hp->Numeric() : std::nullopt;
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(SocketAddress{});
}

bool Reaches(const char* listener, const char* target, bool v6only = false,
             const std::vector<SocketAddress>& local = {}) {
  return ListenerReaches(A(listener), v6only, A(target), local);
}

TEST(ListenerReachesTest, SameAddressSamePort) {
  EXPECT_TRUE(Reaches("127.0.0.1:1110", "127.0.0.1:1110"));
  EXPECT_TRUE(Reaches("[::1]:1110", "[::1]:1110"));
  EXPECT_FALSE(Reaches("127.0.0.1:1110", "127.0.0.1:1111"));
  EXPECT_FALSE(Reaches("127.0.0.1:1110", "127.0.0.2:1110"));
  EXPECT_FALSE(Reaches("192.0.2.1:110", "192.0.2.2:110"));
}

TEST(ListenerReachesTest, V4MappedIsV4) {
  EXPECT_TRUE(Reaches("127.0.0.1:1110", "[::ffff:127.0.0.1]:1110"));
  EXPECT_TRUE(Reaches("[::ffff:127.0.0.1]:1110", "127.0.0.1:1110"));
}

TEST(ListenerReachesTest, UnspecifiedTargetIsLoopback) {
  // connect() to 0.0.0.0 / :: goes to loopback.
  EXPECT_TRUE(Reaches("127.0.0.1:1110", "0.0.0.0:1110"));
  EXPECT_TRUE(Reaches("[::1]:1110", "[::]:1110"));
  EXPECT_TRUE(Reaches("0.0.0.0:1110", "0.0.0.0:1110"));
}

TEST(ListenerReachesTest, WildcardV4) {
  EXPECT_TRUE(Reaches("0.0.0.0:110", "127.0.0.1:110"));
  EXPECT_TRUE(Reaches("0.0.0.0:110", "127.9.8.7:110"));  // all of 127/8
  EXPECT_FALSE(Reaches("0.0.0.0:110", "127.0.0.1:111"));
  EXPECT_FALSE(Reaches("0.0.0.0:110", "[::1]:110"));  // an IPv4 socket
  EXPECT_FALSE(Reaches("0.0.0.0:110", "192.0.2.9:110"));
  EXPECT_TRUE(
      Reaches("0.0.0.0:110", "192.0.2.9:110", false, {A("192.0.2.9:0")}));
}

TEST(ListenerReachesTest, WildcardV6DualStackAndV6Only) {
  EXPECT_TRUE(Reaches("[::]:110", "[::1]:110"));
  EXPECT_TRUE(Reaches("[::]:110", "[::1]:110", true));
  EXPECT_TRUE(Reaches("[::]:110", "127.0.0.1:110"));  // dual-stack
  EXPECT_FALSE(Reaches("[::]:110", "127.0.0.1:110", true));
  EXPECT_FALSE(Reaches("[::]:110", "[::ffff:127.0.0.1]:110", true));
  EXPECT_FALSE(Reaches("[::]:110", "[2001:db8::5]:110"));
  EXPECT_TRUE(
      Reaches("[::]:110", "[2001:db8::5]:110", false, {A("[2001:db8::5]:0")}));
  EXPECT_TRUE(Reaches("[::]:110", "192.0.2.9:110", false, {A("192.0.2.9:0")}));
}

TEST(LocalInterfaceAddressesTest, HasLoopbackAndFoldsIntoReaches) {
  const std::vector<SocketAddress> local = LocalInterfaceAddresses();
  bool loopback = false;
  for (const SocketAddress& a : local) {
    loopback = loopback || a.ToString() == "127.0.0.1:0";
    // Every interface address of this host is reached by a wildcard
    // listener of its family (dual-stack [::] takes both).
    SocketAddress target = a;
    if (target.family() == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&target.storage)->sin_port = htons(110);
    } else {
      reinterpret_cast<sockaddr_in6*>(&target.storage)->sin6_port = htons(110);
    }
    EXPECT_TRUE(ListenerReaches(A("[::]:110"), false, target, local))
        << target.ToString();
  }
  EXPECT_TRUE(loopback);
}

TEST(IsUnspecifiedTest, Wildcards) {
  EXPECT_TRUE(IsUnspecified(A("0.0.0.0:1")));
  EXPECT_TRUE(IsUnspecified(A("[::]:1")));
  EXPECT_FALSE(IsUnspecified(A("127.0.0.1:1")));
  EXPECT_FALSE(IsUnspecified(A("[::1]:1")));
}

}  // namespace
}  // namespace popgate
