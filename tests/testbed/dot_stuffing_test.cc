#include "testbed/synth/dot_stuffing.h"

#include <string>

#include "testbed/synth/message.h"
#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

TEST(DotStuffTest, StuffsOnlyLeadingDots) {
  EXPECT_EQ(DotStuff(""), "");
  EXPECT_EQ(DotStuff(".\r\n"), "..\r\n");
  EXPECT_EQ(DotStuff("..\r\n"), "...\r\n");
  EXPECT_EQ(DotStuff("a.b\r\n.c\r\nd.\r\n"), "a.b\r\n..c\r\nd.\r\n");
  EXPECT_EQ(DotStuff("x\r\n\r\n.\r\n"), "x\r\n\r\n..\r\n");
  // Bare LF also starts a line.
  EXPECT_EQ(DotStuff("a\n.b\n"), "a\n..b\n");
}

TEST(DotStuffTest, UnstuffInvertsStuff) {
  for (std::string s : {"", ".\r\n", "..\r\n...\r\n", "a\r\n.b\r\n..c\r\n",
                        "no dots\r\n", ".no newline"}) {
    EXPECT_EQ(DotUnstuff(DotStuff(s)), s) << s;
  }
}

TEST(DotStuffTest, RoundTripsGeneratedMessages) {
  for (size_t size : {200, 2000, 65536, 1 << 20}) {
    std::string m = SynthMessage("alice@example.com", 1, size);
    std::string wire = DotStuff(m);
    EXPECT_GT(wire.size(), m.size()) << "message has dot lines";
    // The wire form never contains the terminator inside the message.
    EXPECT_EQ(("\r\n" + wire).find("\r\n.\r\n"), std::string::npos);
    EXPECT_EQ(DotUnstuff(wire), m);
  }
}

TEST(DotStuffTest, PiecewiseStuffingAtLineBoundaries) {
  std::string a = "x\r\n.y\r\n", b = ".\r\nz\r\n";
  EXPECT_EQ(DotStuff(a) + DotStuff(b), DotStuff(a + b));
}

}  // namespace
}  // namespace popgate::synth
