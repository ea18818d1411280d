// Settings and checks added by issue 8 (the older ones are in config_test.cc).
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

constexpr std::string_view kName = "t.toml";
constexpr std::string_view kBaseDir = "/etc/popgate";

// Two lines.
const std::string kListener =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n";
// Five lines; auth = "backend" so it needs no passwd_file.
const std::string kTenant =
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "auth = \"backend\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";

absl::StatusOr<Config> Parse(std::string_view text) {
  return ParseConfig(text, kName, kBaseDir);
}

// `text` is refused with "t.toml:<line>: ..." mentioning `what`.
testing::AssertionResult FailsAt(std::string_view text, int line,
                                 std::string_view what = "") {
  absl::StatusOr<Config> config = Parse(text);
  if (config.ok()) return testing::AssertionFailure() << "was accepted";
  const std::string message(config.status().message());
  const std::string prefix =
      std::string(kName) + ":" + std::to_string(line) + ": ";
  if (message.rfind(prefix, 0) != 0) {
    return testing::AssertionFailure()
           << "expected prefix '" << prefix << "', got: " << message;
  }
  if (message.find(what) == std::string::npos) {
    return testing::AssertionFailure()
           << "expected '" << what << "' in: " << message;
  }
  return testing::AssertionSuccess() << message;
}

TEST(ServerSettingsTest, Defaults) {
  absl::StatusOr<Config> config = Parse(kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerConfig& s = config->server;
  EXPECT_EQ(s.backend_auth_timeout, absl::Seconds(30));
  EXPECT_EQ(s.login_timeout, absl::Seconds(60));
  EXPECT_EQ(s.max_preauth_commands, 50);
  EXPECT_EQ(s.auth_queue_limit, 1024);
  EXPECT_FALSE(s.takeover_listeners);
  EXPECT_EQ(s.forward_socket_buffer, 512 * 1024);
  EXPECT_EQ(s.client_drain_timeout, absl::Seconds(10));
  EXPECT_FALSE(config->listeners[0].ipv6_only);
}

TEST(ServerSettingsTest, AllNewSettings) {
  absl::StatusOr<Config> config = Parse(
      "[server]\n"
      "backend_auth_timeout = \"45s\"\n"
      "login_timeout = \"3s\"\n"
      "max_preauth_commands = 7\n"
      "auth_queue_limit = 16\n"
      "takeover_listeners = true\n"
      "forward_socket_buffer = 65536\n"
      "client_drain_timeout = \"500ms\"\n" +
      kListener + "ipv6_only = true\n" + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerConfig& s = config->server;
  EXPECT_EQ(s.backend_auth_timeout, absl::Seconds(45));
  EXPECT_EQ(s.login_timeout, absl::Seconds(3));
  EXPECT_EQ(s.max_preauth_commands, 7);
  EXPECT_EQ(s.auth_queue_limit, 16);
  EXPECT_TRUE(s.takeover_listeners);
  EXPECT_EQ(s.forward_socket_buffer, 65536);
  EXPECT_EQ(s.client_drain_timeout, absl::Milliseconds(500));
  EXPECT_TRUE(config->listeners[0].ipv6_only);
}

TEST(ServerSettingsTest, ForwardSocketBufferZeroIsAutotuning) {
  absl::StatusOr<Config> config =
      Parse("[server]\nforward_socket_buffer = 0\n" + kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.forward_socket_buffer, 0);
}

TEST(ServerSettingsTest, Errors) {
  const std::string rest = kListener + kTenant;
  EXPECT_TRUE(FailsAt("[server]\nlogin_timeout = \"0s\"\n" + rest, 2,
                      "'login_timeout' must be > 0"));
  EXPECT_TRUE(FailsAt("[server]\nlogin_timeout = \"soon\"\n" + rest, 2,
                      "bad duration"));
  EXPECT_TRUE(FailsAt("[server]\nclient_drain_timeout = \"0s\"\n" + rest, 2,
                      "'client_drain_timeout' must be > 0"));
  EXPECT_TRUE(FailsAt("[server]\nmax_preauth_commands = 0\n" + rest, 2,
                      "'max_preauth_commands' must be in"));
  EXPECT_TRUE(FailsAt("[server]\nauth_queue_limit = 0\n" + rest, 2,
                      "'auth_queue_limit' must be in"));
  EXPECT_TRUE(
      FailsAt("[server]\nauth_queue_limit = \"many\"\n" + rest, 2, "integer"));
  EXPECT_TRUE(
      FailsAt("[server]\ntakeover_listeners = 1\n" + rest, 2, "boolean"));
  EXPECT_TRUE(FailsAt("[server]\nforward_socket_buffer = -1\n" + rest, 2,
                      "'forward_socket_buffer' must be in"));
  EXPECT_TRUE(FailsAt("[server]\nforward_socket_buffer = 100\n" + rest, 2,
                      "at least 4096"));
  EXPECT_TRUE(
      FailsAt(kListener + "ipv6_only = \"yes\"\n" + kTenant, 3, "boolean"));
}

}  // namespace
}  // namespace popgate
