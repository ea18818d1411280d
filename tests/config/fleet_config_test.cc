// The [[tenant]] settings for fronting a fleet: failover, client_identity,
// backend_login and master_*, capabilities, [tenant.health_check], and each
// backend's state and max_connections.
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "routing/routing_table.h"

namespace popgate {
namespace {

constexpr std::string_view kName = "t.toml";
constexpr std::string_view kBaseDir = "/etc/popgate";

// Lines 1..7; what follows starts on line 8 and is still in [[tenant]].
const std::string kBackendAuth =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n"
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "auth = \"backend\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";
// The same with auth = "file" (the default) and a passwd_file on line 6.
const std::string kFileAuth =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n"
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "passwd_file = \"users.passwd\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";
// Lines 1..6, for tests that write their own backends (from line 7).
const std::string kNoBackends =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n"
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "auth = \"backend\"\n";

absl::StatusOr<Config> Parse(std::string_view text) {
  return ParseConfig(text, kName, kBaseDir);
}

// The one tenant of `text`, which must parse.
TenantConfig Tenant(const std::string& text) {
  absl::StatusOr<Config> config = Parse(text);
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << text;
  if (!config.ok() || config->tenants.empty()) return {};
  return config->tenants[0];
}

// Checks that `text` is refused with "t.toml:<line>: ..." mentioning `what`.
testing::AssertionResult FailsAt(std::string_view text, int line,
                                 std::string_view what) {
  absl::StatusOr<Config> config = Parse(text);
  if (config.ok()) return testing::AssertionFailure() << "was accepted";
  const std::string message(config.status().message());
  if (config.status().code() != absl::StatusCode::kInvalidArgument) {
    return testing::AssertionFailure() << "wrong code: " << config.status();
  }
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

TEST(FleetConfigTest, DefaultsWhenAbsent) {
  const TenantConfig t = Tenant(kBackendAuth);
  EXPECT_EQ(t.failover, Failover::kNone);
  EXPECT_EQ(t.client_identity, ClientIdentity::kNone);
  EXPECT_EQ(t.backend_login, BackendLoginMode::kClient);
  EXPECT_EQ(t.master_login, MasterLoginMethod::kSeparator);
  EXPECT_EQ(t.master_user, "");
  EXPECT_EQ(t.master_password_file, "");
  EXPECT_EQ(t.master_password_file_line, 0u);
  EXPECT_EQ(t.master_separator, "*");
  EXPECT_EQ(t.capabilities,
            (std::vector<std::string>{"PIPELINING", "RESP-CODES",
                                      "AUTH-RESP-CODE", "TOP", "UIDL"}));
  const HealthCheckConfig& h = t.health_check;
  EXPECT_FALSE(h.active);
  EXPECT_TRUE(h.passive);
  EXPECT_EQ(h.interval, absl::Seconds(5));
  EXPECT_EQ(h.timeout, absl::Seconds(2));
  EXPECT_EQ(h.rise, 2);
  EXPECT_EQ(h.fall, 3);
  EXPECT_TRUE(h.capa);
  EXPECT_TRUE(h.tls);
  EXPECT_EQ(h.line, 0u);
  ASSERT_EQ(t.spec.backends.size(), 1u);
  EXPECT_EQ(t.spec.backends[0].state, routing::AdminState::kUp);
  EXPECT_EQ(t.spec.backends[0].max_connections, 0u);
}

TEST(FleetConfigTest, Failover) {
  EXPECT_EQ(Tenant(kBackendAuth + "failover = \"none\"\n").failover,
            Failover::kNone);
  EXPECT_EQ(Tenant(kBackendAuth + "failover = \"next\"\n").failover,
            Failover::kNext);
  EXPECT_TRUE(FailsAt(kBackendAuth + "failover = \"any\"\n", 8,
                      "'failover' must be \"none\" or \"next\""));
  EXPECT_TRUE(FailsAt(kBackendAuth + "failover = true\n", 8,
                      "'failover' must be a string"));
}

TEST(FleetConfigTest, ClientIdentity) {
  EXPECT_EQ(
      Tenant(kBackendAuth + "client_identity = \"none\"\n").client_identity,
      ClientIdentity::kNone);
  EXPECT_EQ(
      Tenant(kBackendAuth + "client_identity = \"proxy-v2\"\n").client_identity,
      ClientIdentity::kProxyV2);
  EXPECT_EQ(
      Tenant(kBackendAuth + "client_identity = \"xclient\"\n").client_identity,
      ClientIdentity::kXclient);
  EXPECT_TRUE(FailsAt(kBackendAuth + "\nclient_identity = \"proxy\"\n", 9,
                      "'client_identity' must be \"none\", \"proxy-v2\" or "
                      "\"xclient\""));
  EXPECT_TRUE(FailsAt(kBackendAuth + "client_identity = 2\n", 8,
                      "'client_identity' must be a string"));
}

TEST(FleetConfigTest, BackendStateAndMaxConnections) {
  const TenantConfig t =
      Tenant(kNoBackends +
             "backends = [ { address = \"h:1\", state = \"up\" },\n"
             "  { address = \"h:2\", state = \"drain\", max_connections = 5 "
             "},\n"
             "  { address = \"h:3\", state = \"down\", max_connections = 0 },\n"
             "  { address = \"h:4\", max_connections = 1000000 } ]\n");
  ASSERT_EQ(t.spec.backends.size(), 4u);
  EXPECT_EQ(t.spec.backends[0].state, routing::AdminState::kUp);
  EXPECT_EQ(t.spec.backends[0].max_connections, 0u);
  EXPECT_EQ(t.spec.backends[1].state, routing::AdminState::kDrain);
  EXPECT_EQ(t.spec.backends[1].max_connections, 5u);
  EXPECT_EQ(t.spec.backends[2].state, routing::AdminState::kDown);
  EXPECT_EQ(t.spec.backends[2].max_connections, 0u);
  EXPECT_EQ(t.spec.backends[3].state, routing::AdminState::kUp);
  EXPECT_EQ(t.spec.backends[3].max_connections, 1000000u);

  // The [[tenant.backends]] spelling.
  const TenantConfig u = Tenant(kNoBackends +
                                "[[tenant.backends]]\n"
                                "address = \"h:1\"\n"
                                "state = \"drain\"\n"
                                "max_connections = 100\n");
  ASSERT_EQ(u.spec.backends.size(), 1u);
  EXPECT_EQ(u.spec.backends[0].state, routing::AdminState::kDrain);
  EXPECT_EQ(u.spec.backends[0].max_connections, 100u);
}

TEST(FleetConfigTest, BackendStateAndMaxConnectionsErrors) {
  EXPECT_TRUE(FailsAt(kNoBackends +
                          "backends = [ { address = \"h:1\" },\n"
                          "  { address = \"h:2\", state = \"off\" } ]\n",
                      8, "'state' must be \"up\", \"drain\" or \"down\""));
  EXPECT_TRUE(FailsAt(kNoBackends + "[[tenant.backends]]\n"
                                    "address = \"h:1\"\n"
                                    "state = \"UP\"\n",
                      9, "'state' must be \"up\", \"drain\" or \"down\""));
  EXPECT_TRUE(
      FailsAt(kNoBackends + "backends = [ { address = \"h:1\", state = 1 } ]\n",
              7, "'state' must be a string"));
  EXPECT_TRUE(FailsAt(
      kNoBackends +
          "backends = [ { address = \"h:1\", max_connections = -1 } ]\n",
      7, "'max_connections' must be in 0..1000000"));
  EXPECT_TRUE(FailsAt(kNoBackends + "[[tenant.backends]]\n"
                                    "address = \"h:1\"\n"
                                    "max_connections = 1000001\n",
                      9, "'max_connections' must be in 0..1000000"));
  EXPECT_TRUE(FailsAt(
      kNoBackends +
          "backends = [ { address = \"h:1\", max_connections = \"5\" } ]\n",
      7, "'max_connections' must be an integer"));
  EXPECT_TRUE(FailsAt(
      kNoBackends + "backends = [ { address = \"h:1\", maxconn = 5 } ]\n", 7,
      "unknown key 'maxconn'"));
}

TEST(FleetConfigTest, MasterLoginSeparator) {
  const TenantConfig t = Tenant(kFileAuth +
                                "backend_login = \"master\"\n"
                                "master_user = \"popgate-master\"\n"
                                "master_password_file = \"secret/master\"\n");
  EXPECT_EQ(t.backend_login, BackendLoginMode::kMaster);
  EXPECT_EQ(t.master_user, "popgate-master");
  // Resolved against the config's directory, like passwd_file.
  EXPECT_EQ(t.master_password_file, "/etc/popgate/secret/master");
  EXPECT_EQ(t.master_password_file_line, 10u);
  EXPECT_EQ(t.master_login, MasterLoginMethod::kSeparator);
  EXPECT_EQ(t.master_separator, "*");

  const TenantConfig u = Tenant(kFileAuth +
                                "backend_login = \"master\"\n"
                                "master_user = \"m\"\n"
                                "master_password_file = \"/run/m.pw\"\n"
                                "master_login = \"separator\"\n"
                                "master_separator = \"%#\"\n");
  EXPECT_EQ(u.master_password_file, "/run/m.pw");
  EXPECT_EQ(u.master_login, MasterLoginMethod::kSeparator);
  EXPECT_EQ(u.master_separator, "%#");

  for (const char* sep : {"*", "!", "~~", "**", "/", "#!$%&*:;", "|"}) {
    EXPECT_EQ(Tenant(kFileAuth +
                     "backend_login = \"master\"\n"
                     "master_user = \"m\"\n"
                     "master_password_file = \"m.pw\"\n"
                     "master_separator = \"" +
                     sep + "\"\n")
                  .master_separator,
              sep);
  }
}

TEST(FleetConfigTest, MasterLoginSaslPlain) {
  const TenantConfig t = Tenant(kFileAuth +
                                "backend_login = \"master\"\n"
                                "master_user = \"m\"\n"
                                "master_password_file = \"m.pw\"\n"
                                "master_login = \"sasl-plain\"\n");
  EXPECT_EQ(t.backend_login, BackendLoginMode::kMaster);
  EXPECT_EQ(t.master_login, MasterLoginMethod::kSaslPlain);
  EXPECT_EQ(t.master_password_file, "/etc/popgate/m.pw");
}

TEST(FleetConfigTest, BackendLoginClientExplicit) {
  EXPECT_EQ(Tenant(kBackendAuth + "backend_login = \"client\"\n").backend_login,
            BackendLoginMode::kClient);
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"masteruser\"\n", 8,
                      "'backend_login' must be \"client\" or \"master\""));
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = 1\n", 8,
                      "'backend_login' must be a string"));
}

