// pop3-synth's PROXY header reader (testbed/synth/proxy_header.h): the
// headers popgate's client_identity = "proxy-v2" sends (PROXY and LOCAL),
// v1 lines, byte-by-byte arrival, and every way a header is refused.
#include "testbed/synth/proxy_header.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

using State = ProxyHeaderReader::State;
using Command = ProxyHeaderReader::Command;

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: ver/cmd, family, then `body` (addresses and TLVs).
std::string V2(uint8_t ver_cmd, uint8_t family, const std::string& body) {
  std::string h = kSig;
  h.push_back(static_cast<char>(ver_cmd));
  h.push_back(static_cast<char>(family));
  h.push_back(static_cast<char>(body.size() >> 8));
  h.push_back(static_cast<char>(body.size() & 0xff));
  return h + body;
}

// TCP4 192.0.2.1:56324 -> 127.0.0.1:110, then an SSL TLV (type 0x20).
std::string Tcp4WithTlv() {
  std::string body = {'\xc0', '\x00', '\x02', '\x01', '\x7f', '\x00',
                      '\x00', '\x01', '\xdc', '\x04', '\x00', '\x6e'};
  body += std::string("\x20\x00\x05\x01\x00\x00\x00\x00", 8);
  return V2(0x21, 0x11, body);
}

TEST(ProxyHeaderReaderTest, V2ProxyWithTlvAndPipelinedBytes) {
  ProxyHeaderReader r;
  const std::string header = Tcp4WithTlv();
  EXPECT_EQ(r.Feed(header + "CAPA\r\n"), State::kDone);
  EXPECT_EQ(r.version(), 2);
  EXPECT_EQ(r.command(), Command::kProxy);
  EXPECT_EQ(r.header_size(), header.size());
  EXPECT_EQ(r.rest(), "CAPA\r\n");
}

TEST(ProxyHeaderReaderTest, V2LocalAsHealthChecksSendIt) {
  ProxyHeaderReader r;
  EXPECT_EQ(r.Feed(V2(0x20, 0x00, "")), State::kDone);
  EXPECT_EQ(r.command(), Command::kLocal);
  EXPECT_EQ(r.header_size(), 16u);
  EXPECT_EQ(r.rest(), "");
}

TEST(ProxyHeaderReaderTest, V2Tcp6) {
  ProxyHeaderReader r;
  EXPECT_EQ(r.Feed(V2(0x21, 0x21, std::string(36, '\x01'))), State::kDone);
  EXPECT_EQ(r.header_size(), 16u + 36u);
}

TEST(ProxyHeaderReaderTest, EveryPrefixNeedsMore) {
  for (const std::string& header :
       {Tcp4WithTlv(), V2(0x20, 0x00, ""),
        std::string("PROXY TCP4 192.0.2.1 127.0.0.1 56324 110\r\n")}) {
    ProxyHeaderReader r;
    for (size_t i = 0; i + 1 < header.size(); ++i) {
      ASSERT_EQ(r.Feed(header.substr(i, 1)), State::kNeedMore) << i;
    }
    EXPECT_EQ(r.Feed(header.substr(header.size() - 1)), State::kDone);
    EXPECT_EQ(r.header_size(), header.size());
  }
}

TEST(ProxyHeaderReaderTest, V1Lines) {
  for (const char* line :
       {"PROXY TCP4 192.0.2.1 127.0.0.1 56324 110\r\n",
        "PROXY TCP6 2001:db8::1 ::1 56324 110\r\n", "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"}) {
    ProxyHeaderReader r;
    EXPECT_EQ(r.Feed(std::string(line) + "USER x\r\n"), State::kDone) << line;
    EXPECT_EQ(r.version(), 1);
    EXPECT_EQ(r.rest(), "USER x\r\n");
  }
}

TEST(ProxyHeaderReaderTest, RefusesWhatIsNotAHeader) {
  const std::string cases[] = {
      "USER alice\r\n",                                  // no header
      "CAPA\r\n",                                        // no header
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",                // v1 without CR
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",                // a port missing
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",          // port range
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",             // leading zero
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",              // protocol
      "PROXY TCP4 1.2.3.x 5.6.7.8 1 2\r\n",              // address
      "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",             // double space
      "PROXY " + std::string(120, 'A'),                  // v1 too long
      "\r\n\r\n\0\r\nQUIX\n" + std::string(8, '\0'),     // signature
      V2(0x11, 0x11, std::string(12, '\0')),             // version 1
      V2(0x22, 0x11, std::string(12, '\0')),             // command 2
      V2(0x21, 0x41, std::string(12, '\0')),             // family 4
      V2(0x21, 0x11, std::string(11, '\0')),             // short TCP4
      V2(0x21, 0x21, std::string(35, '\0')),             // short TCP6
      V2(0x21, 0x11, std::string(4096 - 16 + 1, '\0')),  // over 4096
  };
  for (const std::string& c : cases) {
    ProxyHeaderReader r;
    EXPECT_EQ(r.Feed(c), State::kError) << testing::PrintToString(c);
    EXPECT_FALSE(r.error().empty());
    // Stays refused.
    EXPECT_EQ(r.Feed("\r\n"), State::kError);
  }
}

TEST(ProxyHeaderReaderTest, LongestV2HeaderIsAccepted) {
  ProxyHeaderReader r;
  EXPECT_EQ(r.Feed(V2(0x21, 0x11, std::string(4096 - 16, '\0'))), State::kDone);
  EXPECT_EQ(r.header_size(), 4096u);
}

TEST(ProxyHeaderReaderTest, OverLongV2IsRefusedFromItsLengthAlone) {
  // The 16 fixed bytes say 4081 bytes follow: refused before they come,
  // so nothing over the bound is ever buffered.
  ProxyHeaderReader r;
  std::string h = V2(0x21, 0x11, std::string(4096 - 16 + 1, '\0'));
  EXPECT_EQ(r.Feed(h.substr(0, 16)), State::kError);
}

}  // namespace
}  // namespace popgate::synth
