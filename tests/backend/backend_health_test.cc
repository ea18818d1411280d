// BackendHealth's state machine (rise/fall, passive marking, passive-only
// expiry by `now`), its log line, exactly-once transitions under threads,
// the max_connections slots, and HealthRegistry's identity across rebuilds.
#include "backend/backend_health.h"

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

HealthCheckConfig Policy(bool active, bool passive, int rise = 2, int fall = 3,
                         absl::Duration interval = absl::Seconds(5)) {
  HealthCheckConfig p;
  p.active = active;
  p.passive = passive;
  p.rise = rise;
  p.fall = fall;
  p.interval = interval;
  return p;
}

// A flat JSON object of string values (what the log line is), parsed
// strictly: nullopt on anything else, so a malformed line fails the test.
std::optional<std::map<std::string, std::string>> ParseFlatJson(
    std::string_view s) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto parse_string = [&](std::string& into) -> bool {
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        into.push_back(c);
        continue;
      }
      if (i >= s.size()) return false;
      char e = s[i++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          into.push_back(e);
          break;
        case 'n':
          into.push_back('\n');
          break;
        case 'r':
          into.push_back('\r');
          break;
        case 't':
          into.push_back('\t');
          break;
        case 'b':
          into.push_back('\b');
          break;
        case 'f':
          into.push_back('\f');
          break;
        case 'u': {
          if (i + 4 > s.size()) return false;
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s[i++];
            v <<= 4;
            if (h >= '0' && h <= '9') {
              v |= h - '0';
            } else if (h >= 'a' && h <= 'f') {
              v |= h - 'a' + 10;
            } else if (h >= 'A' && h <= 'F') {
              v |= h - 'A' + 10;
            } else {
              return false;
            }
          }
          if (v > 0xff) return false;  // the escaper writes bytes only
          into.push_back(static_cast<char>(v));
          break;
        }
        default:
          return false;
      }
    }
    if (i >= s.size()) return false;
    ++i;
    return true;
  };
  if (s.empty() || s[i++] != '{') return std::nullopt;
  while (true) {
    std::string key, value;
    if (!parse_string(key)) return std::nullopt;
    if (i >= s.size() || s[i++] != ':') return std::nullopt;
    if (!parse_string(value)) return std::nullopt;
    if (!out.emplace(key, value).second) return std::nullopt;  // duplicate
    if (i >= s.size()) return std::nullopt;
    if (s[i] == ',') {
      ++i;
      continue;
    }
    if (s[i] != '}') return std::nullopt;
    ++i;
    break;
  }
  if (i != s.size()) return std::nullopt;
  return out;
}

// Parses a returned log line: one line ending in "\n", a flat object.
std::map<std::string, std::string> Fields(const std::optional<std::string>& l) {
  EXPECT_TRUE(l.has_value());
  if (!l) return {};
  EXPECT_TRUE(absl::EndsWith(*l, "}\n")) << *l;
  EXPECT_EQ(l->find('\n'), l->size() - 1) << *l;
  std::optional<std::map<std::string, std::string>> f =
      ParseFlatJson(std::string_view(*l).substr(0, l->size() - 1));
  EXPECT_TRUE(f.has_value()) << *l;
  return f.value_or(std::map<std::string, std::string>{});
}

TEST(HealthStateName, Stable) {
  EXPECT_EQ(HealthStateName(HealthState::kUnknown), "unknown");
  EXPECT_EQ(HealthStateName(HealthState::kUp), "up");
  EXPECT_EQ(HealthStateName(HealthState::kDown), "down");
}

TEST(BackendHealth, StartsUnknownAndUsable) {
  BackendHealth h("t", "10.0.0.1:110");
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
  EXPECT_TRUE(h.usable(kT0));
  EXPECT_EQ(h.tenant(), "t");
  EXPECT_EQ(h.address(), "10.0.0.1:110");
}

