#include "net/socket_address.h"

#include "gtest/gtest.h"

namespace popgate {
namespace {

TEST(SocketAddressTest, ResolvesNumericV4AndV6) {
  auto a = ResolveHostPort("127.0.0.1:1110");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ToString(), "127.0.0.1:1110");
  auto b = ResolveHostPort("[::1]:995");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ToString(), "[::1]:995");
}

TEST(SocketAddressTest, RefusesMalformed) {
  for (const char* bad : {"", "127.0.0.1", ":110", "127.0.0.1:x",
                          "127.0.0.1:70000", "[::1]995", "[::1"}) {
    EXPECT_FALSE(ResolveHostPort(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace popgate
