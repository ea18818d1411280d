#include "session/backend_reply.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace popgate {
namespace {

// The relayed reply is one POP3 line: "-ERR ", text, CRLF, and no other
// CR, LF or NUL.
void ExpectOneLine(const std::string& reply) {
  ASSERT_GE(reply.size(), 7u) << reply;
  EXPECT_TRUE(reply.starts_with("-ERR ")) << reply;
  EXPECT_TRUE(reply.ends_with("\r\n")) << reply;
  const std::string_view body(reply.data(), reply.size() - 2);
  EXPECT_EQ(body.find_first_of(std::string_view("\r\n\0", 3)),
            std::string_view::npos)
      << reply;
}

TEST(RefusalReplyTest, KeepsTheBackendsOwnResponseCode) {
  EXPECT_EQ(RefusalReply("-ERR [IN-USE] Mailbox locked"),
            "-ERR [IN-USE] Mailbox locked\r\n");
  EXPECT_EQ(RefusalReply("-ERR [SYS/TEMP] Try later"),
            "-ERR [SYS/TEMP] Try later\r\n");
  EXPECT_EQ(RefusalReply("-ERR [AUTH] Bad password"),
            "-ERR [AUTH] Bad password\r\n");
  EXPECT_EQ(RefusalReply("-ERR [SYS/PERM] Account disabled"),
            "-ERR [SYS/PERM] Account disabled\r\n");
}

TEST(RefusalReplyTest, AddsAuthWhenTheBackendGaveNoCode) {
  EXPECT_EQ(RefusalReply("-ERR Invalid login"),
            "-ERR [AUTH] Invalid login\r\n");
  EXPECT_EQ(RefusalReply("-ERR    spaced"), "-ERR [AUTH] spaced\r\n");
  EXPECT_EQ(RefusalReply("-ERR"), "-ERR [AUTH] Authentication failed.\r\n");
  EXPECT_EQ(RefusalReply("-ERR "), "-ERR [AUTH] Authentication failed.\r\n");
  EXPECT_EQ(RefusalReply(""), "-ERR [AUTH] Authentication failed.\r\n");
}

TEST(RefusalReplyTest, IsAlwaysExactlyOneLine) {
  const std::string_view nasty[] = {
      "-ERR a\r\n+OK injected\r\n",
      "-ERR [IN-USE] x\r\n+OK Logged in",
      std::string_view("-ERR nul\0inside", 15),
      "-ERR bare\rcr",
      "-ERR bare\nlf",
      "\r\n",
      "+OK not even an error\r\n",
      "-ERR\t\x01\x1f",
  };
  for (std::string_view line : nasty) {
    SCOPED_TRACE(std::string(line));
    ExpectOneLine(RefusalReply(line));
  }
  EXPECT_EQ(RefusalReply("-ERR a\r\n+OK injected"),
            "-ERR [AUTH] a  +OK injected\r\n");
  EXPECT_EQ(RefusalReply(std::string_view("-ERR [IN-USE]\0x", 15)),
            "-ERR [IN-USE] x\r\n");
}

TEST(RefusalReplyTest, EveryByteValueStaysOneLine) {
  for (int b = 0; b < 256; ++b) {
    std::string line = "-ERR x";
    line += static_cast<char>(b);
    line += "y";
    SCOPED_TRACE(b);
    ExpectOneLine(RefusalReply(line));
  }
}

TEST(IsTemporaryRefusalTest, RecognisesInUseAndSysTemp) {
  EXPECT_TRUE(IsTemporaryRefusal("-ERR [IN-USE] Mailbox locked"));
  EXPECT_TRUE(IsTemporaryRefusal("-ERR [SYS/TEMP] Try later"));
  EXPECT_TRUE(IsTemporaryRefusal("-ERR [in-use] lower case"));
  EXPECT_TRUE(IsTemporaryRefusal("-ERR [Sys/Temp]"));
  EXPECT_TRUE(IsTemporaryRefusal("-ERR   [IN-USE]"));
}

TEST(IsTemporaryRefusalTest, OtherRefusalsAreNotTemporary) {
  EXPECT_FALSE(IsTemporaryRefusal("-ERR [AUTH] Bad password"));
  EXPECT_FALSE(IsTemporaryRefusal("-ERR [SYS/PERM] Disabled"));
  EXPECT_FALSE(IsTemporaryRefusal("-ERR Invalid login"));
  EXPECT_FALSE(IsTemporaryRefusal("-ERR not [IN-USE] at the start"));
  EXPECT_FALSE(IsTemporaryRefusal("-ERR [IN-US"));
  EXPECT_FALSE(IsTemporaryRefusal("-ERR"));
  EXPECT_FALSE(IsTemporaryRefusal(""));
}

TEST(StartsWithIgnoreCaseTest, AsciiOnly) {
  EXPECT_TRUE(StartsWithIgnoreCase("XPOPGATE-LOOP", "xpopgate-loop"));
  EXPECT_TRUE(StartsWithIgnoreCase("abc", ""));
  EXPECT_FALSE(StartsWithIgnoreCase("ab", "abc"));
  EXPECT_FALSE(StartsWithIgnoreCase("\xc4x", "\xe4x"));
}

TEST(LoggableReplyTest, BlanksControlBytesAndBoundsLength) {
  EXPECT_EQ(LoggableReply("-ERR a\r\nb\tc"), "-ERR a  b c");
  EXPECT_EQ(LoggableReply(std::string(500, 'x')), std::string(200, 'x'));
  EXPECT_EQ(LoggableReply(std::string_view("a\0b", 3)), "a b");
}

}  // namespace
}  // namespace popgate
