// Issue 10's settings: [limits], [server] proxy_protocol_timeout, a
// listener's proxy_protocol / proxy_trusted_networks, and a tenant's
// max_sessions and auth cache. Defaults, each key, each error at its line.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

constexpr std::string_view kName = "t.toml";
constexpr std::string_view kBaseDir = "/etc/popgate";

// Lines 1..7: a listener and a file-auth tenant; a [limits] table given
// after it starts on line 8.
const std::string kBase =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n"
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "passwd_file = \"users.passwd\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";
// Lines 1..5 are the tenant (auth = "file"); what follows is still in it,
// from line 6. The listener comes after, so tests add their own keys.
const std::string kTenantFirst =
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "passwd_file = \"users.passwd\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";
// The same with auth = "backend": what follows starts on line 6.
const std::string kBackendTenant =
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "auth = \"backend\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";

absl::StatusOr<Config> Parse(std::string_view text) {
  return ParseConfig(text, kName, kBaseDir);
}

Config MustParse(const std::string& text) {
  absl::StatusOr<Config> config = Parse(text);
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << text;
  return config.ok() ? *config : Config{};
}

LimitsConfig Limits(const std::string& table_body) {
  return MustParse(kBase + "[limits]\n" + table_body).limits;
}

// `text` is refused with "t.toml:<line>: ..." mentioning `what`.
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

// [limits] key = value on line 9 of the file.
testing::AssertionResult LimitFailsAt9(const std::string& line,
                                       std::string_view what) {
  return FailsAt(kBase + "[limits]\n" + line + "\n", 9, what);
}

