// HealthChecker against loopback servers (testing_check_server.h): what a
// check sends and requires, how results move BackendHealth, target
// replacement, and Stop with checks in flight. Intervals are 100-200 ms
// (the config's 1 s minimum is for operators); waits are bounded and
// generous, and nothing asserts how fast a check is.
#include "backend/health_checker.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/proxy_protocol.h"
#include "tests/backend/testing_check_server.h"
#include "tls/tls_context.h"

namespace popgate {
namespace {

using testing::CheckServer;
using testing::CheckServerOptions;

HealthCheckConfig FastPolicy() {
  HealthCheckConfig p;
  p.active = true;
  p.passive = true;
  p.interval = absl::Milliseconds(100);
  p.timeout = absl::Seconds(5);
  p.rise = 2;
  p.fall = 2;
  p.capa = true;
  p.tls = true;
  return p;
}

// The log callback's lines, for the test thread.
class Lines {
 public:
  std::function<void(std::string)> Sink() {
    return [this](std::string l) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::move(l));
    };
  }
  std::vector<std::string> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // Lines that contain `part`.
  int Count(const std::string& part) const {
    int n = 0;
    for (const std::string& l : Get()) n += absl::StrContains(l, part);
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// Polls `cond` until it holds or 20 s pass.
bool Eventually(const std::function<bool()>& cond) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return cond();
}

struct Checked {
  std::shared_ptr<BackendHealth> health;
  CheckTarget target;
};

Checked Target(const SocketAddress& addr, HealthCheckConfig policy) {
  Checked c;
  c.health = std::make_shared<BackendHealth>("t", addr.ToString());
  c.health->SetPolicy(policy);
  c.target.health = c.health;
  c.target.addr = addr;
  c.target.policy = policy;
  return c;
}

HealthState StateNow(const BackendHealth& h) { return h.state(absl::Now()); }

TEST(HealthChecker, GoodServerGoesUpAfterRiseChecksAndSeesQuit) {
  CheckServer server;
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  EXPECT_FALSE(checker.FirstRoundDone());  // nothing named yet
  Checked b = Target(server.address(), FastPolicy());
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  EXPECT_TRUE(checker.FirstRoundDone());
  EXPECT_GE(server.connections(), 2);
  // Every check asked CAPA and said QUIT; none left a connection behind.
  ASSERT_TRUE(Eventually([&] { return server.quits() >= 2; }));
  EXPECT_GE(server.capas(), 2);
  EXPECT_EQ(server.stls(), 0);
  checker.Stop();
  EXPECT_FALSE(server.connection_open());
  EXPECT_EQ(server.quits(), server.connections());
  EXPECT_EQ(server.capas(), server.connections());
  std::vector<std::string> got = lines.Get();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(absl::StrContains(got[0], "\"from\":\"unknown\",\"to\":\"up\""))
      << got[0];
  EXPECT_TRUE(absl::StrContains(got[0], "\"source\":\"check\"")) << got[0];
  EXPECT_TRUE(absl::EndsWith(got[0], "}\n"));
}

TEST(HealthChecker, ClosedPortGoesDownAfterFall) {
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.fall = 3;
  Checked b = Target(testing::ClosedLoopbackAddress(), p);
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
  ASSERT_EQ(lines.Count("\"to\":\"down\""), 1);
  EXPECT_EQ(lines.Count("connect: Connection refused"), 1)
      << lines.Get().front();
  EXPECT_EQ(lines.Count("\"level\":\"warning\""), 1);
}

TEST(HealthChecker, ServerThatNeverGreetsGoesDownByTimeout) {
  CheckServerOptions o;
  o.greeting = "";
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.timeout = absl::Milliseconds(200);
  Checked b = Target(server.address(), p);
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
  EXPECT_EQ(lines.Count("greeting: timeout"), 1);
  EXPECT_GE(server.connections(), 2);
}

TEST(HealthChecker, ErrGreetingGoesDown) {
  CheckServerOptions o;
  o.greeting = "-ERR [SYS/TEMP] maintenance";
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
  EXPECT_EQ(lines.Count("greeting: not +OK"), 1);
  // The backend's own words stay out of the line.
  EXPECT_EQ(lines.Count("maintenance"), 0);
  EXPECT_EQ(server.capas(), 0);
}

TEST(HealthChecker, CapaErrFailsTheCheckOnlyWhenCapaIsAsked) {
  CheckServerOptions o;
  o.capa_reply = "-ERR no CAPA here\r\n";
  CheckServer server(o);
  {
    Lines lines;
    HealthChecker checker(lines.Sink());
    ASSERT_TRUE(checker.Start().ok());
    Checked b = Target(server.address(), FastPolicy());
    checker.SetTargets({b.target});
    ASSERT_TRUE(
        Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
    checker.Stop();
    EXPECT_EQ(lines.Count("CAPA: not +OK"), 1);
    EXPECT_GE(server.capas(), 2);
  }
  const int capas_before = server.capas();
  {
    Lines lines;
    HealthChecker checker(lines.Sink());
    ASSERT_TRUE(checker.Start().ok());
    HealthCheckConfig p = FastPolicy();
    p.capa = false;
    Checked b = Target(server.address(), p);
    checker.SetTargets({b.target});
    ASSERT_TRUE(
        Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
    checker.Stop();
  }
  EXPECT_EQ(server.capas(), capas_before);  // not asked at all
}

TEST(HealthChecker, CapaAnswerWithoutEndFails) {
  CheckServerOptions o;
  std::string endless = "+OK\r\n";
  for (int i = 0; i < 100; ++i) endless += "X-CAP" + std::to_string(i) + "\r\n";
  endless += ".\r\n";
  o.capa_reply = endless;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
  EXPECT_EQ(lines.Count("CAPA: more than 64 lines"), 1);
}

TEST(HealthChecker, ProxyV2TargetSendsTheLocalHeaderFirst) {
  CheckServerOptions o;
  o.expect_proxy_v2 = true;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  b.target.proxy_v2 = true;
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  checker.Stop();
  const std::string local = EncodeProxyV2Local();
  ASSERT_EQ(local.size(), 16u);
  // The 12-byte signature, version 2 + LOCAL, family unspecified, length 0.
  EXPECT_EQ(local.substr(0, 12), std::string("\r\n\r\n\0\r\nQUIT\n", 12));
  EXPECT_EQ(local.substr(12), std::string("\x20\x00\x00\x00", 4));
  std::vector<std::string> pre = server.preambles();
  ASSERT_GE(pre.size(), 2u);
  for (const std::string& p : pre) EXPECT_EQ(p, local);
}

TEST(HealthChecker, WithoutProxyV2AHeaderListenerNeverGreets) {
  // The same listener, the pool not marked proxy_v2: the listener waits
  // for a header that never comes; the check times out.
  CheckServerOptions o;
  o.expect_proxy_v2 = true;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.timeout = absl::Milliseconds(200);
  Checked b = Target(server.address(), p);
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
}

TEST(HealthChecker, StartTlsPoolWithTlsOffChecksPlainWithoutStls) {
  CheckServer server;
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.tls = false;
  Checked b = Target(server.address(), p);
  b.target.tls_mode = BackendTls::kStartTls;  // no context: never used
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  checker.Stop();
  EXPECT_EQ(server.stls(), 0);
  EXPECT_GE(server.capas(), 2);
}

TEST(HealthChecker, ImplicitTlsPoolWithTlsOffChecksTheConnectOnly) {
  // The greeting would be inside TLS: with `tls = false` a check is the
  // TCP connect, so a listener that says nothing in plaintext is up.
  CheckServerOptions o;
  o.greeting = "";
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.tls = false;
  Checked b = Target(server.address(), p);
  b.target.tls_mode = BackendTls::kImplicit;
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  checker.Stop();
  EXPECT_GE(server.connections(), 2);
}

std::shared_ptr<const tls::ClientContext> ClientContext(bool verify) {
  tls::ClientTlsOptions o;
  o.verify = verify;  // with verify: the system CAs, which never signed ours
  absl::StatusOr<std::shared_ptr<const tls::ClientContext>> ctx =
      tls::ClientContext::Build(o);
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return ctx.ok() ? *ctx : nullptr;
}

TEST(HealthChecker, StartTlsPoolChecksThroughTheHandshake) {
  CheckServerOptions o;
  o.tls = CheckServerOptions::Tls::kStartTls;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  b.target.tls_mode = BackendTls::kStartTls;
  b.target.tls_ctx = ClientContext(/*verify=*/false);
  b.target.tls_name = "check.test";
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  ASSERT_TRUE(Eventually([&] { return server.quits() >= 2; }));
  checker.Stop();
  EXPECT_GE(server.stls(), 2);
  EXPECT_GE(server.handshakes(), 2);
  EXPECT_GE(server.capas(), 2);  // CAPA went inside TLS
}

TEST(HealthChecker, ImplicitTlsPoolChecksThroughTheHandshake) {
  CheckServerOptions o;
  o.tls = CheckServerOptions::Tls::kImplicit;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  b.target.tls_mode = BackendTls::kImplicit;
  b.target.tls_ctx = ClientContext(false);
  b.target.tls_name = "check.test";
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  checker.Stop();
  EXPECT_GE(server.handshakes(), 2);
  EXPECT_EQ(server.stls(), 0);
}

TEST(HealthChecker, RefusedCertificateFailsTheCheck) {
  // Logins would fail the same way: the check says so (passive marking
  // does not count this, see BackendConnection::health_failure).
  CheckServerOptions o;
  o.tls = CheckServerOptions::Tls::kStartTls;
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  b.target.tls_mode = BackendTls::kStartTls;
  b.target.tls_ctx = ClientContext(/*verify=*/true);
  b.target.tls_name = "check.test";
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  checker.Stop();
  EXPECT_EQ(lines.Count("\"reason\":\"tls: "), 1) << lines.Get().front();
  EXPECT_EQ(server.capas(), 0);
}

TEST(HealthChecker, ReplacedTargetStopsBeingChecked) {
  CheckServer a_server, b_server;
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked a = Target(a_server.address(), FastPolicy());
  Checked b = Target(b_server.address(), FastPolicy());
  checker.SetTargets({a.target});
  ASSERT_TRUE(Eventually([&] { return a_server.connections() >= 2; }));
  checker.SetTargets({b.target});
  ASSERT_TRUE(Eventually([&] { return b_server.connections() >= 1; }));
  // At most the check that was in flight when the targets changed.
  const int a_then = a_server.connections();
  ASSERT_TRUE(Eventually([&] { return b_server.connections() >= 6; }));
  EXPECT_LE(a_server.connections(), a_then + 1);
  checker.Stop();
  // Every finished check said QUIT; the one Stop cut in flight (if any,
  // StopReturnsWithACheckInFlightAndDoesNotCountIt) may not have. The
  // server reads the last QUIT on its own thread: wait for it.
  EXPECT_TRUE(Eventually(
      [&] { return b_server.quits() >= b_server.connections() - 1; }));
  EXPECT_LE(b_server.quits(), b_server.connections());
}

TEST(HealthChecker, SameHealthKeepsBeingCheckedWithTheNewPolicy) {
  CheckServerOptions o;
  o.capa_reply = "-ERR no CAPA here\r\n";
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked b = Target(server.address(), FastPolicy());
  checker.SetTargets({b.target});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kDown; }));
  // A reload turns CAPA off for the same backend (same BackendHealth).
  CheckTarget reloaded = b.target;
  reloaded.policy.capa = false;
  b.health->SetPolicy(reloaded.policy);
  checker.SetTargets({reloaded});
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  checker.Stop();
  EXPECT_EQ(lines.Count("\"to\":\"down\""), 1);
  EXPECT_EQ(lines.Count("\"from\":\"down\",\"to\":\"up\""), 1);
}

