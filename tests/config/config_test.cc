#include "config/config.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "absl/time/time.h"
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

absl::StatusOr<Config> Parse(std::string_view text,
                             std::string_view base_dir = kBaseDir) {
  return ParseConfig(text, kName, base_dir);
}

// Checks that `text` is refused with "t.toml:<line>: ..." mentioning `what`.
testing::AssertionResult FailsAt(std::string_view text, int line,
                                 std::string_view what = "") {
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

TEST(ConfigTest, DemoConfigParses) {
  absl::StatusOr<Config> config = LoadConfig(POPGATE_DEMO_CONFIG);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->path, POPGATE_DEMO_CONFIG);
  EXPECT_EQ(config->server.workers, 2);
  EXPECT_EQ(config->server.auth_threads, 2);
  EXPECT_EQ(config->server.max_auth_failures, 3);
  EXPECT_EQ(config->server.preauth_idle_timeout, absl::Seconds(60));
  EXPECT_EQ(config->server.backend_timeout, absl::Seconds(10));
  EXPECT_EQ(config->server.auth_failure_delay, absl::Seconds(2));
  EXPECT_EQ(config->server.shutdown_grace, absl::Seconds(5));
  ASSERT_EQ(config->listeners.size(), 2u);
  EXPECT_EQ(config->listeners[0].address, "127.0.0.1:1110");
  EXPECT_EQ(config->listeners[0].default_tenant, "example-com");
  EXPECT_EQ(config->listeners[0].tls, ListenerTls::kStartTls);
  EXPECT_EQ(config->listeners[0].plaintext_auth, PlaintextAuth::kTrusted);
  EXPECT_EQ(config->listeners[1].address, "127.0.0.1:1995");
  EXPECT_EQ(config->listeners[1].tls, ListenerTls::kImplicit);
  ASSERT_EQ(config->listeners[1].certificates.size(), 2u);
  EXPECT_EQ(config->listeners[1].certificates[0].cert,
            std::string(POPGATE_DEMO_DIR) + "/demo/tls/ecdsa.pem");
  EXPECT_TRUE(config->tls.session_tickets);
  ASSERT_EQ(config->tenants.size(), 2u);
  const TenantConfig& com = config->tenants[0];
  EXPECT_EQ(com.spec.name, "example-com");
  EXPECT_EQ(com.spec.domains, std::vector<std::string>{"example.com"});
  EXPECT_EQ(com.spec.username_mode, routing::UsernameMode::kFull);
  EXPECT_EQ(com.auth, AuthProvider::kFile);
  EXPECT_EQ(com.passwd_file,
            std::string(POPGATE_DEMO_DIR) + "/demo/example.com.passwd");
  ASSERT_EQ(com.spec.backends.size(), 1u);
  EXPECT_EQ(com.spec.backends[0].address, "127.0.0.1:11001");
  EXPECT_EQ(com.spec.backends[0].weight, 1u);
  EXPECT_EQ(config->tenants[1].spec.name, "example-org");
  EXPECT_EQ(config->tenants[1].passwd_file,
            std::string(POPGATE_DEMO_DIR) + "/demo/example.org.passwd");
  // The proxy builds its routing table from these specs.
  std::vector<routing::TenantSpec> specs;
  for (const TenantConfig& t : config->tenants) specs.push_back(t.spec);
  EXPECT_TRUE(routing::RoutingTable::Build(specs).ok());
}

TEST(ConfigTest, DefaultsWhenServerMissing) {
  absl::StatusOr<Config> config = Parse(kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->path, kName);
  const ServerConfig& s = config->server;
  EXPECT_EQ(s.workers, 0);
  EXPECT_EQ(s.auth_threads, 2);
  EXPECT_EQ(s.max_auth_failures, 3);
  EXPECT_EQ(s.preauth_idle_timeout, absl::Seconds(60));
  EXPECT_EQ(s.backend_timeout, absl::Seconds(10));
  EXPECT_EQ(s.auth_failure_delay, absl::Seconds(2));
  EXPECT_EQ(s.shutdown_grace, absl::Seconds(30));
  EXPECT_EQ(s.greeting, "popgate ready.");
  EXPECT_EQ(config->listeners[0].default_tenant, "");
  const TenantConfig& t = config->tenants[0];
  EXPECT_EQ(t.auth, AuthProvider::kBackend);
  EXPECT_EQ(t.passwd_file, "");
  EXPECT_EQ(t.spec.username_mode, routing::UsernameMode::kFull);
  EXPECT_EQ(t.spec.backends[0].weight, 1u);
}

