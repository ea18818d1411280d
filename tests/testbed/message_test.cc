#include "testbed/synth/message.h"

#include <chrono>
#include <string>
#include <string_view>

#include "testbed/synth/dot_stuffing.h"
#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

// Every line ends in CRLF: no bare CR or LF anywhere, and the data ends in
// CRLF.
::testing::AssertionResult AllLinesCrlf(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) {
      return ::testing::AssertionFailure() << "bare LF at " << i;
    }
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) {
      return ::testing::AssertionFailure() << "bare CR at " << i;
    }
  }
  if (!s.empty() && !s.ends_with("\r\n")) {
    return ::testing::AssertionFailure() << "does not end in CRLF";
  }
  return ::testing::AssertionSuccess();
}

size_t LongestLine(std::string_view s) {
  size_t longest = 0, start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      longest = std::max(longest, i - start - 1);
      start = i + 1;
    }
  }
  return longest;
}

const std::string kLongUser(200, 'u');

TEST(SynthMessageTest, ExactSizeAndCrlfForManySizes) {
  for (std::string_view user :
       {std::string_view("a"), std::string_view("alice@example.com"),
        std::string_view("user9999@bench.example"),
        std::string_view(kLongUser)}) {
    for (size_t size : {2,   3,   4,    10,   64,   65,   66,    67,     100,
                        150, 199, 200,  201,  300,  511,  575,   576,    577,
                        578, 579, 1000, 2000, 4095, 4096, 65537, 1000000}) {
      std::string m = SynthMessage(user, 3, size);
      ASSERT_EQ(m.size(), size) << user << " " << size;
      EXPECT_TRUE(AllLinesCrlf(m)) << user << " " << size;
      EXPECT_LE(LongestLine(m), 998u) << user << " " << size;
    }
  }
  EXPECT_EQ(SynthMessage("alice", 1, 0), "");
}

