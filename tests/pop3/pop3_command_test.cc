#include "pop3/pop3_command.h"

#include "gtest/gtest.h"

namespace popgate {
namespace {

TEST(Pop3CommandTest, KeywordsAreCaseInsensitive) {
  EXPECT_EQ(ParseCommand("capa").verb, Verb::kCapa);
  EXPECT_EQ(ParseCommand("CaPa").verb, Verb::kCapa);
  EXPECT_EQ(ParseCommand("user bob").verb, Verb::kUser);
  EXPECT_EQ(ParseCommand("Pass x").verb, Verb::kPass);
  EXPECT_EQ(ParseCommand("QUIT").verb, Verb::kQuit);
  EXPECT_EQ(ParseCommand("STLS").verb, Verb::kStls);
  EXPECT_EQ(ParseCommand("AUTH PLAIN").verb, Verb::kAuth);
}

TEST(Pop3CommandTest, UnknownAndPrefixesAreUnknown) {
  EXPECT_EQ(ParseCommand("RETR 1").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommand("USERX a").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommand("USE").verb, Verb::kUnknown);
  EXPECT_EQ(ParseCommand("").verb, Verb::kUnknown);
}

TEST(Pop3CommandTest, ArgumentKeepsSpaces) {
  Command c = ParseCommand("PASS my secret pass");
  EXPECT_EQ(c.verb, Verb::kPass);
  EXPECT_EQ(c.arg, "my secret pass");
  EXPECT_EQ(ParseCommand("USER").arg, "");
}

TEST(Pop3CommandTest, ForbiddenBytes) {
  EXPECT_FALSE(HasForbiddenBytes("USER alice@example.com"));
  EXPECT_FALSE(HasForbiddenBytes("PASS p\xc3\xa4ss"));  // UTF-8 is fine
  EXPECT_FALSE(HasForbiddenBytes("PASS a\tb"));
  EXPECT_TRUE(HasForbiddenBytes(std::string_view("USER a\0b", 8)));
  EXPECT_TRUE(HasForbiddenBytes("USER a\rb"));
  EXPECT_TRUE(HasForbiddenBytes("USER a\x1b"));
  EXPECT_TRUE(HasForbiddenBytes("USER a\x7f"));
}

}  // namespace
}  // namespace popgate