TEST(ConfigTest, EmptyServerTableKeepsDefaults) {
  absl::StatusOr<Config> config = Parse("[server]\n" + kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.auth_threads, 2);
}

TEST(ConfigTest, AllServerSettings) {
  absl::StatusOr<Config> config = Parse(
      "[server]\n"
      "workers = 4\n"
      "auth_threads = 256\n"
      "max_auth_failures = 100\n"
      "preauth_idle_timeout = \"500ms\"\n"
      "backend_timeout = 7\n"  // an integer is seconds
      "auth_failure_delay = \"0s\"\n"
      "shutdown_grace = \"1m30s\"\n"
      "greeting = \"Mail ready, say hi.\"\n" +
      kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerConfig& s = config->server;
  EXPECT_EQ(s.workers, 4);
  EXPECT_EQ(s.auth_threads, 256);
  EXPECT_EQ(s.max_auth_failures, 100);
  EXPECT_EQ(s.preauth_idle_timeout, absl::Milliseconds(500));
  EXPECT_EQ(s.backend_timeout, absl::Seconds(7));
  EXPECT_EQ(s.auth_failure_delay, absl::ZeroDuration());
  EXPECT_EQ(s.shutdown_grace, absl::Seconds(90));
  EXPECT_EQ(s.greeting, "Mail ready, say hi.");
}

TEST(ConfigTest, DurationUnits) {
  for (auto [text, want] : {std::pair{"\"5m\"", absl::Minutes(5)},
                            {"\"1h\"", absl::Hours(1)},
                            {"\"10s\"", absl::Seconds(10)},
                            {"\"24h\"", absl::Hours(24)},
                            {"0", absl::ZeroDuration()}}) {
    absl::StatusOr<Config> config =
        Parse(std::string("[server]\nshutdown_grace = ") + text + "\n" +
              kListener + kTenant);
    ASSERT_TRUE(config.ok()) << text << ": " << config.status();
    EXPECT_EQ(config->server.shutdown_grace, want) << text;
  }
}

TEST(ConfigTest, UnknownKeys) {
  EXPECT_TRUE(FailsAt("foo = 1\n" + kListener + kTenant, 1, "'foo'"));
  EXPECT_TRUE(FailsAt("[servr]\n" + kListener + kTenant, 1, "'servr'"));
  EXPECT_TRUE(
      FailsAt("[server]\nworkers = 1\nwrokers = 2\n" + kListener + kTenant, 3,
              "'wrokers'"));
  EXPECT_TRUE(FailsAt(kListener + "defualt_tenant = \"t\"\n" + kTenant, 3,
                      "'defualt_tenant'"));
  EXPECT_TRUE(FailsAt(kListener + kTenant + "passwd = \"x\"\n", 8, "'passwd'"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = [ { address = \"h:1\" },\n"
                                  "  { address = \"h:2\", wieght = 2 } ]\n",
                      8, "'wieght'"));
  // Array-of-tables spelling of the backends.
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "[[tenant.backends]]\n"
                                  "address = \"h:1\"\n"
                                  "tls = true\n",
                      9, "'tls'"));
}

TEST(ConfigTest, BackendsAsArrayOfTables) {
  absl::StatusOr<Config> config = Parse(kListener +
                                        "[[tenant]]\n"
                                        "name = \"t\"\n"
                                        "domains = [\"example.com\"]\n"
                                        "auth = \"backend\"\n"
                                        "[[tenant.backends]]\n"
                                        "address = \"h:1\"\n"
                                        "[[tenant.backends]]\n"
                                        "address = \"h:2\"\n"
                                        "weight = 3\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->tenants[0].spec.backends.size(), 2u);
  EXPECT_EQ(config->tenants[0].spec.backends[1].address, "h:2");
  EXPECT_EQ(config->tenants[0].spec.backends[1].weight, 3u);
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_TRUE(FailsAt("[server]\nworkers = \"2\"\n" + kListener + kTenant, 2,
                      "'workers' must be an integer, not a string"));
  EXPECT_TRUE(FailsAt("[server]\nauth_threads = 1.5\n" + kListener + kTenant, 2,
                      "'auth_threads'"));
  EXPECT_TRUE(
      FailsAt("[server]\nmax_auth_failures = true\n" + kListener + kTenant, 2,
              "'max_auth_failures'"));
  EXPECT_TRUE(FailsAt("[server]\ngreeting = 5\n" + kListener + kTenant, 2,
                      "'greeting' must be a string"));
  EXPECT_TRUE(FailsAt("server = 1\n" + kListener + kTenant, 1,
                      "'server' must be a table"));
  EXPECT_TRUE(FailsAt("listener = 1\n" + kTenant, 1, "'listener'"));
  EXPECT_TRUE(FailsAt("listener = [1]\n" + kTenant, 1, "'listener'"));
  EXPECT_TRUE(FailsAt(kTenant + "[[listener]]\n"
                                "address = 1110\n",
                      7, "'address' must be a string"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = \"example.com\"\n",
                      5, "'domains' must be an array"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\",\n"
                                  "           42]\n",
                      6, "must be a string"));
  EXPECT_TRUE(FailsAt(
      kListener + "[[tenant]]\n"
                  "name = \"t\"\n"
                  "auth = \"backend\"\n"
                  "domains = [\"example.com\"]\n"
                  "backends = [ { address = \"h:1\", weight = \"2\" } ]\n",
      7, "'weight' must be an integer"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "auth = \"backend\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "backends = [ \"h:1\" ]\n",
                      7, "must be tables"));
  EXPECT_TRUE(FailsAt(kListener + "[tenant]\nname = \"t\"\n", 3,
                      "'tenant' must be an array of tables"));
}

TEST(ConfigTest, OutOfRange) {
  for (const char* line : {"workers = -1", "workers = 1025", "auth_threads = 0",
                           "auth_threads = 257", "max_auth_failures = 0",
                           "max_auth_failures = 101"}) {
    EXPECT_TRUE(
        FailsAt("\n[server]\n" + std::string(line) + "\n" + kListener + kTenant,
                3, "must be in"))
        << line;
  }
  EXPECT_TRUE(FailsAt(kListener +
                          "[[tenant]]\n"
                          "name = \"t\"\n"
                          "auth = \"backend\"\n"
                          "domains = [\"example.com\"]\n"
                          "backends = [ { address = \"h:1\", weight = 0 } ]\n",
                      7, "'weight' must be in 1..1000"));
  EXPECT_TRUE(FailsAt(
      kListener + "[[tenant]]\n"
                  "name = \"t\"\n"
                  "auth = \"backend\"\n"
                  "domains = [\"example.com\"]\n"
                  "backends = [ { address = \"h:1\", weight = 1001 } ]\n",
      7, "'weight' must be in 1..1000"));
}

TEST(ConfigTest, BadDurations) {
  for (const char* value : {"\"10\"", "\"-1s\"", "\"+1s\"", "\"abc\"",
                            "\"inf\"", "\"\"", "\"10 s\"", "\"1d\""}) {
    EXPECT_TRUE(FailsAt("[server]\nworkers = 1\nbackend_timeout = " +
                            std::string(value) + "\n" + kListener + kTenant,
                        3, "bad duration"))
        << value;
  }
  EXPECT_TRUE(
      FailsAt("[server]\nbackend_timeout = \"0s\"\n" + kListener + kTenant, 2,
              "must be > 0"));
  EXPECT_TRUE(
      FailsAt("[server]\npreauth_idle_timeout = 0\n" + kListener + kTenant, 2,
              "must be > 0"));
  EXPECT_TRUE(FailsAt("[server]\nshutdown_grace = -5\n" + kListener + kTenant,
                      2, "'shutdown_grace'"));
  EXPECT_TRUE(
      FailsAt("[server]\nshutdown_grace = \"25h\"\n" + kListener + kTenant, 2,
              "at most"));
  EXPECT_TRUE(FailsAt("[server]\nshutdown_grace = 1.5\n" + kListener + kTenant,
                      2, "duration"));
}

TEST(ConfigTest, MissingListener) {
  EXPECT_TRUE(FailsAt("[server]\nworkers = 1\n" + kTenant, 1,
                      "at least one [[listener]]"));
  EXPECT_TRUE(
      FailsAt("\n\nlistener = []\n" + kTenant, 3, "at least one [[listener]]"));
}

TEST(ConfigTest, MissingTenant) {
  EXPECT_TRUE(FailsAt(kListener, 1, "at least one [[tenant]]"));
  EXPECT_TRUE(
      FailsAt("tenant = []\n" + kListener, 1, "at least one [[tenant]]"));
}

TEST(ConfigTest, ListenerWithoutAddress) {
  EXPECT_TRUE(FailsAt(kTenant + "[[listener]]\ndefault_tenant = \"t\"\n", 6,
                      "without 'address'"));
}

TEST(ConfigTest, DefaultTenantMustExist) {
  EXPECT_TRUE(FailsAt(kListener + "default_tenant = \"nope\"\n" + kTenant, 3,
                      "default_tenant 'nope' is not a defined tenant"));
  absl::StatusOr<Config> config =
      Parse(kListener + "default_tenant = \"t\"\n" + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listeners[0].default_tenant, "t");
}

TEST(ConfigTest, DuplicateDomain) {
  const std::string second =
      "[[tenant]]\n"                   // 8
      "name = \"u\"\n"                 // 9
      "domains = [\"example.org\",\n"  // 10
      "           \"EXAMPLE.com\"]\n"  // 11
      "auth = \"backend\"\n"
      "backends = [ { address = \"127.0.0.1:11002\" } ]\n";
  EXPECT_TRUE(FailsAt(kListener + kTenant + second, 11,
                      "domain 'example.com' already belongs to tenant 't'"));
}

TEST(ConfigTest, DuplicateTenantName) {
  EXPECT_TRUE(FailsAt(kListener + kTenant +
                          "[[tenant]]\n"
                          "name = \"t\"\n",
                      9, "duplicate tenant name 't'"));
}

TEST(ConfigTest, BadTenantName) {
  for (const char* name : {"\"Upper\"", "\"a b\"", "\"\"", "\"a/b\""}) {
    EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\nname = " + name + "\n", 4,
                        "tenant name"))
        << name;
  }
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\nauth = \"backend\"\n", 3,
                      "without 'name'"));
}