TEST(LimitsConfigTest, DefaultsWithoutTable) {
  const Config c = MustParse(kBase);
  const LimitsConfig& l = c.limits;
  EXPECT_FALSE(l.redis);
  EXPECT_EQ(l.redis_address, "");
  EXPECT_EQ(l.redis_password_file, "");
  EXPECT_EQ(l.redis_db, 0);
  EXPECT_EQ(l.redis_prefix, "popgate:");
  EXPECT_EQ(l.redis_timeout, absl::Milliseconds(250));
  EXPECT_EQ(l.redis_down, StoreDownPolicy::kFailOpen);
  EXPECT_EQ(l.ipv4_prefix, 32);
  EXPECT_EQ(l.ipv6_prefix, 64);
  EXPECT_EQ(l.exempt_networks,
            (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(l.max_connections, 20000);
  EXPECT_EQ(l.max_connections_per_address, 50);
  EXPECT_EQ(l.max_prelogin_per_address, 10);
  EXPECT_EQ(l.max_new_connections_per_address, 20);
  EXPECT_EQ(l.max_sessions_per_user, 10);
  EXPECT_EQ(l.failure_window, absl::Minutes(15));
  EXPECT_EQ(l.max_failure_delay, absl::Seconds(30));
  EXPECT_EQ(l.address_failures_to_block, 20);
  EXPECT_EQ(l.user_failures_to_block, 10);
  EXPECT_EQ(l.address_users_to_block, 5);
  EXPECT_EQ(l.block_time, absl::Minutes(15));
  EXPECT_EQ(l.refusal_delay, absl::Seconds(1));
  EXPECT_EQ(l.max_refusals_held, 1000);
  EXPECT_EQ(c.server.proxy_protocol_timeout, absl::Seconds(5));
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_FALSE(c.listeners[0].proxy_protocol);
  EXPECT_TRUE(c.listeners[0].proxy_trusted_networks.empty());
  ASSERT_EQ(c.tenants.size(), 1u);
  EXPECT_EQ(c.tenants[0].max_sessions, 0);
  EXPECT_EQ(c.tenants[0].auth_cache_size, 10000);
  EXPECT_EQ(c.tenants[0].auth_cache_ttl, absl::Minutes(5));
  EXPECT_EQ(c.tenants[0].auth_cache_negative_ttl, absl::Seconds(60));
}

TEST(LimitsConfigTest, EmptyTableKeepsDefaults) {
  const LimitsConfig l = Limits("");
  EXPECT_FALSE(l.redis);
  EXPECT_EQ(l.max_connections, 20000);
  EXPECT_EQ(l.exempt_networks.size(), 2u);
  EXPECT_EQ(l.line, 8u);
}

TEST(LimitsConfigTest, EveryLocalKey) {
  const LimitsConfig l = Limits(
      "store = \"local\"\n"
      "ipv4_prefix = 24\n"
      "ipv6_prefix = 48\n"
      "exempt_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"
      "max_connections = 100\n"
      "max_connections_per_address = 7\n"
      "max_prelogin_per_address = 3\n"
      "max_new_connections_per_address = 5\n"
      "max_sessions_per_user = 2\n"
      "failure_window = \"10m\"\n"
      "max_failure_delay = \"8s\"\n"
      "address_failures_to_block = 30\n"
      "user_failures_to_block = 12\n"
      "address_users_to_block = 4\n"
      "block_time = \"1h\"\n"
      "refusal_delay = \"250ms\"\n"
      "max_refusals_held = 50\n");
  EXPECT_FALSE(l.redis);
  EXPECT_EQ(l.store_line, 9u);
  EXPECT_EQ(l.ipv4_prefix, 24);
  EXPECT_EQ(l.ipv6_prefix, 48);
  EXPECT_EQ(l.exempt_networks,
            (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"}));
  EXPECT_EQ(l.max_connections, 100);
  EXPECT_EQ(l.max_connections_per_address, 7);
  EXPECT_EQ(l.max_prelogin_per_address, 3);
  EXPECT_EQ(l.max_new_connections_per_address, 5);
  EXPECT_EQ(l.max_sessions_per_user, 2);
  EXPECT_EQ(l.failure_window, absl::Minutes(10));
  EXPECT_EQ(l.max_failure_delay, absl::Seconds(8));
  EXPECT_EQ(l.address_failures_to_block, 30);
  EXPECT_EQ(l.user_failures_to_block, 12);
  EXPECT_EQ(l.address_users_to_block, 4);
  EXPECT_EQ(l.block_time, absl::Hours(1));
  EXPECT_EQ(l.refusal_delay, absl::Milliseconds(250));
  EXPECT_EQ(l.max_refusals_held, 50);
  // 0: refusals answered at once.
  EXPECT_EQ(Limits("refusal_delay = \"0s\"\n").refusal_delay,
            absl::ZeroDuration());
}

TEST(LimitsConfigTest, ZerosMeanNoLimit) {
  const LimitsConfig l = Limits(
      "ipv4_prefix = 0\n"
      "ipv6_prefix = 0\n"
      "exempt_networks = []\n"
      "max_connections = 0\n"
      "max_connections_per_address = 0\n"
      "max_prelogin_per_address = 0\n"
      "max_new_connections_per_address = 0\n"
      "max_sessions_per_user = 0\n"
      "max_failure_delay = 0\n"
      "address_failures_to_block = 0\n"
      "user_failures_to_block = 0\n"
      "address_users_to_block = 0\n");
  EXPECT_EQ(l.ipv4_prefix, 0);
  EXPECT_EQ(l.ipv6_prefix, 0);
  EXPECT_TRUE(l.exempt_networks.empty());
  EXPECT_EQ(l.max_connections, 0);
  EXPECT_EQ(l.max_connections_per_address, 0);
  EXPECT_EQ(l.max_prelogin_per_address, 0);
  EXPECT_EQ(l.max_new_connections_per_address, 0);
  EXPECT_EQ(l.max_sessions_per_user, 0);
  EXPECT_EQ(l.max_failure_delay, absl::ZeroDuration());
  EXPECT_EQ(l.address_failures_to_block, 0);
  EXPECT_EQ(l.user_failures_to_block, 0);
  EXPECT_EQ(l.address_users_to_block, 0);
}

TEST(LimitsConfigTest, Redis) {
  const LimitsConfig l = Limits(
      "store = \"redis\"\n"
      "redis_address = \"127.0.0.1:6379\"\n"
      "redis_password_file = \"redis.pw\"\n"
      "redis_db = 3\n"
      "redis_prefix = \"pg1:\"\n"
      "redis_timeout = \"100ms\"\n"
      "redis_down = \"fail_closed\"\n");
  EXPECT_TRUE(l.redis);
  EXPECT_EQ(l.store_line, 9u);
  EXPECT_EQ(l.redis_address, "127.0.0.1:6379");
  // Relative to the config file's directory, like passwd_file.
  EXPECT_EQ(l.redis_password_file, "/etc/popgate/redis.pw");
  EXPECT_EQ(l.redis_password_file_line, 11u);
  EXPECT_EQ(l.redis_db, 3);
  EXPECT_EQ(l.redis_prefix, "pg1:");
  EXPECT_EQ(l.redis_timeout, absl::Milliseconds(100));
  EXPECT_EQ(l.redis_down, StoreDownPolicy::kFailClosed);

  const LimitsConfig d = Limits(
      "store = \"redis\"\n"
      "redis_address = \"[::1]:6380\"\n"
      "redis_password_file = \"/run/secrets/redis\"\n"
      "redis_down = \"fail_open\"\n");
  EXPECT_EQ(d.redis_address, "[::1]:6380");
  EXPECT_EQ(d.redis_password_file, "/run/secrets/redis");
  EXPECT_EQ(d.redis_prefix, "popgate:");
  EXPECT_EQ(d.redis_timeout, absl::Milliseconds(250));
  EXPECT_EQ(d.redis_down, StoreDownPolicy::kFailOpen);
  EXPECT_EQ(d.redis_user, "");

  // A unix socket and an ACL user.
  const LimitsConfig u = Limits(
      "store = \"redis\"\n"
      "redis_address = \"unix:/run/redis/redis-server.sock\"\n"
      "redis_user = \"popgate\"\n"
      "redis_password_file = \"redis.pw\"\n");
  EXPECT_EQ(u.redis_address, "unix:/run/redis/redis-server.sock");
  EXPECT_EQ(u.redis_user, "popgate");
}

TEST(LimitsConfigTest, StoreErrors) {
  EXPECT_TRUE(LimitFailsAt9("store = \"memcached\"",
                            "'store' must be \"local\" or \"redis\""));
  EXPECT_TRUE(LimitFailsAt9("store = 1", "'store' must be a string"));
  EXPECT_TRUE(LimitFailsAt9("store = \"redis\"", "needs 'redis_address'"));
  const std::string redis = kBase + "[limits]\nstore = \"redis\"\n";
  // Lines 8 [limits], 9 store; the key under test on line 10.
  EXPECT_TRUE(FailsAt(redis + "redis_address = \"localhost\"\n", 10,
                      "'redis_address'"));
  EXPECT_TRUE(FailsAt(redis + "redis_address = \"1.2.3.4:99999\"\n", 10,
                      "'redis_address'"));
  EXPECT_TRUE(FailsAt(redis + "redis_address = 6379\n", 10,
                      "'redis_address' must be a string"));
  EXPECT_TRUE(FailsAt(redis + "redis_address = \"unix:redis.sock\"\n", 10,
                      "'redis_address' = \"unix:PATH\" needs an absolute"));
  EXPECT_TRUE(FailsAt(
      redis + "redis_address = \"unix:/" + std::string(107, 'r') + "\"\n", 10,
      "at most 107 bytes"));
  const std::string ok = redis + "redis_address = \"127.0.0.1:6379\"\n";
  // The key under test on line 11.
  EXPECT_TRUE(FailsAt(ok + "redis_db = -1\n", 11, "'redis_db' must be in"));
  EXPECT_TRUE(FailsAt(ok + "redis_db = 70000\n", 11, "'redis_db' must be in"));
  EXPECT_TRUE(FailsAt(ok + "redis_prefix = \"\"\n", 11, "'redis_prefix'"));
  EXPECT_TRUE(
      FailsAt(ok + "redis_prefix = \"pop gate:\"\n", 11, "without spaces"));
  EXPECT_TRUE(
      FailsAt(ok + "redis_prefix = \"a\\u0000b\"\n", 11, "printable ASCII"));
  EXPECT_TRUE(FailsAt(ok + "redis_prefix = \"pg\\n\"\n", 11, "printable"));
  EXPECT_TRUE(FailsAt(ok + "redis_prefix = \"" + std::string(65, 'p') + "\"\n",
                      11, "'redis_prefix' must be 1..64"));
  EXPECT_TRUE(FailsAt(ok + "redis_timeout = \"0s\"\n", 11,
                      "'redis_timeout' must be > 0"));
  EXPECT_TRUE(FailsAt(ok + "redis_timeout = \"11s\"\n", 11,
                      "'redis_timeout' must be at most"));
  EXPECT_TRUE(FailsAt(ok + "redis_timeout = \"soon\"\n", 11, "bad duration"));
  EXPECT_TRUE(FailsAt(ok + "redis_down = \"retry\"\n", 11,
                      "'redis_down' must be \"fail_open\" or "
                      "\"fail_closed\""));
  EXPECT_TRUE(FailsAt(ok + "redis_password_file = \"\"\n", 11,
                      "'redis_password_file' must be a path"));
  EXPECT_TRUE(FailsAt(ok + "redis_user = \"popgate\"\n", 11,
                      "'redis_user' needs 'redis_password_file'"));
  EXPECT_TRUE(
      FailsAt(ok + "redis_user = \"pop gate\"\nredis_password_file = \"p\"\n",
              11, "'redis_user' must be 1..128 printable"));
  EXPECT_TRUE(FailsAt(ok + "redis_user = \"\"\nredis_password_file = \"p\"\n",
                      11, "'redis_user' must be 1..128"));
}

TEST(LimitsConfigTest, RedisKeysNeedRedisStore) {
  for (const std::string line :
       {"redis_address = \"127.0.0.1:6379\"", "redis_db = 1",
        "redis_prefix = \"x:\"", "redis_timeout = \"1s\"",
        "redis_down = \"fail_closed\"", "redis_password_file = \"pw\"",
        "redis_user = \"popgate\""}) {
    EXPECT_TRUE(LimitFailsAt9(line, "is used only with store = \"redis\""))
        << line;
  }
  EXPECT_TRUE(FailsAt(kBase + "[limits]\nstore = \"local\"\nredis_db = 1\n", 10,
                      "'redis_db' is used only with store = \"redis\""));
}

TEST(LimitsConfigTest, IntErrors) {
  struct Case {
    std::string key;
    int hi;
  };
  for (const Case& c : {Case{"ipv4_prefix", 32}, Case{"ipv6_prefix", 128},
                        Case{"max_connections", 10000000},
                        Case{"max_connections_per_address", 1000000},
                        Case{"max_prelogin_per_address", 1000000},
                        Case{"max_new_connections_per_address", 1000000},
                        Case{"max_sessions_per_user", 100000},
                        Case{"address_failures_to_block", 1000000},
                        Case{"user_failures_to_block", 1000000},
                        Case{"address_users_to_block", 1000000}}) {
    const std::string quoted = "'" + c.key + "'";
    EXPECT_TRUE(LimitFailsAt9(c.key + " = -1", quoted + " must be in 0.."))
        << c.key;
    EXPECT_TRUE(
        LimitFailsAt9(c.key + " = " + std::to_string(c.hi + 1),
                      quoted + " must be in 0.." + std::to_string(c.hi)))
        << c.key;
    EXPECT_TRUE(
        LimitFailsAt9(c.key + " = \"5\"", quoted + " must be an integer"))
        << c.key;
    // The upper bound itself is accepted.
    EXPECT_TRUE(Parse(kBase + "[limits]\n" + c.key + " = " +
                      std::to_string(c.hi) + "\n")
                    .ok())
        << c.key;
  }
}

TEST(LimitsConfigTest, DurationErrors) {
  EXPECT_TRUE(
      LimitFailsAt9("failure_window = \"0s\"", "'failure_window' must be > 0"));
  EXPECT_TRUE(LimitFailsAt9("block_time = 0", "'block_time' must be > 0"));
  EXPECT_TRUE(LimitFailsAt9("block_time = \"-1m\"", "bad duration"));
  EXPECT_TRUE(LimitFailsAt9("refusal_delay = \"31s\"",
                            "'refusal_delay' must be at most 30s"));
  EXPECT_TRUE(LimitFailsAt9("max_refusals_held = -1",
                            "'max_refusals_held' must be in 0..1000000"));
  EXPECT_TRUE(LimitFailsAt9("failure_window = \"25h\"", "at most"));
  EXPECT_TRUE(LimitFailsAt9("max_failure_delay = \"6m\"",
                            "'max_failure_delay' must be at most 5m"));
  EXPECT_TRUE(LimitFailsAt9("max_failure_delay = true",
                            "'max_failure_delay' must be a duration"));
}

TEST(LimitsConfigTest, ExemptNetworksErrors) {
  EXPECT_TRUE(LimitFailsAt9("exempt_networks = \"10.0.0.0/8\"",
                            "'exempt_networks' must be an array of strings"));
  EXPECT_TRUE(LimitFailsAt9("exempt_networks = [1]",
                            "'exempt_networks[]' must be a string"));
  // Each entry's own line.
  EXPECT_TRUE(FailsAt(kBase +
                          "[limits]\nexempt_networks = [\n  \"10.0.0.0/8\",\n"
                          "  \"10.0.0.1/8\",\n]\n",
                      11, "10.0.0.0/8"));
  EXPECT_TRUE(
      LimitFailsAt9("exempt_networks = [\"::1/129\"]", "'exempt_networks'"));
  EXPECT_TRUE(LimitFailsAt9("exempt_networks = [\"example.com\"]",
                            "'exempt_networks'"));
}

TEST(LimitsConfigTest, UnknownKeysAndWrongType) {
  EXPECT_TRUE(LimitFailsAt9("max_connection = 5",
                            "unknown key 'max_connection' in [limits]"));
  EXPECT_TRUE(FailsAt("limits = 5\n" + kBase, 1, "'limits' must be a table"));
  // [[limits]] is an array, not a table.
  EXPECT_TRUE(FailsAt(kBase + "[[limits]]\n", 8, "'limits' must be a table"));
}

TEST(LimitsConfigTest, ProxyProtocolTimeout) {
  const Config c = MustParse(kBase +
                             "[server]\nproxy_protocol_timeout = "
                             "\"750ms\"\n");
  EXPECT_EQ(c.server.proxy_protocol_timeout, absl::Milliseconds(750));
  EXPECT_TRUE(FailsAt(kBase + "[server]\nproxy_protocol_timeout = \"0s\"\n", 9,
                      "'proxy_protocol_timeout' must be > 0"));
}

TEST(LimitsConfigTest, ListenerProxyProtocol) {
  const Config c = MustParse(kTenantFirst +
                             "[[listener]]\n"
                             "address = \"127.0.0.1:1110\"\n"
                             "proxy_protocol = true\n"
                             "proxy_trusted_networks = [\"10.1.0.0/16\", "
                             "\"fd00::/8\"]\n"
                             "[[listener]]\n"
                             "address = \"127.0.0.1:1111\"\n"
                             "proxy_protocol = false\n");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.listeners[0].proxy_protocol);
  EXPECT_EQ(c.listeners[0].proxy_trusted_networks,
            (std::vector<std::string>{"10.1.0.0/16", "fd00::/8"}));
  EXPECT_FALSE(c.listeners[1].proxy_protocol);
  EXPECT_TRUE(c.listeners[1].proxy_trusted_networks.empty());
}

TEST(LimitsConfigTest, ListenerProxyProtocolErrors) {
  // Lines 6 [[listener]], 7 address; the keys under test from line 8.
  const std::string l = kTenantFirst +
                        "[[listener]]\n"
                        "address = \"127.0.0.1:1110\"\n";
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = true\n", 8,
                      "proxy_protocol = true needs 'proxy_trusted_networks'"));
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = true\nproxy_trusted_networks = "
                          "[]\n",
                      9, "must name at least one network"));
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = true\nproxy_trusted_networks = "
                          "[\"10.0.0.300/8\"]\n",
                      9, "'proxy_trusted_networks'"));
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = true\nproxy_trusted_networks = "
                          "\"10.0.0.0/8\"\n",
                      9, "must be an array of strings"));
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = \"yes\"\n", 8,
                      "'proxy_protocol' must be a boolean"));
  // Given without proxy_protocol = true: it would silently do nothing.
  EXPECT_TRUE(FailsAt(l + "proxy_trusted_networks = [\"10.0.0.0/8\"]\n", 8,
                      "used only with proxy_protocol = true"));
  EXPECT_TRUE(FailsAt(l + "proxy_protocol = false\nproxy_trusted_networks = "
                          "[\"10.0.0.0/8\"]\n",
                      9, "used only with proxy_protocol = true"));
}

