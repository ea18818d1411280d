#include "pop3/line_safety.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

TEST(LineSafetyTest, PlainValuesPass) {
  EXPECT_TRUE(SafeForLine("alice@example.com"));
  EXPECT_TRUE(SafeForLine("pass word with spaces\t and tab"));
  EXPECT_TRUE(SafeForLine(""));
  EXPECT_TRUE(CheckLineArgument("USER", "alice@example.com").ok());
  EXPECT_TRUE(CheckLineArgument("PASS", "\xc3\xa4 utf-8 is fine").ok());
}

TEST(LineSafetyTest, RefusesCrLfAndNulAnywhere) {
  for (std::string v :
       {std::string("demo\r\nDELE 1"), std::string("demo\nDELE 1"),
        std::string("demo\rDELE 1"), std::string("\r"), std::string("x\n"),
        std::string("de\0mo", 5), std::string(1, '\0')}) {
    EXPECT_FALSE(SafeForLine(v)) << v.size();
    absl::Status st = CheckLineArgument("PASS", v);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << v.size();
  }
}

TEST(LineSafetyTest, ErrorNeverContainsTheValue) {
  const std::string secret = "s3cr3t-Pa55\r\nDELE 1";
  absl::Status st = CheckLineArgument("PASS", secret);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().find("s3cr3t"), std::string_view::npos)
      << st.message();
  st = CheckLineArgument("PASS", std::string(300, 'q'));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().find("qqqq"), std::string_view::npos) << st.message();
}

TEST(LineSafetyTest, LengthLimitIsTheWholeCommandLine) {
  // "USER " + value + CRLF == 255 octets is the longest allowed.
  const size_t max_value = kMaxCommandLine - 5 - 2;
  EXPECT_TRUE(CheckLineArgument("USER", std::string(max_value, 'a')).ok());
  EXPECT_FALSE(CheckLineArgument("USER", std::string(max_value + 1, 'a')).ok());
  EXPECT_FALSE(CheckLineArgument("PASS", std::string(4096, 'a')).ok());
}

}  // namespace
}  // namespace popgate