TEST(ConfigTest, BadDomains) {
  for (const char* domain :
       {"\"\"", "\"a..b\"", "\".a\"", "\"a.\"", "\"exa mple.com\"",
        "\"-a.com\"", "\"a@b.com\"", "\"\\u00e9.com\""}) {
    EXPECT_TRUE(FailsAt(kListener +
                            "[[tenant]]\n"
                            "name = \"t\"\n"
                            "domains = [" +
                            std::string(domain) + "]\n",
                        5, "invalid domain"))
        << domain;
  }
}

TEST(ConfigTest, DomainsAreLowercased) {
  absl::StatusOr<Config> config = Parse(kListener +
                                        "[[tenant]]\n"
                                        "name = \"t\"\n"
                                        "domains = [\"Example.COM\"]\n"
                                        "auth = \"backend\"\n"
                                        "backends = [{ address = \"h:1\" }]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tenants[0].spec.domains[0], "example.com");
}

TEST(ConfigTest, TenantWithoutDomainsMustBeADefault) {
  const std::string tenant =
      "[[tenant]]\n"
      "name = \"local\"\n"
      "domains = []\n"
      "auth = \"backend\"\n"
      "backends = [{ address = \"h:1\" }]\n";
  EXPECT_TRUE(FailsAt(kListener + tenant, 5, "no domains"));
  // Without a domains key the tenant's own line is the best place.
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"local\"\n"
                                  "auth = \"backend\"\n"
                                  "backends = [{ address = \"h:1\" }]\n",
                      3, "no domains"));
  absl::StatusOr<Config> config =
      Parse(kListener + "default_tenant = \"local\"\n" + tenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tenants[0].spec.domains.empty());
}

