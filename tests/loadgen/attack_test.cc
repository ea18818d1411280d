// loadgen's attack mode without sockets: its flags, the guesses and source
// addresses the plan hands out, and how answers are classified.
#include "bench/loadgen/attack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bench/loadgen/options.h"
#include "bench/loadgen/report.h"
#include "bench/loadgen/stats.h"

namespace popgate::loadgen {
namespace {

Options MustParse(std::vector<std::string> args) {
  Options o;
  std::string error;
  EXPECT_TRUE(ParseOptions(args, &o, &error)) << error;
  return o;
}

std::string ParseError(std::vector<std::string> args) {
  Options o;
  std::string error;
  EXPECT_FALSE(ParseOptions(args, &o, &error));
  return error;
}

TEST(AttackOptionsTest, SprayDefaults) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "8"});
  EXPECT_TRUE(o.attack);
  EXPECT_EQ(o.attackers, 8);
  EXPECT_EQ(o.attack_pattern, AttackPattern::kSpray);
  ASSERT_EQ(o.attack_sources.size(), 1u);
  EXPECT_EQ(o.attack_sources[0], 0x7f000002u);  // 127.0.0.2
  ASSERT_EQ(o.attack_users.size(), 1000u);
  EXPECT_EQ(o.attack_users[0], "victim0@example.com");
  EXPECT_EQ(o.attack_users[999], "victim999@example.com");
  EXPECT_EQ(o.attack_rate, 0);
}

TEST(AttackOptionsTest, StuffDefaultsAndFlags) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "3",
                         "--attack", "stuff", "--attack-rate", "500",
                         "--attack-password", "guess"});
  EXPECT_EQ(o.attack_pattern, AttackPattern::kStuff);
  EXPECT_EQ(o.attack_sources.size(), 254u);  // 127.0.2.1 .. 127.0.2.254
  EXPECT_EQ(o.attack_sources.front(), 0x7f000201u);
  EXPECT_EQ(o.attack_sources.back(), 0x7f0002feu);
  ASSERT_EQ(o.attack_users.size(), 1u);
  EXPECT_EQ(o.attack_users[0], "victim0@example.com");
  EXPECT_DOUBLE_EQ(o.attack_rate, 500);
  EXPECT_EQ(o.attack_password, "guess");
}

TEST(AttackOptionsTest, ZeroAttackersStillReportsTheAttackKeys) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "0"});
  EXPECT_TRUE(o.attack);
  EXPECT_EQ(o.attackers, 0);
  Options plain = MustParse({"--target", "127.0.0.1:1110"});
  EXPECT_FALSE(plain.attack);
}

TEST(AttackOptionsTest, AnAttackAloneNeedsNoGoodSessions) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--concurrency", "0",
                         "--attackers", "4", "--threads", "2"});
  EXPECT_EQ(o.concurrency, 0);
  EXPECT_EQ(o.threads, 2);  // the attackers keep both busy
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1110", "--concurrency", "0"})
                .find("attack alone"),
            std::string::npos);
  ParseError(
      {"--target", "127.0.0.1:1110", "--concurrency", "0", "--attackers", "0"});
}

TEST(AttackOptionsTest, UsersFromAFile) {
  char path[] = "/tmp/loadgen-attack-users-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "alice@example.com\r\n\nbob@example.com\n";
  ASSERT_EQ(write(fd, text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  close(fd);
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "1",
                         "--attack-users", path});
  unlink(path);
  EXPECT_EQ(o.attack_users,
            (std::vector<std::string>{"alice@example.com", "bob@example.com"}));
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1110", "--attackers", "1",
                        "--attack-users", "/nonexistent/users"})
                .find("cannot read"),
            std::string::npos);
}

TEST(AttackOptionsTest, Refusals) {
  // Attack flags without attackers, outside sessions mode, over TLS.
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1", "--attack", "stuff"})
                .find("--attackers"),
            std::string::npos);
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1", "--mode", "throughput",
                        "--attackers", "1"})
                .find("sessions"),
            std::string::npos);
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1", "--tls", "implicit",
                        "--attackers", "1"})
                .find("plain"),
            std::string::npos);
  EXPECT_NE(
      ParseError({"--target", "[::1]:1", "--attackers", "1"}).find("IPv4"),
      std::string::npos);
  ParseError(
      {"--target", "127.0.0.1:1", "--attackers", "1", "--attack", "flood"});
  ParseError({"--target", "127.0.0.1:1", "--attackers", "-1"});
  // Sources must be loopback and ascending.
  EXPECT_NE(ParseError({"--target", "127.0.0.1:1", "--attackers", "1",
                        "--attack-source", "10.0.0.1"})
                .find("127.0.0.0/8"),
            std::string::npos);
  ParseError({"--target", "127.0.0.1:1", "--source", "127.0.0.9-127.0.0.3"});
  ParseError({"--target", "127.0.0.1:1", "--source", "127.0.0.x"});
  ParseError({"--target", "[::1]:1", "--source", "127.0.0.3"});
  // A name pattern without {i} for many users.
  ParseError({"--target", "127.0.0.1:1", "--attackers", "1",
              "--attack-user-format", "same@example.com"});
}

TEST(SourceRangeTest, RangesAndBounds) {
  std::vector<uint32_t> v;
  std::string error;
  ASSERT_TRUE(ParseSourceRange("127.0.1.250-127.0.2.1", &v, &error)) << error;
  EXPECT_EQ(v, (std::vector<uint32_t>{0x7f0001fa, 0x7f0001fb, 0x7f0001fc,
                                      0x7f0001fd, 0x7f0001fe, 0x7f0001ff,
                                      0x7f000200, 0x7f000201}));
  ASSERT_TRUE(ParseSourceRange("127.0.0.5", &v, &error));
  EXPECT_EQ(v, (std::vector<uint32_t>{0x7f000005}));
  EXPECT_FALSE(ParseSourceRange("127.0.0.0-127.255.255.255", &v, &error));
  EXPECT_NE(error.find("at most"), std::string::npos);
}

