// Settings and checks added by issue 8 (the older ones are in config_test.cc).
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "net/local_address.h"
#include "net/socket_address.h"

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
  EXPECT_TRUE(s.backend_pipelining);
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
      "backend_pipelining = false\n"
      "forward_socket_buffer = 65536\n"
      "client_drain_timeout = \"500ms\"\n" +
      std::string("[[listener]]\naddress = \"[::]:1110\"\nipv6_only = true\n") +
      kTenant);
  ASSERT_TRUE(config.ok()) << config.status();
  const ServerConfig& s = config->server;
  EXPECT_EQ(s.backend_auth_timeout, absl::Seconds(45));
  EXPECT_EQ(s.login_timeout, absl::Seconds(3));
  EXPECT_EQ(s.max_preauth_commands, 7);
  EXPECT_EQ(s.auth_queue_limit, 16);
  EXPECT_TRUE(s.takeover_listeners);
  EXPECT_FALSE(s.backend_pipelining);
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
  EXPECT_TRUE(
      FailsAt("[server]\nbackend_pipelining = \"yes\"\n" + rest, 2, "boolean"));
  EXPECT_TRUE(FailsAt("[server]\nforward_socket_buffer = -1\n" + rest, 2,
                      "'forward_socket_buffer' must be in"));
  EXPECT_TRUE(FailsAt("[server]\nforward_socket_buffer = 100\n" + rest, 2,
                      "at least 4096"));
  EXPECT_TRUE(
      FailsAt(kListener + "ipv6_only = \"yes\"\n" + kTenant, 3, "boolean"));
  // It would do nothing on an IPv4 listener: say so.
  EXPECT_TRUE(
      FailsAt(kListener + "ipv6_only = true\n" + kTenant, 3, "IPv6 listeners"));
}

std::string Listener(std::string_view address, std::string_view extra = "") {
  return "[[listener]]\naddress = \"" + std::string(address) + "\"\n" +
         std::string(extra);
}

// Five lines: a tenant whose only backend (line 5 of it) is `address`.
std::string TenantWithBackend(std::string_view address) {
  return "[[tenant]]\n"
         "name = \"t\"\n"
         "domains = [\"example.com\"]\n"
         "auth = \"backend\"\n"
         "backends = [ { address = \"" +
         std::string(address) + "\" } ]\n";
}

TEST(ListenerAddressTest, UnresolvableIpv6LiteralIsRefused) {
  // The fuzzer's find: "[:]:80" passed --check-config and failed at start.
  EXPECT_TRUE(FailsAt(Listener("[:]:80") + kTenant, 2, "bad IPv6 address"));
  EXPECT_TRUE(FailsAt(Listener("[1::2::3]:80") + kTenant, 2, "IPv6"));
  EXPECT_TRUE(FailsAt(Listener("300.1.2.3:80") + kTenant, 2, "IPv4"));
  EXPECT_TRUE(FailsAt(Listener("mail..example:80") + kTenant, 2, "host name"));
  EXPECT_TRUE(
      FailsAt(kListener + TenantWithBackend("[:]:110"), 7, "bad IPv6 address"));
  EXPECT_FALSE(ValidateHostPort("[:]:80").ok());
  EXPECT_TRUE(ValidateHostPort("[::]:80").ok());
}