TEST(LimitsConfigTest, TenantMaxSessionsAndAuthCache) {
  const Config c = MustParse(kTenantFirst +
                             "max_sessions = 500\n"
                             "auth_cache_size = 20\n"
                             "auth_cache_ttl = \"1m\"\n"
                             "auth_cache_negative_ttl = \"0s\"\n"
                             "[[listener]]\n"
                             "address = \"127.0.0.1:1110\"\n");
  ASSERT_EQ(c.tenants.size(), 1u);
  EXPECT_EQ(c.tenants[0].max_sessions, 500);
  EXPECT_EQ(c.tenants[0].auth_cache_size, 20);
  EXPECT_EQ(c.tenants[0].auth_cache_ttl, absl::Minutes(1));
  EXPECT_EQ(c.tenants[0].auth_cache_negative_ttl, absl::ZeroDuration());

  const Config off = MustParse(kTenantFirst + "auth_cache_size = 0\n" +
                               "[[listener]]\naddress = \"127.0.0.1:1110\"\n");
  EXPECT_EQ(off.tenants[0].auth_cache_size, 0);
}

TEST(LimitsConfigTest, TenantErrors) {
  const std::string listener = "[[listener]]\naddress = \"127.0.0.1:1110\"\n";
  EXPECT_TRUE(FailsAt(kTenantFirst + "max_sessions = -1\n" + listener, 6,
                      "'max_sessions' must be in 0..10000000"));
  EXPECT_TRUE(FailsAt(kTenantFirst + "auth_cache_size = 10000001\n" + listener,
                      6, "'auth_cache_size' must be in 0..10000000"));
  EXPECT_TRUE(
      FailsAt(kTenantFirst + "auth_cache_ttl = \"forever\"\n" + listener, 6,
              "bad duration"));
  EXPECT_TRUE(
      FailsAt(kTenantFirst + "auth_cache_negative_ttl = \"2d\"\n" + listener, 6,
              "'auth_cache_negative_ttl'"));
}