TEST(BackendHealth, UnknownToUpAfterRiseGoodChecks) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, /*rise=*/3, /*fall=*/2));
  EXPECT_EQ(h.RecordCheck(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.RecordCheck(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
  auto f = Fields(h.RecordCheck(true, "ok", kT0));
  EXPECT_EQ(f["from"], "unknown");
  EXPECT_EQ(f["to"], "up");
  EXPECT_EQ(f["level"], "info");
  EXPECT_EQ(f["source"], "check");
  EXPECT_EQ(f["reason"], "3 good checks");
  EXPECT_EQ(h.state(kT0), HealthState::kUp);
  // More good checks change nothing and say nothing.
  EXPECT_EQ(h.RecordCheck(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kUp);
}

TEST(BackendHealth, UnknownToDownAfterFallFailures) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 3));
  EXPECT_EQ(h.RecordCheck(false, "connect: refused", kT0), std::nullopt);
  EXPECT_EQ(h.RecordCheck(false, "connect: refused", kT0), std::nullopt);
  EXPECT_TRUE(h.usable(kT0));
  auto f = Fields(h.RecordCheck(false, "connect: refused", kT0));
  EXPECT_EQ(f["from"], "unknown");
  EXPECT_EQ(f["to"], "down");
  EXPECT_EQ(f["level"], "warning");
  EXPECT_TRUE(absl::StrContains(f["reason"], "connect: refused"))
      << f["reason"];
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
  EXPECT_FALSE(h.usable(kT0));
  // With active checks a down never expires by itself.
  EXPECT_EQ(h.state(kT0 + absl::Hours(24)), HealthState::kDown);
  EXPECT_EQ(h.RecordCheck(false, "connect: refused", kT0), std::nullopt);
}

TEST(BackendHealth, UpDownUpCycle) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 2));
  h.RecordCheck(true, "ok", kT0);
  ASSERT_TRUE(h.RecordCheck(true, "ok", kT0).has_value());
  ASSERT_EQ(h.state(kT0), HealthState::kUp);
  EXPECT_EQ(h.RecordCheck(false, "greeting: timeout", kT0), std::nullopt);
  auto down = Fields(h.RecordCheck(false, "greeting: timeout", kT0));
  EXPECT_EQ(down["from"], "up");
  EXPECT_EQ(down["to"], "down");
  EXPECT_EQ(h.RecordCheck(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
  auto up = Fields(h.RecordCheck(true, "ok", kT0));
  EXPECT_EQ(up["from"], "down");
  EXPECT_EQ(up["to"], "up");
  EXPECT_EQ(up["reason"], "2 good checks");
}

TEST(BackendHealth, OppositeOutcomeResetsTheStreak) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 3));
  // fail fail good fail fail: never three failures in a row.
  for (bool ok : {false, false, true, false, false}) {
    EXPECT_EQ(h.RecordCheck(ok, "x", kT0), std::nullopt);
  }
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
  ASSERT_TRUE(h.RecordCheck(false, "x", kT0).has_value());  // the third
  // good fail good: never two good in a row.
  for (bool ok : {true, false, true}) {
    EXPECT_EQ(h.RecordCheck(ok, "x", kT0), std::nullopt);
  }
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
  ASSERT_TRUE(h.RecordCheck(true, "ok", kT0).has_value());
  EXPECT_EQ(h.state(kT0), HealthState::kUp);
}

TEST(BackendHealth, PassiveFailuresCountWithChecks) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 3));
  h.RecordCheck(false, "check", kT0);
  h.RecordLogin(false, "login", kT0);
  auto f = Fields(h.RecordLogin(false, "connect: Connection refused", kT0));
  EXPECT_EQ(f["to"], "down");
  EXPECT_EQ(f["source"], "login");
  EXPECT_TRUE(absl::StrContains(f["reason"], "connect: Connection refused"));
  // Active: the down lasts until checks bring it back, not an interval.
  EXPECT_EQ(h.state(kT0 + absl::Hours(1)), HealthState::kDown);
  // A login's greeting does not end an active down (only rise checks do).
  EXPECT_EQ(h.RecordLogin(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
}

TEST(BackendHealth, GoodLoginClearsTheFailureStreak) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 3));
  h.RecordLogin(false, "x", kT0);
  h.RecordLogin(false, "x", kT0);
  EXPECT_EQ(h.RecordLogin(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.RecordLogin(false, "x", kT0), std::nullopt);
  EXPECT_EQ(h.RecordCheck(false, "x", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
}

TEST(BackendHealth, PassiveOffIgnoresLogins) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, /*passive=*/false, 2, 1));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(h.RecordLogin(false, "x", kT0), std::nullopt);
  }
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
  // Nor do they feed the checks' streak: one failed check (fall 1) downs
  // it, one good login does not reset that.
  ASSERT_TRUE(h.RecordCheck(false, "x", kT0).has_value());
  h.RecordCheck(true, "ok", kT0);
  EXPECT_EQ(h.RecordLogin(true, "ok", kT0), std::nullopt);
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
}