TEST(FleetConfigTest, MasterNeedsLocalAuth) {
  // The error is at backend_login and says why, and where auth was set.
  EXPECT_TRUE(FailsAt(kBackendAuth + "backend_login = \"master\"\n"
                                     "master_user = \"m\"\n"
                                     "master_password_file = \"m.pw\"\n",
                      8,
                      "backend_login = \"master\" needs auth = \"file\" "
                      "(tenant 't' has auth = \"backend\" on line 6): popgate "
                      "has to verify the user's password itself"));
}

TEST(FleetConfigTest, MasterRequiredKeys) {
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"master\"\n"
                                  "master_password_file = \"m.pw\"\n",
                      8, "no 'master_user'"));
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"master\"\n"
                                  "master_user = \"m\"\n",
                      8, "no 'master_password_file'"));
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"master\"\n"
                                  "master_user = \"m\"\n"
                                  "master_password_file = \"\"\n",
                      10, "'master_password_file' must be a path"));
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"master\"\n"
                                  "master_user = \"m\"\n"
                                  "master_password_file = 7\n",
                      10, "'master_password_file' must be a string"));
}

TEST(FleetConfigTest, BadMasterUser) {
  const std::string long_name(256, 'm');
  for (const std::string& user :
       {std::string(""), std::string("master user"), std::string("m\\tx"),
        std::string("m\\r\\nQUIT"), std::string("m\\u00e9"),
        std::string("m\\u007f"), long_name}) {
    EXPECT_TRUE(FailsAt(kFileAuth +
                            "backend_login = \"master\"\n"
                            "master_user = \"" +
                            user +
                            "\"\n"
                            "master_password_file = \"m.pw\"\n",
                        9,
                        "'master_user' must be 1..255 printable ASCII "
                        "characters without spaces"))
        << user;
  }
  EXPECT_EQ(Tenant(kFileAuth +
                   "backend_login = \"master\"\n"
                   "master_user = \"" +
                   std::string(255, 'm') +
                   "\"\n"
                   "master_password_file = \"m.pw\"\n")
                .master_user.size(),
            255u);
  EXPECT_TRUE(FailsAt(kFileAuth + "backend_login = \"master\"\n"
                                  "master_user = [\"m\"]\n"
                                  "master_password_file = \"m.pw\"\n",
                      9, "'master_user' must be a string"));
}

