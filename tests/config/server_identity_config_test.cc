// [server] user, group and allow_root: parsed and checked here, looked up
// at start (server/privileges).
#include <string>

#include "config/config.h"
#include "gtest/gtest.h"
#include "tests/config/section_test_util.h"

namespace popgate {
namespace {

absl::StatusOr<Config> Parse(const std::string& server) {
  return ::popgate::testing::ParseSection("[server]\n" + server);
}

TEST(ServerIdentityConfigTest, Defaults) {
  absl::StatusOr<Config> c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.user, "");
  EXPECT_EQ(c->server.group, "");
  EXPECT_FALSE(c->server.allow_root);
}

TEST(ServerIdentityConfigTest, UserGroupAllowRoot) {
  absl::StatusOr<Config> c = Parse(
      "workers = 1\nuser = \"popgate\"\ngroup = \"mail\"\n"
      "allow_root = true\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.user, "popgate");
  EXPECT_EQ(c->server.group, "mail");
  EXPECT_TRUE(c->server.allow_root);
  EXPECT_EQ(c->server.user_line, 3u);  // for start-up errors
}

TEST(ServerIdentityConfigTest, GroupNeedsUser) {
  absl::StatusOr<Config> c = Parse("group = \"mail\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()),
            "t.toml:2: 'group' needs 'user' (the group popgate switches to "
            "with it); set user too, or remove group");
}

TEST(ServerIdentityConfigTest, BadNames) {
  for (const char* bad : {"user = \"\"", "user = \"a:b\"", "user = \"../x\"",
                          "user = \"a\\nb\"", "group = \"\"\nuser = \"x\""}) {
    absl::StatusOr<Config> c = Parse(std::string(bad) + "\n");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(
        std::string(c.status().message()).find("must be a user or group name"),
        std::string::npos)
        << c.status();
  }
  EXPECT_FALSE(Parse("user = 7\n").ok());
  EXPECT_FALSE(Parse("allow_root = \"yes\"\n").ok());
}

}  // namespace
}  // namespace popgate
