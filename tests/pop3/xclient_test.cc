#include "pop3/xclient.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

XclientParams Good() {
  XclientParams p;
  p.addr = "192.0.2.7";
  p.port = 50123;
  p.session = "Ab3+/x=_.-9";
  p.ttl = 5;
  p.dest_addr = "198.51.100.1";
  p.dest_port = 110;
  return p;
}

TEST(FormatXclient, ExactLineIpv4) {
  absl::StatusOr<std::string> line = FormatXclient(Good());
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line,
            "XCLIENT ADDR=192.0.2.7 PORT=50123 SESSION=Ab3+/x=_.-9 TTL=5 "
            "DESTADDR=198.51.100.1 DESTPORT=110\r\n");
}

TEST(FormatXclient, Ipv6WithoutBrackets) {
  XclientParams p = Good();
  p.addr = "2001:db8::1";
  p.dest_addr = "::1";
  p.dest_port = 995;
  p.ttl = 1;
  absl::StatusOr<std::string> line = FormatXclient(p);
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line,
            "XCLIENT ADDR=2001:db8::1 PORT=50123 SESSION=Ab3+/x=_.-9 TTL=1 "
            "DESTADDR=::1 DESTPORT=995\r\n");
}

TEST(FormatXclient, RefusesBadAddresses) {
  for (const char* bad :
       {"", "host.example", "[2001:db8::1]", "192.0.2.7:110", "192.0.2.7 x",
        "1.2.3", "fe80::1%eth0", "192.0.2.7\r\nQUIT"}) {
    XclientParams p = Good();
    p.addr = bad;
    EXPECT_FALSE(FormatXclient(p).ok()) << "addr " << bad;
    p = Good();
    p.dest_addr = bad;
    EXPECT_FALSE(FormatXclient(p).ok()) << "dest_addr " << bad;
  }
  XclientParams p = Good();
  p.addr = std::string("192.0.2.7\0x", 11);
  EXPECT_FALSE(FormatXclient(p).ok());
}

TEST(FormatXclient, RefusesBadSession) {
  for (const char* bad : {"", "a b", "a\rb", "a\nb", "a\tb", "a;b", "é"}) {
    XclientParams p = Good();
    p.session = bad;
    EXPECT_FALSE(FormatXclient(p).ok()) << "session " << bad;
  }
  XclientParams p = Good();
  p.session = std::string("ab\0cd", 5);
  EXPECT_FALSE(FormatXclient(p).ok());
  p.session = std::string(65, 'a');
  EXPECT_FALSE(FormatXclient(p).ok());
  p.session = std::string(64, 'a');
  EXPECT_TRUE(FormatXclient(p).ok());
}

TEST(FormatXclient, RefusesZeroPortsAndNoTtl) {
  XclientParams p = Good();
  p.port = 0;
  EXPECT_FALSE(FormatXclient(p).ok());
  p = Good();
  p.dest_port = 0;
  EXPECT_FALSE(FormatXclient(p).ok());
  p = Good();
  p.ttl = 0;
  EXPECT_FALSE(FormatXclient(p).ok());
  p.ttl = -3;
  EXPECT_FALSE(FormatXclient(p).ok());
}

TEST(CapaOffersXclient, Matches) {
  EXPECT_TRUE(CapaOffersXclient("XCLIENT"));
  EXPECT_TRUE(CapaOffersXclient("xclient"));
  EXPECT_TRUE(CapaOffersXclient("XClient ADDR PORT"));
  EXPECT_TRUE(CapaOffersXclient("XCLIENT\r\n"));
  EXPECT_FALSE(CapaOffersXclient(""));
  EXPECT_FALSE(CapaOffersXclient("XCLIEN"));
  EXPECT_FALSE(CapaOffersXclient("XCLIENTS"));
  EXPECT_FALSE(CapaOffersXclient("XCLIENT2 ADDR"));
  EXPECT_FALSE(CapaOffersXclient(" XCLIENT"));
  EXPECT_FALSE(CapaOffersXclient("SASL XCLIENT"));
  EXPECT_FALSE(CapaOffersXclient("UIDL"));
}

}  // namespace
}  // namespace popgate