TEST(AttackPlanTest, SprayTriesEveryUserOncePerPassword) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "1",
                         "--attack-user-count", "3"});
  AttackPlan plan(o, 0, 1);
  std::vector<std::string> seen;
  for (int i = 0; i < 6; ++i) {
    Guess g = plan.Next();
    seen.push_back(std::string(g.user) + " " + g.password);
  }
  EXPECT_EQ(seen,
            (std::vector<std::string>{
                "victim0@example.com wrong-0", "victim1@example.com wrong-0",
                "victim2@example.com wrong-0", "victim0@example.com wrong-1",
                "victim1@example.com wrong-1", "victim2@example.com wrong-1"}));
  // One source address: always it.
  EXPECT_EQ(plan.NextSource(), 0x7f000002u);
  EXPECT_EQ(plan.NextSource(), 0x7f000002u);
}

TEST(AttackPlanTest, StuffingWorkersNeverRepeatAPassword) {
  Options o = MustParse({"--target", "127.0.0.1:1110", "--attackers", "2",
                         "--threads", "2", "--concurrency", "2", "--attack",
                         "stuff", "--attack-source", "127.0.0.3-127.0.0.6"});
  AttackPlan a(o, 0, 2);
  AttackPlan b(o, 1, 2);
  std::set<std::string> passwords;
  for (int i = 0; i < 50; ++i) {
    Guess ga = a.Next();
    Guess gb = b.Next();
    EXPECT_EQ(ga.user, "victim0@example.com");
    EXPECT_TRUE(passwords.insert(ga.password).second) << ga.password;
    EXPECT_TRUE(passwords.insert(gb.password).second) << gb.password;
  }
  // Worker 0 takes .3 and .5, worker 1 .4 and .6: every address in use.
  EXPECT_EQ(a.NextSource(), 0x7f000003u);
  EXPECT_EQ(a.NextSource(), 0x7f000005u);
  EXPECT_EQ(a.NextSource(), 0x7f000003u);
  EXPECT_EQ(b.NextSource(), 0x7f000004u);
  EXPECT_EQ(b.NextSource(), 0x7f000006u);
}

TEST(AttemptOutcomeTest, ClassifiesByResponseCode) {
  EXPECT_EQ(OutcomeOfErr("-ERR [AUTH] Authentication failed."),
            AttemptOutcome::kAuth);
  EXPECT_EQ(OutcomeOfErr("-ERR [SYS/TEMP] try later"),
            AttemptOutcome::kSysTemp);
  EXPECT_EQ(OutcomeOfErr("-ERR [IN-USE] locked"), AttemptOutcome::kInUse);
  EXPECT_EQ(OutcomeOfErr("-ERR [SYS/PERM] no"), AttemptOutcome::kOtherCode);
  EXPECT_EQ(OutcomeOfErr("-ERR [LOGIN-DELAY] wait"),
            AttemptOutcome::kOtherCode);
  EXPECT_EQ(OutcomeOfErr("-ERR Invalid login or password"),
            AttemptOutcome::kNoCode);
  EXPECT_EQ(OutcomeOfErr("-ERR [unterminated"), AttemptOutcome::kNoCode);
  EXPECT_EQ(OutcomeOfErr("-ERR"), AttemptOutcome::kNoCode);
}

TEST(AttackStatsTest, OutcomesAddUpAndMerge) {
  AttackStats a;
  a.Add(AttemptOutcome::kAuth, 1000);
  a.Add(AttemptOutcome::kSysTemp, 2000);
  a.Add(AttemptOutcome::kTimeout, 3000);
  a.Add(AttemptOutcome::kAccepted, 4000);
  a.connections = 2;
  AttackStats b;
  b.Add(AttemptOutcome::kClosed, 5000);
  b.connections = 1;
  a.Merge(b);
  EXPECT_EQ(a.attempts, 5u);
  EXPECT_EQ(a.connections, 3u);
  // Timeouts (we gave up) and right guesses are not rejections.
  EXPECT_EQ(a.rejected(), 3u);
  EXPECT_EQ(a.latency_ns.count(), 5u);
  for (size_t i = 0; i < static_cast<size_t>(AttemptOutcome::kCount); ++i) {
    EXPECT_NE(AttemptOutcomeName(static_cast<AttemptOutcome>(i)), "?");
  }
}

TEST(AttackReportTest, KeysOnlyWithAttackers) {
  Report r;
  r.duration_s = 2;
  r.wall_s = 2;
  std::string plain = ToJson(r);
  EXPECT_EQ(plain.find("\"attack\""), std::string::npos);
  EXPECT_EQ(plain.find("login_latency_ms"), std::string::npos);
  r.attack = true;
  r.attackers = 4;
  r.stats.attack.Add(AttemptOutcome::kSysTemp, 1000000);
  r.stats.attack.Add(AttemptOutcome::kAuth, 1000000);
  std::string j = ToJson(r);
  EXPECT_NE(j.find("\"login_latency_ms\":{"), std::string::npos);
  EXPECT_NE(j.find("\"attack\":{\"attackers\":4,\"pattern\":\"spray\""),
            std::string::npos);
  EXPECT_NE(j.find("\"attempts\":2,\"attempts_per_s\":1.000"),
            std::string::npos);
  EXPECT_NE(j.find("\"sys_temp\":1"), std::string::npos);
  // The attack object closes before the report does.
  EXPECT_EQ(j.substr(j.size() - 2), "}}");
}

}  // namespace
}  // namespace popgate::loadgen
