// [admin] (issue 11): the admin API's listener, token file and bounds.
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "tests/config/section_test_util.h"

namespace popgate {
namespace {

using ::popgate::testing::ParseSection;

absl::StatusOr<Config> Parse(std::string_view admin) {
  return ParseSection(admin);
}

::testing::AssertionResult FailsAt(std::string_view admin, int line,
                                   std::string_view what) {
  return ::popgate::testing::SectionFailsAt(admin, line, what);
}

TEST(AdminConfigTest, OffByDefault) {
  absl::StatusOr<Config> c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin.listen, "");
  EXPECT_EQ(c->admin.token_file, "");
  EXPECT_EQ(c->admin.max_connections, 64);
  EXPECT_EQ(c->admin.request_timeout, absl::Seconds(5));
}

TEST(AdminConfigTest, AllKeys) {
  absl::StatusOr<Config> c = Parse(
      "[admin]\n"
      "listen = \"0.0.0.0:9110\"\n"
      "token_file = \"admin.token\"\n"
      "max_connections = 8\n"
      "request_timeout = \"2s\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin.listen, "0.0.0.0:9110");
  EXPECT_EQ(c->admin.token_file, "/etc/popgate/admin.token");
  EXPECT_EQ(c->admin.token_file_line, 3u);
  EXPECT_EQ(c->admin.max_connections, 8);
  EXPECT_EQ(c->admin.request_timeout, absl::Seconds(2));
}

TEST(AdminConfigTest, LoopbackAndUnixNeedNoToken) {
  for (std::string_view listen : {"127.0.0.1:9110", "[::1]:9110", "127.0.0.2:1",
                                  "unix:/run/popgate/admin.sock"}) {
    absl::StatusOr<Config> c =
        Parse("[admin]\nlisten = \"" + std::string(listen) + "\"\n");
    ASSERT_TRUE(c.ok()) << listen << ": " << c.status();
    EXPECT_EQ(c->admin.listen, listen);
  }
}

TEST(AdminConfigTest, Refused) {
  EXPECT_TRUE(FailsAt("[admin]\nlisten = \"0.0.0.0:9110\"\n", 2, "token_file"));
  EXPECT_TRUE(
      FailsAt("[admin]\nlisten = \"localhost:9110\"\n", 2, "token_file"));
  EXPECT_TRUE(FailsAt("[admin]\nlisten = \"127.0.0.1\"\n", 2, "'listen'"));
  EXPECT_TRUE(
      FailsAt("[admin]\nlisten = \"unix:relative.sock\"\n", 2, "absolute"));
  EXPECT_TRUE(FailsAt(
      "[admin]\nlisten = \"unix:/" + std::string(120, 'a') + "\"\n", 2, "107"));
  EXPECT_TRUE(FailsAt("[admin]\nlisten = 9110\n", 2, "listen"));
  EXPECT_TRUE(FailsAt("[admin]\nport = 1\n", 2, "port"));
  EXPECT_TRUE(FailsAt("[admin]\nmax_connections = 0\n", 2, "max_connections"));
  EXPECT_TRUE(
      FailsAt("[admin]\nrequest_timeout = \"2m\"\n", 2, "request_timeout"));
  EXPECT_TRUE(FailsAt("admin = 1\n", 1, "admin"));
}

// Every [admin] key has a row in the README's configuration reference.
TEST(AdminConfigTest, ReadmeDocumentsEveryKey) {
  std::ifstream in(POPGATE_README);
  ASSERT_TRUE(in) << POPGATE_README;
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const size_t section = text.find("### `[admin]` (optional)");
  ASSERT_NE(section, std::string::npos);
  for (std::string_view key :
       {"listen", "token_file", "max_connections", "request_timeout"}) {
    EXPECT_NE(text.find("| `" + std::string(key) + "` |", section),
              std::string::npos)
        << key;
  }
}

}  // namespace
}  // namespace popgate