TEST(FleetConfigTest, BadMasterLoginAndSeparator) {
  const std::string head = kFileAuth +
                           "backend_login = \"master\"\n"
                           "master_user = \"m\"\n"
                           "master_password_file = \"m.pw\"\n";
  EXPECT_TRUE(FailsAt(head + "master_login = \"plain\"\n", 11,
                      "'master_login' must be \"separator\" or "
                      "\"sasl-plain\""));
  for (const char* sep : {"", "a", "Z", "0", ".", "_", "+", "=", "-", "@", " ",
                          "* ", "\\t", "*********", "\\u00a7", "x*"}) {
    EXPECT_TRUE(FailsAt(head + "master_separator = \"" + sep + "\"\n", 11,
                        "'master_separator' must be 1..8 printable ASCII "
                        "characters, none of them a space, a letter, a digit "
                        "or one of . _ + = - @"))
        << sep;
  }
  EXPECT_TRUE(FailsAt(head + "master_separator = 1\n", 11,
                      "'master_separator' must be a string"));
  // Only the separator method uses it.
  EXPECT_TRUE(FailsAt(head + "master_login = \"sasl-plain\"\n"
                             "master_separator = \"*\"\n",
                      12,
                      "'master_separator' is used only with master_login = "
                      "\"separator\" (tenant 't' has \"sasl-plain\" on line "
                      "11)"));
}

