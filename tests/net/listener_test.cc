// OpenListener: the options every accepted client socket inherits.
#include "net/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "base/unique_fd.h"

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
