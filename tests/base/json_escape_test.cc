#include "base/json_escape.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

TEST(JsonEscapeTest, CleanTextIsAppendedAsItIs) {
  std::string out = "prefix:";
  AppendJsonEscaped(&out, "user1@example.com");
  EXPECT_EQ(out, "prefix:user1@example.com");
  AppendJsonEscaped(&out, "");
  EXPECT_EQ(out, "prefix:user1@example.com");
}

TEST(JsonEscapeTest, EscapesAtTheStartTheMiddleAndTheEnd) {
  EXPECT_EQ(JsonEscape("\"a"), "\\\"a");
  EXPECT_EQ(JsonEscape("a\\b"), "a\\\\b");
  EXPECT_EQ(JsonEscape("ab\n"), "ab\\n");
  EXPECT_EQ(JsonEscape("\r\t"), "\\r\\t");
  EXPECT_EQ(JsonEscape("\"\""), "\\\"\\\"");
}

// Every byte value: printable ASCII as itself, the five named escapes,
// every other byte (controls, DEL, and >= 0x80, so the line stays ASCII)
// as \u00xx in lower-case hex.
TEST(JsonEscapeTest, EveryByteValue) {
  for (int c = 0; c < 256; ++c) {
    const std::string in(1, static_cast<char>(c));
    std::string want;
    switch (c) {
      case '"':
        want = "\\\"";
        break;
      case '\\':
        want = "\\\\";
        break;
      case '\n':
        want = "\\n";
        break;
      case '\r':
        want = "\\r";
        break;
      case '\t':
        want = "\\t";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          want = in;
        } else {
          static constexpr char kHex[] = "0123456789abcdef";
          want = std::string("\\u00") + kHex[c >> 4] + kHex[c & 0xf];
        }
    }
    EXPECT_EQ(JsonEscape(in), want) << "byte " << c;
    // The same byte inside clean text: the runs either side survive.
    EXPECT_EQ(JsonEscape("ab" + in + "cd"), "ab" + want + "cd") << "byte " << c;
  }
}

}  // namespace
}  // namespace popgate