TEST(BackendHealth, PassiveOnlyDownExpiresAfterOneInterval) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(/*active=*/false, true, 2, 3, absl::Seconds(5)));
  h.RecordLogin(false, "x", kT0);
  h.RecordLogin(false, "x", kT0);
  const absl::Time t_down = kT0 + absl::Milliseconds(10);
  auto f = Fields(h.RecordLogin(false, "greeting: timeout", t_down));
  EXPECT_EQ(f["to"], "down");
  EXPECT_EQ(f["source"], "login");
  EXPECT_EQ(h.state(t_down), HealthState::kDown);
  EXPECT_EQ(h.state(t_down + absl::Seconds(5) - absl::Nanoseconds(1)),
            HealthState::kDown);
  // One interval on, the next login may try it.
  const absl::Time t_retry = t_down + absl::Seconds(5);
  EXPECT_EQ(h.state(t_retry), HealthState::kUnknown);
  EXPECT_TRUE(h.usable(t_retry));
  // That retry fails: down again for another interval, without a new line
  // (the backend never stopped being down).
  EXPECT_EQ(h.RecordLogin(false, "greeting: timeout", t_retry), std::nullopt);
  EXPECT_EQ(h.state(t_retry), HealthState::kDown);
  EXPECT_EQ(h.state(t_retry + absl::Seconds(5) - absl::Nanoseconds(1)),
            HealthState::kDown);
  EXPECT_EQ(h.state(t_retry + absl::Seconds(5)), HealthState::kUnknown);
  // A later retry gets a greeting: the down ends, with a line.
  auto back = Fields(h.RecordLogin(true, "ok", t_retry + absl::Seconds(6)));
  EXPECT_EQ(back["from"], "down");
  EXPECT_EQ(back["to"], "unknown");
  EXPECT_EQ(back["level"], "info");
  EXPECT_EQ(back["source"], "login");
  EXPECT_EQ(h.state(t_retry), HealthState::kUnknown);  // not by time: by state
  // And the streak starts over: fall failures again to go down.
  EXPECT_EQ(h.RecordLogin(false, "x", t_retry), std::nullopt);
  EXPECT_EQ(h.RecordLogin(false, "x", t_retry), std::nullopt);
  EXPECT_TRUE(h.RecordLogin(false, "x", t_retry).has_value());
}

TEST(BackendHealth, ChecksTurnedOffDoNotLeaveABackendDownForever) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 2, 1));
  ASSERT_TRUE(h.RecordCheck(false, "x", kT0).has_value());
  EXPECT_EQ(h.state(kT0), HealthState::kDown);
  // A reload turns checks off: nothing would bring it back, so it is
  // usable at once (passive marking downs it again if it is still dead).
  h.SetPolicy(Policy(false, true, 2, 1));
  EXPECT_EQ(h.state(kT0), HealthState::kUnknown);
}

TEST(BackendHealth, LogLineHasEveryFieldEscaped) {
  BackendHealth h("ten\"ant\n", "[2001:db8::1]:995");
  h.SetPolicy(Policy(true, true, 1, 1));
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2026, 12, 1, 23, 59, 59),
                      absl::UTCTimeZone()) +
      absl::Milliseconds(123);
  std::optional<std::string> line =
      h.RecordCheck(false, "greeting: \"-ERR\"\r\nbad\x01", t);
  auto f = Fields(line);
  EXPECT_EQ(f.size(), 9u) << *line;
  EXPECT_EQ(f["time"], "2026-12-01T23:59:59.123Z");
  EXPECT_EQ(f["level"], "warning");
  EXPECT_EQ(f["event"], "backend_health");
  EXPECT_EQ(f["tenant"], "ten\"ant\n");
  EXPECT_EQ(f["backend"], "[2001:db8::1]:995");
  EXPECT_EQ(f["from"], "unknown");
  EXPECT_EQ(f["to"], "down");
  EXPECT_TRUE(absl::StrContains(f["reason"], "greeting: \"-ERR\"\r\nbad\x01"))
      << f["reason"];
  EXPECT_EQ(f["source"], "check");
  // The field order operators' docs show.
  EXPECT_TRUE(absl::StartsWith(*line,
                               "{\"time\":\"2026-12-01T23:59:59.123Z\","
                               "\"level\":\"warning\",\"event\":"
                               "\"backend_health\",\"tenant\":"))
      << *line;
}