TEST(LimitsConfigTest, AuthCacheOnlyWithFileAuth) {
  const std::string listener = "[[listener]]\naddress = \"127.0.0.1:1110\"\n";
  // A backend-auth tenant has no cache; saying "off" is fine.
  const Config c = MustParse(kBackendTenant + "max_sessions = 3\n" +
                             "auth_cache_size = 0\n" + listener);
  EXPECT_EQ(c.tenants[0].max_sessions, 3);
  EXPECT_EQ(c.tenants[0].auth_cache_size, 0);
  EXPECT_EQ(MustParse(kBackendTenant + listener).tenants[0].auth_cache_size, 0);
  for (const std::string line :
       {"auth_cache_size = 10", "auth_cache_ttl = \"1m\"",
        "auth_cache_negative_ttl = \"1m\""}) {
    EXPECT_TRUE(FailsAt(kBackendTenant + line + "\n" + listener, 6,
                        "is used only with auth = \"file\" (tenant 't' has "
                        "auth = \"backend\" on line 4)"))
        << line;
  }
}

// Every [limits] key has a row in the README's table, and every row there
// is a key the parser takes.
TEST(LimitsConfigTest, ReadmeDocumentsEveryKey) {
  std::ifstream in(POPGATE_README);
  ASSERT_TRUE(in) << POPGATE_README;
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const size_t begin = text.find("### `[limits]` (optional)");
  ASSERT_NE(begin, std::string::npos);
  const size_t end = text.find("\n### ", begin + 1);
  const std::string section = text.substr(begin, end - begin);
  const std::vector<std::string> keys = {"store",
                                         "redis_address",
                                         "redis_user",
                                         "redis_password_file",
                                         "redis_db",
                                         "redis_prefix",
                                         "redis_timeout",
                                         "redis_down",
                                         "ipv4_prefix",
                                         "ipv6_prefix",
                                         "exempt_networks",
                                         "max_connections",
                                         "max_connections_per_address",
                                         "max_prelogin_per_address",
                                         "max_new_connections_per_address",
                                         "max_sessions_per_user",
                                         "failure_window",
                                         "max_failure_delay",
                                         "address_failures_to_block",
                                         "user_failures_to_block",
                                         "address_users_to_block",
                                         "block_time",
                                         "refusal_delay",
                                         "max_refusals_held"};
  size_t rows = 0;
  for (size_t at = section.find("\n| `"); at != std::string::npos;
       at = section.find("\n| `", at + 1)) {
    ++rows;
    const size_t close = section.find('`', at + 4);
    const std::string key = section.substr(at + 4, close - at - 4);
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
  EXPECT_EQ(rows, keys.size());
  for (const std::string& key : keys) {
    EXPECT_NE(section.find("| `" + key + "` |"), std::string::npos) << key;
  }
  for (std::string_view key :
       {"proxy_protocol_timeout", "proxy_protocol", "proxy_trusted_networks",
        "max_sessions", "auth_cache_size", "auth_cache_ttl",
        "auth_cache_negative_ttl"}) {
    EXPECT_NE(text.find("| `" + std::string(key) + "` |"), std::string::npos)
        << key;
  }
}

}  // namespace
}  // namespace popgate
