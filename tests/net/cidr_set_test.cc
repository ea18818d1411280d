#include "net/cidr_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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