TEST(ConfigTest, BadAddresses) {
  for (const char* address : {"127.0.0.1:0", "127.0.0.1", "127.0.0.1:65536",
                              "::1:110", "host name:110", ":110", "[::1]"}) {
    EXPECT_TRUE(FailsAt(
        kTenant + "[[listener]]\naddress = \"" + std::string(address) + "\"\n",
        7, "address"))
        << address;
  }
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = [\n"
                                  "  { address = \"10.0.0.1:110\" },\n"
                                  "  { address = \"10.0.0.2\" },\n"
                                  "]\n",
                      9, "'10.0.0.2'"));
}

TEST(ConfigTest, DuplicateListenerAddress) {
  EXPECT_TRUE(FailsAt(kListener + kListener + kTenant, 4, "used twice"));
}

TEST(ConfigTest, BackendsRequiredAndUnique) {
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n",
                      3, "no 'backends'"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = []\n",
                      7, "at least one backend"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = [{ address = \"h:1\" },\n"
                                  "            { address = \"h:1\" }]\n",
                      8, "listed twice"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = [{ weight = 2 }]\n",
                      7, "missing 'address'"));
}

TEST(ConfigTest, PasswdFileRequiredWithAuthFile) {
  // auth defaults to "file".
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "backends = [{ address = \"h:1\" }]\n",
                      3, "no 'passwd_file'"));
  EXPECT_TRUE(FailsAt(kListener + "\n"
                                  "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "auth = \"file\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "backends = [{ address = \"h:1\" }]\n",
                      4, "no 'passwd_file'"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "passwd_file = \"\"\n"
                                  "backends = [{ address = \"h:1\" }]\n",
                      6, "'passwd_file'"));
}

TEST(ConfigTest, PasswdFileRefusedWithAuthBackend) {
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "passwd_file = \"x.passwd\"\n"
                                  "backends = [{ address = \"h:1\" }]\n",
                      7, "only used with auth = \"file\""));
}

