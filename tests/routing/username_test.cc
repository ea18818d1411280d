#include "routing/username.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace popgate::routing {
namespace {

struct AcceptCase {
  std::string raw;
  std::string full;
  std::string local;
  std::string domain;
};

class CanonicalizeAcceptTest : public testing::TestWithParam<AcceptCase> {};

TEST_P(CanonicalizeAcceptTest, Accepts) {
  const AcceptCase& c = GetParam();
  absl::StatusOr<CanonicalUser> user = Canonicalize(c.raw);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->full, c.full);
  EXPECT_EQ(user->local, c.local);
  EXPECT_EQ(user->domain, c.domain);
}

INSTANTIATE_TEST_SUITE_P(
    Table, CanonicalizeAcceptTest,
    testing::Values(
        AcceptCase{"alice", "alice", "alice", ""},
        AcceptCase{"a@X.COM", "a@x.com", "a", "x.com"},
        AcceptCase{"Alice@Example.Com", "alice@example.com", "alice",
                   "example.com"},
        AcceptCase{"a.b+tag=x_y-z@sub.example-1.com",
                   "a.b+tag=x_y-z@sub.example-1.com", "a.b+tag=x_y-z",
                   "sub.example-1.com"},
        AcceptCase{"0@9", "0@9", "0", "9"},
        // Dots in the local part are the mail system's business, not ours.
        AcceptCase{".a..b.@x", ".a..b.@x", ".a..b.", "x"},
        AcceptCase{std::string(255, 'A'), std::string(255, 'a'),
                   std::string(255, 'a'), ""}));

class CanonicalizeRefuseTest : public testing::TestWithParam<std::string> {};

TEST_P(CanonicalizeRefuseTest, Refuses) {
  absl::StatusOr<CanonicalUser> user = Canonicalize(GetParam());
  ASSERT_FALSE(user.ok()) << "accepted as " << user->full;
  EXPECT_EQ(user.status().code(), absl::StatusCode::kInvalidArgument);
}

using namespace std::string_literals;  // "..."s keeps embedded NULs

INSTANTIATE_TEST_SUITE_P(
    Table, CanonicalizeRefuseTest,
    testing::Values(""s, std::string(256, 'a'), "a@x.com@y.org"s, "a@@x"s,
                    "@x.com"s, "@"s, "a@"s, " a@x.com"s, "a@x.com "s,
                    "a b@x.com"s, "a\t@x.com"s, "a@x.com\r\n"s, "a\n"s,
                    "a@x.com\0@y.org"s, "\0"s, "a\x7f"s, "a\x1b[31m"s,
                    "\xc3\xa9@x.com"s,  // é in UTF-8
                    "\xff"s, "a@.x"s, "a@x..y"s, "a@x."s, "a@."s, "a%b@x"s,
                    "a/b"s, "a\\b"s, "a\"b"s, "a'b"s, "a,b"s, "a!b"s, "a:b"s,
                    "a;b"s, "a@x:110"s, "a@[1.2.3.4]"s, "a*"s, "a#b"s, "(a)"s,
                    "<a@x>"s));

TEST(CanonicalizeTest, ErrorDoesNotEchoInput) {
  // A password typed into the user prompt must not end up in a log line.
  absl::StatusOr<CanonicalUser> user = Canonicalize("hunter2 secret");
  ASSERT_FALSE(user.ok());
  EXPECT_EQ(std::string(user.status().message()).find("hunter2"),
            std::string::npos);
}

TEST(CanonicalizeTest, LengthLimitCountsOctets) {
  std::string name = std::string(251, 'a') + "@x.y";  // 255 octets
  EXPECT_TRUE(Canonicalize(name).ok());
  EXPECT_FALSE(Canonicalize(name + "z").ok());
}

}  // namespace
}  // namespace popgate::routing