// Eight threads record the same outcome at once, phase after phase: each
// phase moves the state once, so exactly one line per phase. With rise and
// fall 1 every thread's record of a phase would change the state: only
// the compare-exchange keeps it to one line.
TEST(BackendHealth, ConcurrentRecordsMakeOneLinePerTransition) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 1, 1));
  constexpr int kThreads = 8;
  constexpr int kPhases = 20000;
  std::atomic<int> lines{0};
  std::atomic<int> to_down{0}, to_up{0};
  std::atomic<int> phase_started{-1};
  std::atomic<int> done_in_phase{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int phase = 0; phase < kPhases; ++phase) {
        while (phase_started.load(std::memory_order_acquire) < phase) {
          std::this_thread::yield();
        }
        const bool ok = phase % 2 == 1;  // down, up, down, ...
        // Failures come from logins and checks alike.
        std::optional<std::string> l =
            ok ? h.RecordCheck(true, "ok", kT0)
               : (t % 2 == 0 ? h.RecordLogin(false, "x", kT0)
                             : h.RecordCheck(false, "x", kT0));
        if (l) {
          lines.fetch_add(1);
          (absl::StrContains(*l, "\"to\":\"down\"") ? to_down : to_up)
              .fetch_add(1);
        }
        done_in_phase.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  int bad_phase = -1;
  for (int phase = 0; phase < kPhases; ++phase) {
    done_in_phase.store(0);
    phase_started.store(phase, std::memory_order_release);
    while (done_in_phase.load(std::memory_order_acquire) < kThreads) {
      std::this_thread::yield();
    }
    if (bad_phase < 0 && lines.load() != phase + 1) bad_phase = phase;
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad_phase, -1);
  EXPECT_EQ(lines.load(), kPhases);
  EXPECT_EQ(to_down.load(), kPhases / 2);
  EXPECT_EQ(to_up.load(), kPhases / 2);
  EXPECT_EQ(h.state(kT0), HealthState::kUp);
}

// Mixed outcomes from eight threads: whatever the interleaving, the lines
// form one path through the states (each starts where the last ended).
TEST(BackendHealth, ConcurrentMixedRecordsFormOnePath) {
  BackendHealth h("t", "b:110");
  h.SetPolicy(Policy(true, true, 1, 1));
  constexpr int kThreads = 8;
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, int> edges;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const bool ok = (i + t) % 3 != 0;
        std::optional<std::string> l = h.RecordCheck(ok, "x", kT0);
        if (!l) continue;
        auto f = ParseFlatJson(std::string_view(*l).substr(0, l->size() - 1));
        ASSERT_TRUE(f.has_value());
        std::lock_guard<std::mutex> lock(mu);
        ++edges[{(*f)["from"], (*f)["to"]}];
      }
    });
  }
  for (auto& th : threads) th.join();
  auto count = [&edges](const char* from, const char* to) {
    auto it = edges.find({from, to});
    return it == edges.end() ? 0 : it->second;
  };
  int total = 0;
  for (const auto& [edge, n] : edges) total += n;
  // Only these four edges exist; the first leaves unknown, the rest
  // alternate between up and down.
  EXPECT_EQ(count("unknown", "up") + count("unknown", "down"), 1);
  EXPECT_EQ(total, count("unknown", "up") + count("unknown", "down") +
                       count("up", "down") + count("down", "up"));
  const int into_up = count("down", "up") + count("unknown", "up");
  const int into_down = count("up", "down") + count("unknown", "down");
  const int out_of_up = count("up", "down");
  const int out_of_down = count("down", "up");
  // Every state entered was left again, except the one it ends in.
  const bool ends_up = h.state(kT0) == HealthState::kUp;
  EXPECT_EQ(into_up - out_of_up, ends_up ? 1 : 0);
  EXPECT_EQ(into_down - out_of_down, ends_up ? 0 : 1);
  EXPECT_GT(out_of_up + out_of_down, 0);  // it did move back and forth
}