TEST(ConfigTest, BadEnums) {
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "username = \"strip\"\n",
                      5, "'username'"));
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "auth = \"http\"\n",
                      5, "'auth'"));
}

TEST(ConfigTest, UsernameStripDomain) {
  absl::StatusOr<Config> config = Parse(kListener +
                                        "[[tenant]]\n"
                                        "name = \"t\"\n"
                                        "domains = [\"example.com\"]\n"
                                        "username = \"strip-domain\"\n"
                                        "auth = \"backend\"\n"
                                        "backends = [{ address = \"h:1\" }]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tenants[0].spec.username_mode,
            routing::UsernameMode::kStripDomain);
}

std::string TenantWithPasswd(std::string_view file) {
  return kListener +
         "[[tenant]]\n"
         "name = \"t\"\n"
         "domains = [\"example.com\"]\n"
         "passwd_file = \"" +
         std::string(file) +
         "\"\n"
         "backends = [{ address = \"h:1\" }]\n";
}

TEST(ConfigTest, RelativePathsResolveAgainstBaseDir) {
  for (auto [file, want] :
       {std::pair{"demo/x.passwd", "/etc/popgate/demo/x.passwd"},
        {"x.passwd", "/etc/popgate/x.passwd"},
        {"./a/../x.passwd", "/etc/popgate/x.passwd"},
        {"../x.passwd", "/etc/x.passwd"},
        {"/var/lib/x.passwd", "/var/lib/x.passwd"}}) {
    absl::StatusOr<Config> config = Parse(TenantWithPasswd(file));
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->tenants[0].passwd_file, want) << file;
  }
}

TEST(ConfigTest, GreetingRefusesLineBreaks) {
  EXPECT_TRUE(FailsAt(
      "[server]\ngreeting = \"hi\\r\\n+OK forged\"\n" + kListener + kTenant, 2,
      "'greeting'"));
  EXPECT_TRUE(
      FailsAt("[server]\ngreeting = \"a\\u0000b\"\n" + kListener + kTenant, 2,
              "'greeting'"));
  EXPECT_TRUE(FailsAt("[server]\ngreeting = \"" + std::string(401, 'x') +
                          "\"\n" + kListener + kTenant,
                      2, "'greeting'"));
}

TEST(ConfigTest, TomlSyntaxErrors) {
  EXPECT_TRUE(FailsAt("[server]\nworkers = = 2\n" + kListener + kTenant, 2));
  EXPECT_TRUE(FailsAt(
      "[server]\n\ngreeting = \"unterminated\n" + kListener + kTenant, 3));
  // A key given twice is a TOML error, reported at the second one.
  EXPECT_TRUE(
      FailsAt("[server]\nworkers = 1\nworkers = 2\n" + kListener + kTenant, 3));
}

TEST(ConfigTest, KeysAreEscapedInErrors) {
  absl::StatusOr<Config> config =
      Parse("\"a\\u001b[31m\" = 1\n" + kListener + kTenant);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(std::string(config.status().message()).find('\x1b'),
            std::string::npos)
      << config.status();
}

class LoadConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(testing::TempDir()) /
           ("popgate_config_test." + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(std::string_view name, std::string_view text) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::filesystem::path dir_;
};

TEST_F(LoadConfigTest, ResolvesRelativeToTheFile) {
  const std::string path =
      Write("popgate.toml", TenantWithPasswd("users.passwd"));
  absl::StatusOr<Config> config = LoadConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->path, path);
  EXPECT_EQ(config->tenants[0].passwd_file, (dir_ / "users.passwd").string());
}

TEST_F(LoadConfigTest, ErrorsNameTheFile) {
  const std::string path = Write("bad.toml", "[server]\nworkers = \"x\"\n");
  absl::StatusOr<Config> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(std::string(config.status().message()).rfind(path + ":2: ", 0), 0u)
      << config.status();
}

TEST_F(LoadConfigTest, UnreadableFile) {
  const std::string missing = (dir_ / "missing.toml").string();
  absl::StatusOr<Config> config = LoadConfig(missing);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find(missing),
            std::string::npos)
      << config.status();

  config = LoadConfig(dir_.string());
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message()).find(dir_.string()),
            std::string::npos)
      << config.status();
}

class ValidateHostPortTest
    : public testing::TestWithParam<std::pair<const char*, bool>> {};

TEST_P(ValidateHostPortTest, Validates) {
  const auto [address, ok] = GetParam();
  EXPECT_EQ(ValidateHostPort(address).ok(), ok) << address;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateHostPortTest,
    testing::Values(
        std::pair{"127.0.0.1:110", true}, std::pair{"0.0.0.0:995", true},
        std::pair{"[::1]:995", true}, std::pair{"[2001:db8::1]:1", true},
        std::pair{"[::ffff:10.0.0.1]:110", true},
        std::pair{"mail.example.com:110", true},
        std::pair{"localhost:65535", true}, std::pair{"", false},
        std::pair{":110", false}, std::pair{"127.0.0.1", false},
        std::pair{"127.0.0.1:", false}, std::pair{"127.0.0.1:0", false},
        std::pair{"127.0.0.1:00000", false},
        std::pair{"127.0.0.1:65536", false},
        std::pair{"127.0.0.1:999999", false},
        std::pair{"127.0.0.1:+110", false}, std::pair{"127.0.0.1:-1", false},
        std::pair{"127.0.0.1:11 0", false}, std::pair{"::1:110", false},
        std::pair{"[::1]", false}, std::pair{"[::1]110", false},
        std::pair{"[]:110", false}, std::pair{"[::1]:0", false},
        std::pair{"[example.com]:110", false},
        std::pair{"host name:110", false}, std::pair{" host:110", false},
        std::pair{"host\n:110", false}));

}  // namespace
}  // namespace popgate