TEST(ListenerAddressTest, DualStackListenerAndIpv4WildcardOverlap) {
  EXPECT_TRUE(FailsAt(Listener("0.0.0.0:1110") + Listener("[::]:1110") +
                          TenantWithBackend("192.0.2.1:110"),
                      4, "ipv6_only"));
  // With ipv6_only = true they split the families cleanly.
  absl::StatusOr<Config> ok = Parse(
      Listener("0.0.0.0:1110") + Listener("[::]:1110", "ipv6_only = true\n") +
      TenantWithBackend("192.0.2.1:110"));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(TrustedNetworksTest, HostBitsSetIsAnError) {
  EXPECT_TRUE(
      FailsAt("[tls]\ntrusted_networks = [\"10.0.0.0/8\",\n"
              "  \"10.0.0.1/8\"]\n" +
                  kListener + kTenant,
              3, "10.0.0.0/8"));
  EXPECT_TRUE(FailsAt(
      "[tls]\ntrusted_networks = [\"2001:db8::1/64\"]\n" + kListener + kTenant,
      2, "2001:db8::/64"));
  EXPECT_TRUE(FailsAt(
      "[tls]\ntrusted_networks = [\"10.0.0.0/+8\"]\n" + kListener + kTenant, 2,
      "bad network"));
  absl::StatusOr<Config> ok =
      Parse("[tls]\ntrusted_networks = [\"10.0.0.0/8\", \"192.0.2.7\"]\n" +
            kListener + kTenant);
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// A backend that is one of our own listeners: one login would nest
// sessions until a timeout.
TEST(BackendLoopTest, SameAddress) {
  EXPECT_TRUE(FailsAt(kListener + TenantWithBackend("127.0.0.1:1110"), 7,
                      "own listener '127.0.0.1:1110' (line 2)"));
}

TEST(BackendLoopTest, ErrorPointsAtTheBackendLine) {
  EXPECT_TRUE(FailsAt(kListener + "[[tenant]]\n"
                                  "name = \"t\"\n"
                                  "domains = [\"example.com\"]\n"
                                  "auth = \"backend\"\n"
                                  "backends = [\n"
                                  "  { address = \"192.0.2.1:110\" },\n"
                                  "  { address = \"127.0.0.1:1110\" },\n"
                                  "]\n",
                      9, "'127.0.0.1:1110' of tenant 't'"));
}

TEST(BackendLoopTest, WildcardListenersAndLocalAddresses) {
  EXPECT_TRUE(
      FailsAt(Listener("0.0.0.0:1110") + TenantWithBackend("127.0.0.1:1110"), 7,
              "loop"));
  EXPECT_TRUE(
      FailsAt(Listener("0.0.0.0:1110") + TenantWithBackend("127.3.2.1:1110"), 7,
              "loop"));
  EXPECT_TRUE(FailsAt(Listener("[::]:1110") + TenantWithBackend("[::1]:1110"),
                      7, "loop"));
  // Dual-stack by default: IPv4 loopback reaches it too.
  EXPECT_TRUE(FailsAt(
      Listener("[::]:1110") + TenantWithBackend("127.0.0.1:1110"), 7, "loop"));
  // connect() to 0.0.0.0 goes to loopback.
  EXPECT_TRUE(
      FailsAt(kListener + TenantWithBackend("0.0.0.0:1110"), 7, "loop"));
}

TEST(BackendLoopTest, HostInterfaceAddressBehindWildcard) {
  const std::vector<SocketAddress> local = LocalInterfaceAddresses();
  std::string host;
  for (const SocketAddress& a : local) {
    const std::string text = a.ToString();
    if (a.family() == AF_INET && text.rfind("127.", 0) != 0) {
      host = text.substr(0, text.rfind(':'));
      break;
    }
  }
  if (host.empty()) GTEST_SKIP() << "no non-loopback IPv4 address here";
  EXPECT_TRUE(FailsAt(
      Listener("0.0.0.0:1110") + TenantWithBackend(host + ":1110"), 7, "loop"));
}

TEST(BackendLoopTest, NotALoop) {
  for (const auto& [listener, extra, backend] :
       {std::tuple{"127.0.0.1:1110", "", "127.0.0.1:1111"},
        std::tuple{"127.0.0.1:1110", "", "127.0.0.2:1110"},
        std::tuple{"0.0.0.0:1110", "", "192.0.2.200:1110"},
        std::tuple{"0.0.0.0:1110", "", "[::1]:1110"},
        std::tuple{"[::]:1110", "ipv6_only = true\n", "127.0.0.1:1110"},
        std::tuple{"[::1]:1110", "", "127.0.0.1:1110"},
        // Names are checked after resolution (Snapshot::Build).
        std::tuple{"127.0.0.1:1110", "", "localhost:1110"}}) {
    absl::StatusOr<Config> config =
        Parse(Listener(listener, extra) + TenantWithBackend(backend));
    EXPECT_TRUE(config.ok())
        << listener << " " << backend << ": " << config.status();
  }
}

TEST(BackendLoopTest, CheckBackendLoopOnResolvedAddresses) {
  absl::StatusOr<Config> config =
      Parse(Listener("0.0.0.0:1110") + TenantWithBackend("localhost:1110"));
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<SocketAddress> listener = ResolveHostPort("0.0.0.0:1110");
  absl::StatusOr<SocketAddress> backend = ResolveHostPort("127.0.0.1:1110");
  ASSERT_TRUE(listener.ok() && backend.ok());
  absl::Status s = CheckBackendLoop(*config, 0, 0, *backend, {*listener}, {});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.message()).rfind("t.toml:7: ", 0), 0u) << s;
  EXPECT_NE(s.message().find("'localhost:1110'"), absl::string_view::npos) << s;
  EXPECT_TRUE(
      CheckBackendLoop(*config, 0, 0, *backend, {std::nullopt}, {}).ok());
}

