#include "bench/loadgen/options.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace popgate::loadgen {
namespace {

bool Parse(std::vector<std::string> args, Options* o, std::string* error) {
  return ParseOptions(args, o, error);
}

TEST(OptionsTest, Defaults) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1110"}, &o, &error)) << error;
  EXPECT_EQ(o.mode, Mode::kSessions);
  EXPECT_EQ(o.concurrency, 10);
  EXPECT_EQ(o.duration_s, 10);
  EXPECT_EQ(o.threads, 1);
  EXPECT_EQ(o.retr, 0);
  EXPECT_EQ(o.users, 10);  // one per concurrent session
  EXPECT_TRUE(o.verify);
  EXPECT_EQ(o.io_timeout_s, 10);
  EXPECT_EQ(o.target.text, "127.0.0.1:1110");
  auto* sin = reinterpret_cast<const sockaddr_in*>(&o.target.addr);
  EXPECT_EQ(sin->sin_family, AF_INET);
  EXPECT_EQ(ntohs(sin->sin_port), 1110);
}

TEST(OptionsTest, AllFlags) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--mode=throughput", "--target", "[::1]:995",
                     "--concurrency", "4", "--duration", "2.5", "--threads",
                     "2", "--message", "3", "--users", "100", "--user-format",
                     "u{i}x{i}", "--password", "pw", "--expect-size", "10m",
                     "--no-verify", "--io-timeout", "0.5", "--recv-buffer",
                     "256k"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.mode, Mode::kThroughput);
  EXPECT_EQ(o.target.addr.ss_family, AF_INET6);
  EXPECT_EQ(o.concurrency, 4);
  EXPECT_DOUBLE_EQ(o.duration_s, 2.5);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.message, 3);
  EXPECT_EQ(o.users, 100);
  EXPECT_EQ(o.UserName(7), "u7x7");
  EXPECT_EQ(o.password, "pw");
  EXPECT_EQ(o.expect_size, 10u << 20);
  EXPECT_FALSE(o.verify);
  EXPECT_DOUBLE_EQ(o.io_timeout_s, 0.5);
  EXPECT_EQ(o.recv_buffer, 256u * 1024);
}

TEST(OptionsTest, UserNameDefaultMatchesSynthGeneratedUsers) {
  Options o;
  EXPECT_EQ(o.UserName(0), "user0@example.com");
  EXPECT_EQ(o.UserName(42), "user42@example.com");
}

TEST(OptionsTest, AcceptsLoopbackTargets) {
  for (std::string t : {"127.0.0.1:1", "127.9.8.7:65535", "localhost:110",
                        "[::1]:110", "[::ffff:127.0.0.1]:110"}) {
    Target target;
    std::string error;
    EXPECT_TRUE(ParseTarget(t, &target, &error)) << t << ": " << error;
  }
}

TEST(OptionsTest, RefusesNonLoopbackTargets) {
  for (std::string t :
       {"10.0.0.1:110", "8.8.8.8:110", "0.0.0.0:110", "128.0.0.1:110",
        "[::2]:110", "[::]:110", "[::ffff:10.0.0.1]:110",
        "mail.example.com:110", "example.com:110"}) {
    Target target;
    std::string error;
    EXPECT_FALSE(ParseTarget(t, &target, &error)) << t;
    EXPECT_FALSE(error.empty()) << t;
  }
  Options o;
  std::string error;
  EXPECT_FALSE(Parse({"--target", "192.168.1.1:110"}, &o, &error));
  EXPECT_NE(error.find("not a loopback"), std::string::npos) << error;
}

TEST(OptionsTest, RefusesBadTargetSyntax) {
  for (std::string t : {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                        "127.0.0.1:x", "[::1]110", ":110"}) {
    Target target;
    std::string error;
    EXPECT_FALSE(ParseTarget(t, &target, &error)) << t;
  }
}

TEST(OptionsTest, RequiresTarget) {
  Options o;
  std::string error;
  EXPECT_FALSE(Parse({"--mode", "sessions"}, &o, &error));
  EXPECT_NE(error.find("--target"), std::string::npos);
}

TEST(OptionsTest, RefusesFewerUsersThanConcurrentSessions) {
  Options o;
  std::string error;
  EXPECT_FALSE(Parse({"--target", "127.0.0.1:1", "--concurrency", "50",
                      "--users", "49"},
                     &o, &error));
  EXPECT_NE(error.find("--users"), std::string::npos);
  EXPECT_TRUE(Parse({"--target", "127.0.0.1:1", "--concurrency", "50",
                     "--users", "1000"},
                    &o, &error))
      << error;
}

TEST(OptionsTest, HoldModeNeedsSessions) {
  Options o;
  std::string error;
  EXPECT_FALSE(Parse({"--target", "127.0.0.1:1", "--mode", "hold"}, &o,
                     &error));
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1", "--mode", "hold",
                     "--sessions", "5000", "--pid", "1,2"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.users, 5000);
  EXPECT_EQ(o.concurrency, 100);  // login ramp default
  EXPECT_EQ(o.pids, (std::vector<int>{1, 2}));
}