namespace popgate {
namespace {

const std::string kTlsListener =
    "[[listener]]\n"
    "address = \"127.0.0.1:1995\"\n"
    "tls = \"implicit\"\n"
    "certificates = [ { cert = \"c.pem\", key = \"c.key\" } ]\n";

TEST(TlsConfigTest, DefaultsWithoutTlsTable) {
  absl::StatusOr<Config> config = Parse(kListener + kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->tls.session_tickets);
  EXPECT_EQ(config->tls.handshake_timeout, absl::Seconds(10));
  EXPECT_EQ(config->tls.trusted_networks,
            (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(config->listeners[0].tls, ListenerTls::kNone);
  EXPECT_EQ(config->listeners[0].plaintext_auth, PlaintextAuth::kTrusted);
  // SNI names default to the domains and their subdomains.
  EXPECT_EQ(config->tenants[0].sni_names,
            (std::vector<std::string>{"example.com", "*.example.com"}));
  EXPECT_EQ(config->tenants[0].backend_tls.mode, BackendTls::kNone);
}

TEST(TlsConfigTest, AllTlsSettings) {
  absl::StatusOr<Config> config = Parse(
      "[tls]\n"
      "session_tickets = false\n"
      "ticket_key_rotation = \"1h\"\n"
      "ticket_key_file = \"keys/ticket.key\"\n"
      "handshake_timeout = \"3s\"\n"
      "trusted_networks = [\"10.0.0.0/8\"]\n"
      "ktls = false\n" +
      kTlsListener + "plaintext_auth = \"never\"\n" +
      "[[tenant]]\n"
      "name = \"t\"\n"
      "domains = [\"example.com\"]\n"
      "auth = \"backend\"\n"
      "sni_names = [\"pop.example.com\", \"*.Mail.Example.com\"]\n"
      "certificates = [ { cert = \"t.pem\", key = \"t.key\" } ]\n"
      "backend_tls = { mode = \"starttls\", verify = false, ca_file = "
      "\"ca.pem\", name = \"mx.example.net\", client_cert = \"cc.pem\", "
      "client_key = \"cc.key\" }\n"
      "backends = [ { address = \"127.0.0.1:11001\" } ]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->tls.session_tickets);
  EXPECT_EQ(config->tls.ticket_key_rotation, absl::Hours(1));
  EXPECT_EQ(config->tls.ticket_key_file,
            std::string(kBaseDir) + "/keys/ticket.key");
  EXPECT_EQ(config->tls.handshake_timeout, absl::Seconds(3));
  EXPECT_EQ(config->tls.trusted_networks,
            std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_FALSE(config->tls.ktls);
  const ListenerConfig& l = config->listeners[0];
  EXPECT_EQ(l.tls, ListenerTls::kImplicit);
  EXPECT_EQ(l.plaintext_auth, PlaintextAuth::kNever);
  ASSERT_EQ(l.certificates.size(), 1u);
  EXPECT_EQ(l.certificates[0].cert, std::string(kBaseDir) + "/c.pem");
  const TenantConfig& t = config->tenants[0];
  EXPECT_EQ(t.sni_names, (std::vector<std::string>{"pop.example.com",
                                                   "*.mail.example.com"}));
  ASSERT_EQ(t.certificates.size(), 1u);
  EXPECT_EQ(t.backend_tls.mode, BackendTls::kStartTls);
  EXPECT_FALSE(t.backend_tls.verify);
  EXPECT_EQ(t.backend_tls.ca_file, std::string(kBaseDir) + "/ca.pem");
  EXPECT_EQ(t.backend_tls.name, "mx.example.net");
  EXPECT_EQ(t.backend_tls.client_cert.cert, std::string(kBaseDir) + "/cc.pem");
  EXPECT_EQ(t.backend_tls.client_cert.key, std::string(kBaseDir) + "/cc.key");
}

TEST(TlsConfigTest, Errors) {
  EXPECT_TRUE(FailsAt("[tls]\nticketz = 1\n" + kListener + kTenant, 2,
                      "'ticketz'"));
  EXPECT_TRUE(FailsAt("[tls]\ntrusted_networks = [\"10.0.0.0/33\"]\n" +
                          kListener + kTenant,
                      2, "bad network"));
  EXPECT_TRUE(FailsAt("[tls]\nsession_tickets = \"yes\"\n" + kListener +
                          kTenant,
                      2, "boolean"));
  // A TLS listener without certificates has nothing to serve.
  EXPECT_TRUE(FailsAt("[[listener]]\naddress = \"127.0.0.1:995\"\n"
                      "tls = \"implicit\"\n" +
                          kTenant,
                      1, "certificates"));
  EXPECT_TRUE(FailsAt(kListener + "tls = \"ssl\"\n" + kTenant, 3, "'tls'"));
  EXPECT_TRUE(FailsAt(kListener + "plaintext_auth = \"sometimes\"\n" + kTenant,
                      3, "plaintext_auth"));
  EXPECT_TRUE(FailsAt("[[listener]]\naddress = \"127.0.0.1:995\"\n"
                      "tls = \"implicit\"\n"
                      "certificates = [ { cert = \"c.pem\" } ]\n" +
                          kTenant,
                      4, "'cert' and 'key'"));
  EXPECT_TRUE(FailsAt(kListener + kTenant +
                          "backend_tls = { mode = \"tls\" }\n",
                      8, "mode"));
  EXPECT_TRUE(FailsAt(kListener + kTenant +
                          "backend_tls = { mode = \"implicit\", verfy = true }\n",
                      8, "'verfy'"));
  EXPECT_TRUE(FailsAt(kListener + kTenant +
                          "backend_tls = { mode = \"implicit\", client_cert = "
                          "\"c.pem\" }\n",
                      8, "client_key"));
  EXPECT_TRUE(FailsAt(kListener + kTenant + "sni_names = [\"bad name\"]\n", 8,
                      "TLS name"));
}

}  // namespace
}  // namespace popgate