TEST(BackendHealth, SessionSlotsNeverExceedMax) {
  BackendHealth h("t", "b:110");
  constexpr uint32_t kMax = 5;
  std::atomic<uint32_t> high{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!h.TryAcquire(kMax)) {
          refused.fetch_add(1);
          continue;
        }
        uint32_t now = h.sessions();
        uint32_t prev = high.load();
        while (now > prev && !high.compare_exchange_weak(prev, now)) {
        }
        h.Release();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(high.load(), kMax);
  EXPECT_GE(high.load(), 1u);
  EXPECT_EQ(h.sessions(), 0u);
}

TEST(BackendHealth, SessionSlotsExactlyAtMax) {
  BackendHealth h("t", "b:110");
  EXPECT_TRUE(h.TryAcquire(2));
  EXPECT_TRUE(h.TryAcquire(2));
  EXPECT_FALSE(h.TryAcquire(2));
  EXPECT_EQ(h.sessions(), 2u);
  h.Release();
  EXPECT_TRUE(h.TryAcquire(2));
  // max 0: no limit, still counted.
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(h.TryAcquire(0));
  EXPECT_EQ(h.sessions(), 102u);
}

TEST(HealthRegistry, SameBackendSameStateAcrossRebuilds) {
  HealthRegistry reg;
  std::shared_ptr<BackendHealth> a = reg.Get("t", "10.0.0.1:110");
  a->SetPolicy(Policy(true, true, 1, 1));
  ASSERT_TRUE(a->RecordCheck(false, "x", kT0).has_value());
  ASSERT_TRUE(a->TryAcquire(0));
  // A reload builds a new snapshot while the old one still holds `a`.
  std::shared_ptr<BackendHealth> again = reg.Get("t", "10.0.0.1:110");
  EXPECT_EQ(again.get(), a.get());
  EXPECT_EQ(again->state(kT0), HealthState::kDown);
  EXPECT_EQ(again->sessions(), 1u);
  // Another tenant, or another address, is another backend.
  EXPECT_NE(reg.Get("u", "10.0.0.1:110").get(), a.get());
  EXPECT_NE(reg.Get("t", "10.0.0.1:111").get(), a.get());
  // The separator keeps "t"+"x:1" apart from "tx"+":1" and the like.
  EXPECT_NE(reg.Get("a", "b:1").get(),
            reg.Get(std::string_view("a\0b", 3), ":1").get());
}

TEST(HealthRegistry, ExpiredEntriesAreReplacedAndSwept) {
  HealthRegistry reg;
  BackendHealth* old_ptr = nullptr;
  {
    std::shared_ptr<BackendHealth> a = reg.Get("t", "b:110");
    a->SetPolicy(Policy(true, true, 1, 1));
    a->RecordCheck(false, "x", kT0);
    old_ptr = a.get();
  }
  // No snapshot names it any more: a later Get starts afresh.
  std::shared_ptr<BackendHealth> fresh = reg.Get("t", "b:110");
  EXPECT_EQ(fresh->state(kT0), HealthState::kUnknown);
  (void)old_ptr;
  // Many backends come and go (reloads renaming them): the map does not
  // keep every name ever seen.
  for (int round = 0; round < 50; ++round) {
    std::vector<std::shared_ptr<BackendHealth>> held;
    for (int i = 0; i < 20; ++i) {
      held.push_back(reg.Get(
          "t", "r" + std::to_string(round) + "-" + std::to_string(i) + ":110"));
    }
  }
  EXPECT_LT(reg.size(), 100u);
  EXPECT_EQ(reg.Get("t", "b:110").get(), fresh.get());  // held: kept
}

}  // namespace
}  // namespace popgate