TEST(HealthChecker, StopReturnsWithACheckInFlightAndDoesNotCountIt) {
  CheckServerOptions o;
  o.greeting = "";  // holds the check in its greeting read
  CheckServer server(o);
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.timeout = absl::Hours(1);
  p.fall = 1;
  Checked b = Target(server.address(), p);
  checker.SetTargets({b.target});
  ASSERT_TRUE(Eventually([&] { return server.connection_open(); }));
  const absl::Time before = absl::Now();
  checker.Stop();
  // Not the check's hour: Stop cut it (the bound is only "not the timeout").
  EXPECT_LT(absl::Now() - before, absl::Seconds(30));
  // The server saw the connection end, and the cut check is no failure.
  ASSERT_TRUE(Eventually([&] { return server.closed_by_peer() >= 1; }));
  EXPECT_EQ(StateNow(*b.health), HealthState::kUnknown);
  EXPECT_TRUE(lines.Get().empty());
  checker.Stop();  // twice is fine
}

TEST(HealthChecker, StopWhileSleepingBetweenChecks) {
  CheckServer server;
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  HealthCheckConfig p = FastPolicy();
  p.interval = absl::Hours(2);  // first wait: somewhere in two hours
  Checked b = Target(server.address(), p);
  checker.SetTargets({b.target});
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time before = absl::Now();
  checker.Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(30));
}

