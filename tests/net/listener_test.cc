// OpenListener: the options every accepted client socket inherits.
#include "net/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"

namespace popgate {
namespace {

TEST(ListenerTest, AcceptedSocketsHaveNoDelay) {
  absl::StatusOr<SocketAddress> addr = ResolveHostPort("127.0.0.1:0");
  ASSERT_TRUE(addr.ok()) << addr.status();
  absl::StatusOr<UniqueFd> l = OpenListener(*addr, 16);
  ASSERT_TRUE(l.ok()) << l.status();
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ASSERT_EQ(getsockname(l->get(), reinterpret_cast<sockaddr*>(&bound), &len),
            0);
  UniqueFd c(socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&bound), len), 0);
  UniqueFd a(accept(l->get(), nullptr, nullptr));
  ASSERT_TRUE(a.valid());
  // Replies are small lines: Nagle must not hold them back. The session
  // relies on the listener's option being inherited (no setsockopt each).
  int v = 0;
  socklen_t vlen = sizeof(v);
  ASSERT_EQ(getsockopt(a.get(), IPPROTO_TCP, TCP_NODELAY, &v, &vlen), 0);
  EXPECT_EQ(v, 1);
}

}  // namespace
}  // namespace popgate

namespace popgate {
namespace {

SocketAddress Bound(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

bool HaveIpv6() {
  UniqueFd fd(socket(AF_INET6, SOCK_STREAM, 0));
  if (!fd.valid()) return false;
  absl::StatusOr<SocketAddress> a = ResolveHostPort("[::1]:0");
  return a.ok() && bind(fd.get(), a->get(), a->len) == 0;
}

int V6Only(int fd) {
  int v = -1;
  socklen_t len = sizeof(v);
  EXPECT_EQ(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), 0);
  return v;
}

TEST(ListenerTest, V6OnlyIsSetExplicitlyEitherWay) {
  if (!HaveIpv6()) GTEST_SKIP() << "no IPv6 here";
  absl::StatusOr<SocketAddress> any = ResolveHostPort("[::]:0");
  ASSERT_TRUE(any.ok()) << any.status();
  absl::StatusOr<UniqueFd> dual = OpenListener(*any, 16, false);
  ASSERT_TRUE(dual.ok()) << dual.status();
  EXPECT_EQ(V6Only(dual->get()), 0);
  absl::StatusOr<UniqueFd> v6 = OpenListener(*any, 16, true);
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(V6Only(v6->get()), 1);
  // The default is dual-stack, as most servers do.
  absl::StatusOr<UniqueFd> def = OpenListener(*any, 16);
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(V6Only(def->get()), 0);
}

TEST(ListenerTest, DualStackAcceptsIpv4Clients) {
  if (!HaveIpv6()) GTEST_SKIP() << "no IPv6 here";
  absl::StatusOr<SocketAddress> any = ResolveHostPort("[::]:0");
  ASSERT_TRUE(any.ok());
  absl::StatusOr<UniqueFd> l = OpenListener(*any, 16, false);
  ASSERT_TRUE(l.ok()) << l.status();
  absl::StatusOr<SocketAddress> v4 =
      ResolveHostPort(absl::StrCat("127.0.0.1:", Bound(l->get()).port()));
  ASSERT_TRUE(v4.ok());
  UniqueFd c(socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_EQ(connect(c.get(), v4->get(), v4->len), 0) << strerror(errno);

  absl::StatusOr<UniqueFd> only = OpenListener(*any, 16, true);
  ASSERT_TRUE(only.ok()) << only.status();
  absl::StatusOr<SocketAddress> v4b =
      ResolveHostPort(absl::StrCat("127.0.0.1:", Bound(only->get()).port()));
  UniqueFd c2(socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_NE(connect(c2.get(), v4b->get(), v4b->len), 0);
}

TEST(CheckNobodyListensTest, FreeAddressPasses) {
  absl::StatusOr<SocketAddress> any = ResolveHostPort("127.0.0.1:0");
  absl::StatusOr<UniqueFd> l = OpenListener(*any, 16);
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = Bound(l->get());
  l->Reset();  // closed: nobody listens there any more
  EXPECT_TRUE(CheckNobodyListens(addr).ok());
}

TEST(CheckNobodyListensTest, AnotherListenerIsFoundEvenWithReusePort) {
  absl::StatusOr<SocketAddress> any = ResolveHostPort("127.0.0.1:0");
  absl::StatusOr<UniqueFd> l = OpenListener(*any, 16);  // SO_REUSEPORT on
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = Bound(l->get());
  absl::Status s = CheckNobodyListens(addr);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(addr.ToString()), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("takeover_listeners"), absl::string_view::npos)
      << s;
  // Without the check, a second SO_REUSEPORT socket binds silently: that
  // is what the check is for.
  absl::StatusOr<UniqueFd> second = OpenListener(addr, 16);
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST(CheckNobodyListensTest, WildcardListenerCoversLoopback) {
  absl::StatusOr<SocketAddress> any = ResolveHostPort("0.0.0.0:0");
  absl::StatusOr<UniqueFd> l = OpenListener(*any, 16);
  ASSERT_TRUE(l.ok());
  absl::StatusOr<SocketAddress> lo =
      ResolveHostPort(absl::StrCat("127.0.0.1:", Bound(l->get()).port()));
  EXPECT_FALSE(CheckNobodyListens(*lo).ok());
}

TEST(CheckNobodyListensTest, DrainingConnectionsDoNotCount) {
  // A previous instance's accepted connections (no listener any more) must
  // not block a restart.
  absl::StatusOr<SocketAddress> any = ResolveHostPort("127.0.0.1:0");
  absl::StatusOr<UniqueFd> l = OpenListener(*any, 16);
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = Bound(l->get());
  UniqueFd c(socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(connect(c.get(), addr.get(), addr.len), 0);
  UniqueFd a(accept(l->get(), nullptr, nullptr));
  ASSERT_TRUE(a.valid());
  l->Reset();
  EXPECT_TRUE(CheckNobodyListens(addr).ok());
}

TEST(CheckNobodyListensTest, PortZeroIsAlwaysFree) {
  absl::StatusOr<SocketAddress> any = ResolveHostPort("127.0.0.1:0");
  EXPECT_TRUE(CheckNobodyListens(*any).ok());
}

}  // namespace
}  // namespace popgate