TEST(FleetConfigTest, MasterKeysRefusedWithClientLogin) {
  for (const char* line :
       {"master_user = \"m\"", "master_password_file = \"m.pw\"",
        "master_login = \"sasl-plain\"", "master_separator = \"*\""}) {
    const std::string key(line, std::string_view(line).find(' '));
    // backend_login absent (the default, "client") ...
    EXPECT_TRUE(FailsAt(kFileAuth + line + "\n", 8,
                        "'" + key +
                            "' is used only with backend_login = "
                            "\"master\""))
        << line;
    // ... or given.
    EXPECT_TRUE(
        FailsAt(kFileAuth + "backend_login = \"client\"\n" + line + "\n", 9,
                "'" + key +
                    "' is used only with backend_login = "
                    "\"master\""))
        << line;
  }
}

TEST(FleetConfigTest, Capabilities) {
  EXPECT_EQ(Tenant(kBackendAuth +
                   "capabilities = [\"TOP\", \"UIDL\", \"EXPIRE NEVER\",\n"
                   "  \"LOGIN-DELAY 900\", \"X-FOO a b=c\", \"RESP-CODES\"]\n")
                .capabilities,
            (std::vector<std::string>{"TOP", "UIDL", "EXPIRE NEVER",
                                      "LOGIN-DELAY 900", "X-FOO a b=c",
                                      "RESP-CODES"}));
  // An empty list offers nothing beyond what popgate decides itself.
  EXPECT_TRUE(
      Tenant(kBackendAuth + "capabilities = []\n").capabilities.empty());

  // 32 entries of up to 100 characters are fine; 33, or 101, are not.
  std::string many = "capabilities = [";
  for (int i = 0; i < 32; ++i) many += "\"X" + std::to_string(i) + "\", ";
  EXPECT_EQ(Tenant(kBackendAuth + many + "]\n").capabilities.size(), 32u);
  EXPECT_TRUE(FailsAt(kBackendAuth + many + "\"X32\"]\n", 8,
                      "'capabilities' has 33 entries; at most 32"));
  const std::string longest = "X-LONG " + std::string(93, 'a');
  ASSERT_EQ(longest.size(), 100u);
  EXPECT_EQ(Tenant(kBackendAuth + "capabilities = [\"" + longest + "\"]\n")
                .capabilities,
            std::vector<std::string>{longest});
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = [\"" + longest + "a\"]\n",
                      8, "at most 100 characters"));
}

TEST(FleetConfigTest, BadCapabilities) {
  for (const char* cap : {"", "top", "Top", "TOP ", " TOP", "EXPIRE  30",
                          "EXPIRE 30 ", "EXP_IRE", "EXPIRE\\t30", "X\\u00e9",
                          "EXPIRE 3\\u00e90", "X 1\\r\\n", "X\\u007f"}) {
    EXPECT_TRUE(FailsAt(
        kBackendAuth + "capabilities = [\"TOP\",\n  \"" + cap + "\"]\n", 9,
        "a capability is an upper-case keyword of [A-Z0-9-], "
        "optionally followed by one space and printable ASCII "
        "arguments"))
        << cap;
  }
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = \"TOP UIDL\"\n", 8,
                      "'capabilities' must be an array of strings"));
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = [\"TOP\", 1]\n", 8,
                      "must be a string"));
}