TEST(HealthChecker, FirstRoundDoneOnceEveryFirstTargetWasChecked) {
  CheckServer good;
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  Checked a = Target(good.address(), FastPolicy());
  Checked c = Target(testing::ClosedLoopbackAddress(), FastPolicy());
  checker.SetTargets({a.target, c.target});
  // A failed check counts as checked: /readyz wants "we know", not "up".
  ASSERT_TRUE(Eventually([&] { return checker.FirstRoundDone(); }));
  checker.Stop();
}

TEST(HealthChecker, EmptyFirstTargetsAreDoneAtOnce) {
  Lines lines;
  HealthChecker checker(lines.Sink());
  ASSERT_TRUE(checker.Start().ok());
  checker.SetTargets({});
  ASSERT_TRUE(Eventually([&] { return checker.FirstRoundDone(); }));
}

TEST(HealthChecker, SetTargetsBeforeStartIsApplied) {
  CheckServer server;
  Lines lines;
  HealthChecker checker(lines.Sink());
  Checked b = Target(server.address(), FastPolicy());
  checker.SetTargets({b.target});
  ASSERT_TRUE(checker.Start().ok());
  ASSERT_TRUE(
      Eventually([&] { return StateNow(*b.health) == HealthState::kUp; }));
  EXPECT_FALSE(checker.Start().ok());  // once only
}

}  // namespace
}  // namespace popgate
