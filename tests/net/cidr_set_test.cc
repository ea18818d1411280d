#include "net/cidr_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

bool Has(const CidrSet& set, const char* ip) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, ip, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) ==
      1) {
    ss.ss_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip,
                        &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr),
              1);
    ss.ss_family = AF_INET6;
  }
  return set.Contains(reinterpret_cast<sockaddr*>(&ss));
}

TEST(CidrSetTest, LoopbackDefaults) {
  auto set = CidrSet::Parse({"127.0.0.0/8", "::1/128"});
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(Has(*set, "127.0.0.1"));
  EXPECT_TRUE(Has(*set, "127.255.0.9"));
  EXPECT_TRUE(Has(*set, "::1"));
  EXPECT_TRUE(Has(*set, "::ffff:127.0.0.1"));  // v4-mapped
  EXPECT_FALSE(Has(*set, "128.0.0.1"));
  EXPECT_FALSE(Has(*set, "10.0.0.1"));
  EXPECT_FALSE(Has(*set, "::2"));
}

TEST(CidrSetTest, OddPrefixLengths) {
  auto set = CidrSet::Parse({"10.1.2.0/23", "2001:db8::/33", "192.0.2.7"});
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(Has(*set, "10.1.3.255"));
  EXPECT_FALSE(Has(*set, "10.1.4.0"));
  EXPECT_TRUE(Has(*set, "2001:db8:7fff::1"));
  EXPECT_FALSE(Has(*set, "2001:db8:8000::1"));
  EXPECT_TRUE(Has(*set, "192.0.2.7"));
  EXPECT_FALSE(Has(*set, "192.0.2.8"));
}

TEST(CidrSetTest, EmptySetTrustsNobody) {
  auto set = CidrSet::Parse({});
  ASSERT_TRUE(set.ok());
  EXPECT_FALSE(Has(*set, "127.0.0.1"));
}

TEST(CidrSetTest, RefusesGarbage) {
  for (const char* bad : {"", "10.0.0.0/33", "::1/129", "10.0.0/8", "x/8",
                          "10.0.0.0/", "10.0.0.0/8x"}) {
    EXPECT_FALSE(CidrSet::Parse({bad}).ok()) << bad;
  }
}

}  // namespace
}  // namespace popgate

namespace popgate {
namespace {

std::string ErrorOf(const char* net) {
  absl::StatusOr<CidrSet> set = CidrSet::Parse({net});
  return set.ok() ? "" : std::string(set.status().message());
}

TEST(CidrSetTest, HostBitsSetIsAnErrorNamingTheNetwork) {
  std::string e = ErrorOf("10.0.0.1/8");
  EXPECT_NE(e.find("host bits"), std::string::npos) << e;
  EXPECT_NE(e.find("10.0.0.0/8"), std::string::npos) << e;
  e = ErrorOf("192.168.1.77/23");
  EXPECT_NE(e.find("192.168.0.0/23"), std::string::npos) << e;
  e = ErrorOf("2001:db8::1/32");
  EXPECT_NE(e.find("2001:db8::/32"), std::string::npos) << e;
  e = ErrorOf("::1/0");
  EXPECT_NE(e.find("::/0"), std::string::npos) << e;
  EXPECT_FALSE(CidrSet::Validate("10.0.0.1/8").ok());
}

TEST(CidrSetTest, NetworksWithoutHostBitsPass) {
  for (const char* good : {"10.0.0.0/8", "0.0.0.0/0", "::/0", "192.0.2.7/32",
                           "192.0.2.7", "::1", "10.1.2.0/23", "fe80::/10"}) {
    EXPECT_TRUE(CidrSet::Validate(good).ok()) << good << ": " << ErrorOf(good);
  }
}

TEST(CidrSetTest, PrefixIsDigitsOnly) {
  // strtol would have taken these.
  for (const char* bad : {"10.0.0.0/ 8", "10.0.0.0/+8", "10.0.0.0/-0",
                          "10.0.0.0/0x8", "10.0.0.0/0008"}) {
    EXPECT_FALSE(CidrSet::Parse({bad}).ok()) << bad;
  }
  EXPECT_FALSE(CidrSet::Parse({std::string("10.0.0.0\0/8", 11)}).ok());
}

TEST(CidrSetTest, ErrorsSayBadNetworkAndEscape) {
  EXPECT_NE(ErrorOf("10.0.0.0/33").find("bad network"), std::string::npos);
  EXPECT_NE(ErrorOf("x/8").find("bad network"), std::string::npos);
  EXPECT_EQ(ErrorOf("\x1b[2J/8").find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace popgate