TEST(FleetConfigTest, CapabilitiesPopgateDecides) {
  for (const char* cap : {"USER", "SASL PLAIN", "STLS", "IMPLEMENTATION x"}) {
    const std::string keyword(
        cap, std::string_view(cap).find(' ') == std::string_view::npos
                 ? std::string_view(cap).size()
                 : std::string_view(cap).find(' '));
    EXPECT_TRUE(FailsAt(
        kBackendAuth + "capabilities = [\n\"TOP\", \"" + cap + "\"]\n", 9,
        "capability '" + keyword + "' cannot be configured: popgate "))
        << cap;
  }
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = [\"SASL\"]\n", 8,
                      "leave it out of 'capabilities'"));
}

TEST(FleetConfigTest, CapabilitiesDuplicateKeyword) {
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = [\"TOP\", \"EXPIRE 30\",\n"
                                     "  \"EXPIRE NEVER\"]\n",
                      9, "capability 'EXPIRE' listed twice (first on line 8)"));
  EXPECT_TRUE(FailsAt(kBackendAuth + "capabilities = [\"TOP\", \"TOP\"]\n", 8,
                      "capability 'TOP' listed twice"));
}

TEST(FleetConfigTest, HealthCheckTable) {
  const TenantConfig t = Tenant(kBackendAuth +
                                "[tenant.health_check]\n"
                                "interval = \"10s\"\n"
                                "timeout = \"1500ms\"\n"
                                "rise = 1\n"
                                "fall = 100\n"
                                "passive = false\n"
                                "capa = false\n"
                                "tls = false\n");
  const HealthCheckConfig& h = t.health_check;
  EXPECT_TRUE(h.active);  // the table's presence turns checks on
  EXPECT_FALSE(h.passive);
  EXPECT_EQ(h.interval, absl::Seconds(10));
  EXPECT_EQ(h.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(h.rise, 1);
  EXPECT_EQ(h.fall, 100);
  EXPECT_FALSE(h.capa);
  EXPECT_FALSE(h.tls);
  EXPECT_EQ(h.line, 8u);
}

TEST(FleetConfigTest, HealthCheckEmptyTableKeepsDefaults) {
  const HealthCheckConfig h =
      Tenant(kBackendAuth + "[tenant.health_check]\n").health_check;
  EXPECT_TRUE(h.active);
  EXPECT_TRUE(h.passive);
  EXPECT_EQ(h.interval, absl::Seconds(5));
  EXPECT_EQ(h.timeout, absl::Seconds(2));
  EXPECT_EQ(h.rise, 2);
  EXPECT_EQ(h.fall, 3);
  EXPECT_TRUE(h.capa);
  EXPECT_TRUE(h.tls);
  EXPECT_EQ(h.line, 8u);
}

TEST(FleetConfigTest, HealthCheckInlineAndActiveFalse) {
  const HealthCheckConfig h =
      Tenant(kBackendAuth +
             "\nhealth_check = { active = false, interval = 30, "
             "timeout = \"29s\" }\n")
          .health_check;
  EXPECT_FALSE(h.active);
  EXPECT_TRUE(h.passive);
  EXPECT_EQ(h.interval, absl::Seconds(30));
  EXPECT_EQ(h.timeout, absl::Seconds(29));
  EXPECT_EQ(h.line, 9u);
  EXPECT_TRUE(Tenant(kBackendAuth + "health_check = { active = true }\n")
                  .health_check.active);
}

TEST(FleetConfigTest, HealthCheckPerTenant) {
  absl::StatusOr<Config> config =
      Parse(kBackendAuth +
            "[tenant.health_check]\n"
            "fall = 5\n"
            "[[tenant]]\n"
            "name = \"u\"\n"
            "domains = [\"example.org\"]\n"
            "auth = \"backend\"\n"
            "failover = \"next\"\n"
            "backends = [ { address = \"127.0.0.1:11002\" } ]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->tenants.size(), 2u);
  EXPECT_TRUE(config->tenants[0].health_check.active);
  EXPECT_EQ(config->tenants[0].health_check.fall, 5);
  EXPECT_EQ(config->tenants[0].failover, Failover::kNone);
  EXPECT_FALSE(config->tenants[1].health_check.active);
  EXPECT_EQ(config->tenants[1].health_check.fall, 3);
  EXPECT_EQ(config->tenants[1].failover, Failover::kNext);
}

TEST(FleetConfigTest, HealthCheckErrors) {
  const std::string head = kBackendAuth + "[tenant.health_check]\n";
  EXPECT_TRUE(FailsAt(head + "rise = 2\nintervall = \"5s\"\n", 10,
                      "unknown key 'intervall' in health_check"));
  EXPECT_TRUE(FailsAt(head + "interval = \"500ms\"\n", 9,
                      "'interval' must be at least 1s"));
  EXPECT_TRUE(FailsAt(head + "interval = 0\n", 9, "'interval' must be > 0"));
  EXPECT_TRUE(
      FailsAt(head + "interval = \"5 s\"\n", 9, "'interval': bad duration"));
  EXPECT_TRUE(
      FailsAt(head + "interval = \"25h\"\n", 9, "'interval' must be at most"));
  // The default timeout (2s) does not fit in a 2s interval: the error is
  // at the interval and says to set the timeout.
  EXPECT_TRUE(FailsAt(head + "interval = \"2s\"\n", 9,
                      "'interval' (2s) must be longer than 'timeout' (2s, "
                      "the default): set a shorter 'timeout' too"));
  EXPECT_TRUE(Tenant(head + "interval = \"1s\"\ntimeout = \"999ms\"\n")
                  .health_check.active);
  EXPECT_TRUE(FailsAt(head + "timeout = \"5s\"\n", 9,
                      "'timeout' (5s) must be shorter than 'interval' (5s)"));
  EXPECT_TRUE(FailsAt(head + "interval = \"3s\"\ntimeout = \"4s\"\n", 10,
                      "'timeout' (4s) must be shorter than 'interval' (3s)"));
  EXPECT_TRUE(FailsAt(head + "timeout = \"0s\"\n", 9, "'timeout' must be > 0"));
  for (const char* line :
       {"rise = 0", "rise = 101", "fall = 0", "fall = -3", "fall = 101"}) {
    EXPECT_TRUE(FailsAt(head + line + "\n", 9, "must be in 1..100")) << line;
  }
  EXPECT_TRUE(FailsAt(head + "rise = \"2\"\n", 9, "'rise' must be an integer"));
  for (const char* key : {"active", "passive", "capa", "tls"}) {
    EXPECT_TRUE(FailsAt(head + key + " = \"yes\"\n", 9,
                        "'" + std::string(key) + "' must be a boolean"))
        << key;
  }
  EXPECT_TRUE(FailsAt(kBackendAuth + "health_check = true\n", 8,
                      "'health_check' must be a table"));
}

TEST(FleetConfigTest, UnknownTenantKeyStillRefused) {
  EXPECT_TRUE(FailsAt(kBackendAuth + "fail_over = \"next\"\n", 8,
                      "unknown key 'fail_over' in [[tenant]]"));
}

// The README's example pool, read from the README itself so the two cannot
// drift apart.
TEST(FleetConfigTest, ReadmeExamplePool) {
  std::ifstream in(POPGATE_README);
  ASSERT_TRUE(in) << POPGATE_README;
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const size_t intro = text.find("A pool of three Dovecot backends");
  ASSERT_NE(intro, std::string::npos);
  const size_t open = text.find("```toml\n", intro);
  ASSERT_NE(open, std::string::npos);
  const size_t begin = open + 8;
  const size_t close = text.find("```\n", begin);
  ASSERT_NE(close, std::string::npos);
  absl::StatusOr<Config> config =
      Parse("[[listener]]\naddress = \"0.0.0.0:110\"\n" +
            text.substr(begin, close - begin));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->tenants.size(), 1u);
  const TenantConfig& t = config->tenants[0];
  EXPECT_EQ(t.auth, AuthProvider::kFile);
  EXPECT_EQ(t.failover, Failover::kNext);
  EXPECT_EQ(t.client_identity, ClientIdentity::kXclient);
  EXPECT_EQ(t.backend_login, BackendLoginMode::kMaster);
  EXPECT_EQ(t.master_user, "popgate");
  EXPECT_EQ(t.master_password_file, "/etc/popgate/master.pw");
  EXPECT_EQ(t.master_login, MasterLoginMethod::kSeparator);
  EXPECT_EQ(t.capabilities.size(), 6u);
  ASSERT_EQ(t.spec.backends.size(), 3u);
  EXPECT_EQ(t.spec.backends[1].max_connections, 2000u);
  EXPECT_EQ(t.spec.backends[2].state, routing::AdminState::kDrain);
  EXPECT_TRUE(t.health_check.active);
  EXPECT_EQ(t.health_check.interval, absl::Seconds(5));
  EXPECT_EQ(t.health_check.fall, 3);
}

}  // namespace
}  // namespace popgate