TEST(LineNumbersTest, KeptForLoadErrors) {
  absl::StatusOr<Config> config = Parse(
      "[tls]\n"                                                     // 1
      "ticket_key_file = \"k.bin\"\n"                               // 2
      "[[listener]]\n"                                              // 3
      "address = \"127.0.0.1:1995\"\n"                              // 4
      "tls = \"implicit\"\n"                                        // 5
      "certificates = [\n"                                          // 6
      "  { cert = \"a.pem\", key = \"a.key\" },\n"                  // 7
      "  { cert = \"b.pem\", key = \"b.key\" } ]\n"                 // 8
      "[[tenant]]\n"                                                // 9
      "name = \"t\"\n"                                              // 10
      "domains = [\"example.com\"]\n"                               // 11
      "auth = \"backend\"\n"                                        // 12
      "certificates = [ { cert = \"t.pem\", key = \"t.key\" } ]\n"  // 13
      "backends = [ { address = \"192.0.2.1:110\" },\n"             // 14
      "  { address = \"192.0.2.2:110\" } ]\n"                       // 15
      "[tenant.backend_tls]\n"                                      // 16
      "mode = \"implicit\"\n"                                       // 17
      "ca_file = \"ca.pem\"\n"                                      // 18
      "client_cert = \"c.pem\"\n"                                   // 19
      "client_key = \"c.key\"\n");                                  // 20
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls.ticket_key_file_line, 2u);
  const ListenerConfig& l = config->listeners[0];
  EXPECT_EQ(l.line, 3u);
  EXPECT_EQ(l.address_line, 4u);
  EXPECT_EQ(l.certificates[0].line, 7u);
  EXPECT_EQ(l.certificates[1].line, 8u);
  const TenantConfig& t = config->tenants[0];
  EXPECT_EQ(t.line, 9u);
  EXPECT_EQ(t.domains_line, 11u);
  EXPECT_EQ(t.certificates[0].line, 13u);
  EXPECT_EQ(t.backend_lines, (std::vector<uint32_t>{14, 15}));
  EXPECT_EQ(t.backend_tls.line, 16u);
  EXPECT_EQ(t.backend_tls.ca_file_line, 18u);
  EXPECT_EQ(t.backend_tls.client_cert.line, 19u);
}

// Config errors never show the bytes of a secret: a passwd-file, a key or
// a ticket key given where the config belongs, or a secret-looking value.
TEST(SecretsTest, SyntaxErrorsDoNotEchoFileContents) {
  const std::string secret = "Sup3rS3cretPassw0rd";
  for (const std::string& text : {
           "alice@example.com:{PLAIN}" + secret + "\n",
           "alice:{SHA512-CRYPT}$6$rounds=5000$" + secret + ":1000::\n",
           "-----BEGIN PRIVATE KEY-----\nMIG" + secret +
               "\n-----END PRIVATE KEY-----\n",
           secret + secret + "\n",  // a ticket key file in hex or base64
           "x = 1" + secret + "\n",
           "[server]\nworkers = " + secret + "\n",
           "[server]\ngreeting = \"a\" " + secret + "\n",
       }) {
    absl::StatusOr<Config> config = Parse(text);
    ASSERT_FALSE(config.ok()) << text;
    const std::string message(config.status().message());
    EXPECT_EQ(message.rfind("t.toml:", 0), 0u) << message;
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
    // Not even its first character ("saw 'S'").
    EXPECT_EQ(message.find("'S'"), std::string::npos) << message;
  }
}

TEST(SecretsTest, SyntaxErrorsKeepPunctuation) {
  // What is not a letter or digit stays: it tells the operator what is
  // wrong and is no secret's content.
  absl::StatusOr<Config> config = Parse("alice:x\n");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("saw ':'"), absl::string_view::npos)
      << config.status();
}

}  // namespace
}  // namespace popgate