TEST(SynthMessageTest, HasHeadersAndDotLines) {
  std::string m = SynthMessage("alice@example.com", 3, 2000);
  EXPECT_TRUE(m.starts_with("To: alice@example.com\r\n"));
  EXPECT_NE(m.find("\r\nSubject: synth message 3 for alice@example.com\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("\r\nFrom: "), std::string::npos);
  EXPECT_NE(m.find("\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"),
            std::string::npos);
  EXPECT_NE(m.find("\r\nMessage-ID: <"), std::string::npos);
  size_t body = m.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  std::string_view b = std::string_view(m).substr(body + 2);
  EXPECT_NE(b.find("\r\n.\r\n"), std::string::npos) << "line '.'";
  EXPECT_NE(b.find("\r\n..\r\n"), std::string::npos) << "line '..'";
  EXPECT_NE(b.find("\r\n.a"), std::string::npos) << "line '.text'";
  EXPECT_NE(b.find("\r\n..a"), std::string::npos) << "line '..text'";
}

TEST(SynthMessageTest, SmallMessagesKeepDotLinesAndToHeader) {
  for (size_t size : {200, 150, 100}) {
    std::string m = SynthMessage("alice@example.com", 1, size);
    EXPECT_TRUE(m.starts_with("To: ")) << size;
    EXPECT_NE(m.find("\r\n\r\n.\r\n..\r\n"), std::string::npos) << size;
  }
  // A user name too long for the budget shortens the header, which stays
  // CRLF-terminated.
  std::string m = SynthMessage(kLongUser, 1, 200);
  EXPECT_TRUE(m.starts_with("To: uuu"));
  EXPECT_TRUE(AllLinesCrlf(m));
}

TEST(SynthMessageTest, BodyVariesLineLengthsAndHasManyDotLines) {
  std::string m = SynthMessage("alice@example.com", 1, 1 << 20);
  size_t dot_lines = 0;
  size_t empty_lines = 0;
  for (size_t pos = m.find("\r\n\r\n") + 4; pos < m.size();) {
    size_t end = m.find("\r\n", pos);
    if (m[pos] == '.') ++dot_lines;
    if (end == pos) ++empty_lines;
    pos = end + 2;
  }
  EXPECT_GT(dot_lines, 100u);
  EXPECT_GT(empty_lines, 100u);
  EXPECT_GT(LongestLine(m), 500u);
}

TEST(SynthMessageTest, Deterministic) {
  EXPECT_EQ(SynthMessage("alice@example.com", 2, 5000),
            SynthMessage("alice@example.com", 2, 5000));
  // Pinned so that content stays the same across runs, builds and
  // compilers; a deliberate format change must update these.
  EXPECT_EQ(SynthChecksum(SynthMessage("alice@example.com", 1, 2000)),
            5150562832967580717u);
  EXPECT_EQ(SynthChecksum(SynthMessage("user0@bench.example", 5, 100000)),
            6770375452701747580u);
}

TEST(SynthMessageTest, DiffersByUserAndNumber) {
  std::string a1 = SynthMessage("alice@example.com", 1, 2000);
  EXPECT_NE(a1, SynthMessage("bob@example.com", 1, 2000));
  EXPECT_NE(a1, SynthMessage("alice@example.com", 2, 2000));
  EXPECT_NE(a1, SynthMessage("Alice@example.com", 1, 2000));
  EXPECT_NE(SynthChecksum(a1),
            SynthChecksum(SynthMessage("bob@example.com", 1, 2000)));
}

TEST(SynthMessageTest, LayoutMatchesMessage) {
  for (size_t size : {100, 200, 2000, 70000}) {
    MessageLayout layout = SynthLayout("alice@example.com", 4, size);
    EXPECT_EQ(layout.header_section + SynthBody(layout.body_size),
              SynthMessage("alice@example.com", 4, size));
    EXPECT_TRUE(layout.header_section.ends_with("\r\n\r\n"));
  }
}

TEST(SynthMessageTest, LargeBodiesAreSharedAcrossUsers) {
  // Same body length whatever the user, so the server keeps one body.
  size_t body = SynthLayout("a@b", 1, 2000).body_size;
  EXPECT_EQ(SynthLayout("user9999@bench.example", 3, 2000).body_size, body);
  EXPECT_EQ(SynthLayout("alice@example.com", 5, 2000).body_size, body);
  EXPECT_EQ(body, 2000 - kPaddedHeaderSize);
}

TEST(SynthMessageTest, BodyWireIsStuffedBody) {
  for (size_t size : {2, 3, 5, 64, 1000, 123457}) {
    EXPECT_EQ(SynthBodyWire(size), DotStuff(SynthBody(size))) << size;
  }
}

TEST(SynthMessageTest, HundredMegabytesIsFast) {
  auto start = std::chrono::steady_clock::now();
  std::string wire = SynthBodyWire(100 << 20);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_GE(wire.size(), 100u << 20);
  EXPECT_LT(seconds, 2.0);
}

TEST(SynthChecksumTest, IsFnv1a64) {
  EXPECT_EQ(SynthChecksum(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(SynthChecksum("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(SynthChecksum("foobar"), 0x85944171f73967e8ULL);
}

TEST(SynthUidlTest, StablePrintableAndDistinct) {
  std::string u = SynthUidl("alice@example.com", 1, 2000);
  EXPECT_EQ(u, SynthUidl("alice@example.com", 1, 2000));
  EXPECT_LE(u.size(), 70u);
  for (char c : u) EXPECT_TRUE(c >= 0x21 && c <= 0x7e);
  EXPECT_NE(u, SynthUidl("alice@example.com", 2, 2000));
  EXPECT_NE(u, SynthUidl("bob@example.com", 1, 2000));
  EXPECT_NE(u, SynthUidl("alice@example.com", 1, 2001));
}

}  // namespace
}  // namespace popgate::synth