TEST(OptionsTest, BoundsEverything) {
  Options o;
  std::string error;
  const std::vector<std::vector<std::string>> bad = {
      {"--duration", "3601"},   {"--duration", "-1"},
      {"--concurrency", "0"},   {"--threads", "65"},
      {"--io-timeout", "0"},    {"--retr", "-1"},
      {"--recv-buffer", "100"}, {"--mode", "nope"},
      {"--sessions", "0"},      {"--pid", "x"},
      {"--bogus"},              {"--password"},
      {"--user-format", "fixed"},  // one name for 10 concurrent sessions
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"--target", "127.0.0.1:1"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_FALSE(Parse(args, &o, &error)) << extra[0];
  }
}

TEST(OptionsTest, ThreadsNeverExceedConcurrency) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1", "--concurrency", "2",
                     "--threads", "8"},
                    &o, &error));
  EXPECT_EQ(o.threads, 2);
}

TEST(OptionsTest, TlsDefaultsOff) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1110"}, &o, &error)) << error;
  EXPECT_EQ(o.tls, TlsMode::kNone);
  EXPECT_FALSE(o.tls_resume);
  EXPECT_EQ(o.tls_sigalgs, TlsSigalgs::kAny);
  EXPECT_EQ(o.tls_version, TlsVersion::kAny);
  EXPECT_FALSE(o.tls_verify);
}

TEST(OptionsTest, TlsFlags) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:995", "--mode", "handshakes",
                     "--tls", "implicit", "--tls-resume", "--tls-sigalgs",
                     "rsa", "--tls-version=1.2", "--tls-verify", "--tls-ca",
                     "/tmp/ca.pem", "--tls-server-name", "mail.example.com"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.mode, Mode::kHandshakes);
  EXPECT_EQ(o.tls, TlsMode::kImplicit);
  EXPECT_TRUE(o.tls_resume);
  EXPECT_EQ(o.tls_sigalgs, TlsSigalgs::kRsa);
  EXPECT_EQ(o.tls_version, TlsVersion::k12);
  EXPECT_TRUE(o.tls_verify);
  EXPECT_EQ(o.tls_ca, "/tmp/ca.pem");
  EXPECT_EQ(o.tls_server_name, "mail.example.com");
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:110", "--tls", "starttls",
                     "--tls-sigalgs", "ecdsa", "--tls-version", "1.3"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.tls, TlsMode::kStartTls);
  EXPECT_EQ(o.tls_sigalgs, TlsSigalgs::kEcdsa);
  EXPECT_EQ(o.tls_version, TlsVersion::k13);
}

TEST(OptionsTest, TlsMisuseIsRefused) {
  Options o;
  std::string error;
  const std::vector<std::vector<std::string>> bad = {
      {"--mode", "handshakes"},               // needs --tls
      {"--tls-resume"},                       // needs --tls
      {"--tls", "sometimes"},
      {"--tls", "implicit", "--tls-sigalgs", "dsa"},
      {"--tls", "implicit", "--tls-version", "1.1"},
      {"--tls", "implicit", "--tls-ca", "x.pem"},  // without --tls-verify
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"--target", "127.0.0.1:995"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_FALSE(Parse(args, &o, &error)) << extra[0];
    EXPECT_FALSE(error.empty());
  }
}

TEST(OptionsTest, RateDefaultsToClosedLoop) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1"}, &o, &error)) << error;
  EXPECT_EQ(o.rate, 0);
}

TEST(OptionsTest, RateInSessionsMode) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1", "--rate", "2000",
                     "--concurrency", "256", "--threads", "2"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.rate, 2000);
  EXPECT_EQ(o.concurrency, 256);
  EXPECT_EQ(o.users, 256);  // one user per slot in flight
  ASSERT_TRUE(Parse({"--target", "127.0.0.1:1", "--rate=0.5"}, &o, &error))
      << error;
  EXPECT_EQ(o.rate, 0.5);
  // Over TLS too.
  ASSERT_TRUE(
      Parse({"--target", "127.0.0.1:1", "--rate", "100", "--tls", "implicit"},
            &o, &error))
      << error;
  EXPECT_EQ(o.rate, 100);
  EXPECT_EQ(o.tls, TlsMode::kImplicit);
}

TEST(OptionsTest, RateMisuseIsRefused) {
  Options o;
  std::string error;
  const std::vector<std::vector<std::string>> bad = {
      {"--rate", "-1"},
      {"--rate", "x"},
      {"--rate", "1e9"},  // above kMaxRate
      {"--rate"},
      {"--rate", "10", "--mode", "throughput"},
      {"--rate", "10", "--mode", "hold", "--sessions", "5"},
      {"--rate", "10", "--mode", "handshakes", "--tls", "implicit"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"--target", "127.0.0.1:1"};
    args.insert(args.end(), extra.begin(), extra.end());
    error.clear();
    EXPECT_FALSE(Parse(args, &o, &error)) << extra.back();
    EXPECT_FALSE(error.empty());
  }
}

TEST(OptionsTest, Help) {
  Options o;
  std::string error;
  ASSERT_TRUE(Parse({"--help"}, &o, &error));
  EXPECT_TRUE(o.help);
  EXPECT_NE(Usage().find("--mode"), std::string::npos);
}

}  // namespace
}  // namespace popgate::loadgen
