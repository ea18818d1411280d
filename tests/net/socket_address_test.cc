#include "net/socket_address.h"

#include <sys/socket.h>

#include <string>
#include <utility>

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

namespace popgate {
namespace {

// The one host:port parser: what it accepts must resolve, so config
// validation and start-up agree.
class ParseHostPortTest
    : public testing::TestWithParam<std::pair<const char*, bool>> {};

TEST_P(ParseHostPortTest, AcceptsOnlyResolvable) {
  const auto [text, ok] = GetParam();
  absl::StatusOr<HostPort> hp = ParseHostPort(text);
  EXPECT_EQ(hp.ok(), ok) << text << ": " << hp.status();
  if (ok && hp.ok() && hp->family != AF_UNSPEC) {
    // Every literal it accepts resolves, without DNS.
    EXPECT_TRUE(hp->Numeric().has_value()) << text;
    EXPECT_TRUE(ResolveHostPort(text).ok()) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseHostPortTest,
    testing::Values(
        std::pair{"127.0.0.1:110", true}, std::pair{"0.0.0.0:995", true},
        std::pair{"[::]:110", true}, std::pair{"[::1]:995", true},
        std::pair{"[2001:db8::1]:1", true},
        std::pair{"[::ffff:10.0.0.1]:110", true},
        std::pair{"mail.example.com:110", true},
        std::pair{"mail.example.com.:110", true},  // FQDN, trailing dot
        std::pair{"mx_1.internal:110", true},
        std::pair{"localhost:65535", true},
        // The fuzzer's find: a bracketed host that is no IPv6 address.
        std::pair{"[:]:80", false}, std::pair{"[:::]:80", false},
        std::pair{"[1::2::3]:80", false}, std::pair{"[::1%lo]:80", false},
        std::pair{"[127.0.0.1]:80", false}, std::pair{"[]:80", false},
        std::pair{"[example.com]:110", false},
        // Digits and dots are an IPv4 address or nothing.
        std::pair{"256.0.0.1:110", false}, std::pair{"1.2.3:110", false},
        std::pair{"1.2.3.4.5:110", false}, std::pair{"127.1:110", false},
        // inet_aton's forms, which getaddrinfo would take as addresses.
        std::pair{"0x7f.1:110", false}, std::pair{"0x7f000001:110", false},
        std::pair{"0x7F.0.0.1:110", false},
        // Names by the resolver's rules.
        std::pair{"a..b:110", false}, std::pair{".a:110", false},
        std::pair{"-a.example:110", false}, std::pair{"a-.example:110", false},
        std::pair{"a b:110", false}, std::pair{"a\n:110", false},
        std::pair{"::1:110", false}, std::pair{"127.0.0.1:0", false},
        std::pair{"127.0.0.1:65536", false}, std::pair{"127.0.0.1:+1", false},
        std::pair{"127.0.0.1: 1", false}, std::pair{"127.0.0.1:", false},
        std::pair{":110", false}, std::pair{"", false}));

TEST(ParseHostPortTest, LongNames) {
  const std::string label63(63, 'a');
  EXPECT_TRUE(ParseHostPort(label63 + ".example:1").ok());
  EXPECT_FALSE(ParseHostPort(std::string(64, 'a') + ".example:1").ok());
  std::string name;
  while (name.size() < 250) name += label63.substr(0, 9) + ".";
  name += "aaaaaa";  // > 253 octets
  EXPECT_FALSE(ParseHostPort(name + ":1").ok());
}

TEST(ParseHostPortTest, PortZeroOnlyWhenAllowed) {
  EXPECT_FALSE(ParseHostPort("127.0.0.1:0").ok());
  absl::StatusOr<HostPort> hp = ParseHostPort("127.0.0.1:0", true);
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->port, 0);
  EXPECT_TRUE(ResolveHostPort("127.0.0.1:0").ok());  // tests bind port 0
}

TEST(ParseHostPortTest, SplitsAndClassifies) {
  absl::StatusOr<HostPort> v6 = ParseHostPort("[2001:db8::7]:995");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "2001:db8::7");
  EXPECT_EQ(v6->port, 995);
  EXPECT_EQ(v6->family, AF_INET6);
  absl::StatusOr<HostPort> name = ParseHostPort("mx.example:110");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->family, AF_UNSPEC);
  EXPECT_FALSE(name->Numeric().has_value());
}

TEST(ParseHostPortTest, ErrorsEscapeTheInput) {
  absl::StatusOr<HostPort> hp = ParseHostPort("\x1b[31m:110");
  ASSERT_FALSE(hp.ok());
  EXPECT_EQ(std::string(hp.status().message()).find('\x1b'), std::string::npos)
      << hp.status();
}

TEST(SocketAddressTest, Port) {
  EXPECT_EQ(ResolveHostPort("127.0.0.1:1110")->port(), 1110);
  EXPECT_EQ(ResolveHostPort("[::1]:995")->port(), 995);
}

}  // namespace
}  // namespace popgate
