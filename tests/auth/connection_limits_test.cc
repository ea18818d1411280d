#include "auth/connection_limits.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(ConnectionLimitsTest, NoLimitsCountsEverything) {
  ConnectionLimits l;
  const ConnectionLimitSettings none;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(l.Admit("192.0.2.1", none, kT0), ConnectionRefusal::kNone);
  }
  EXPECT_EQ(l.connections(), 100);
  EXPECT_EQ(l.connections("192.0.2.1"), 100);
  EXPECT_EQ(l.prelogin("192.0.2.1"), 100);
  EXPECT_EQ(l.connections("192.0.2.2"), 0);
  for (int i = 0; i < 100; ++i) l.Release("192.0.2.1", false);
  EXPECT_EQ(l.connections(), 0);
  EXPECT_EQ(l.connections("192.0.2.1"), 0);
  EXPECT_EQ(l.prelogin("192.0.2.1"), 0);
}

TEST(ConnectionLimitsTest, PerAddress) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_per_address = 3;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
    l.LoggedIn("a");  // logged-in connections count here too
  }
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kPerAddress);
  // A refusal counts nothing.
  EXPECT_EQ(l.connections("a"), 3);
  EXPECT_EQ(l.connections(), 3);
  // Another address is not affected.
  EXPECT_EQ(l.Admit("b", s, kT0), ConnectionRefusal::kNone);
  l.Release("a", true);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.connections("a"), 3);
}

TEST(ConnectionLimitsTest, PreloginPerAddress) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_prelogin_per_address = 2;
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kPreloginPerAddress);
  // Logged-in connections leave the pre-login count.
  l.LoggedIn("a");
  EXPECT_EQ(l.prelogin("a"), 1);
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  l.LoggedIn("a");
  l.LoggedIn("a");
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kPreloginPerAddress);
  EXPECT_EQ(l.connections("a"), 5);
  EXPECT_EQ(l.prelogin("a"), 2);
  // A pre-login connection that ends frees its slot; a logged-in one's
  // end does not touch the pre-login count.
  l.Release("a", true);
  EXPECT_EQ(l.prelogin("a"), 2);
  l.Release("a", false);
  EXPECT_EQ(l.prelogin("a"), 1);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
}

TEST(ConnectionLimitsTest, LoggedOutCountsAsPreloginAgain) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_prelogin_per_address = 1;
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  l.LoggedIn("a");
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  // The first one's backend login failed: pre-login again.
  l.LoggedOut("a");
  EXPECT_EQ(l.prelogin("a"), 2);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kPreloginPerAddress);
  // Never more pre-login than open.
  l.LoggedOut("a");
  EXPECT_EQ(l.prelogin("a"), 2);
  l.Release("a", false);
  l.Release("a", false);
  EXPECT_EQ(l.connections("a"), 0);
  EXPECT_EQ(l.prelogin("a"), 0);
}

TEST(ConnectionLimitsTest, NewConnectionsPerSecond) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_new_per_address_per_second = 3;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(l.Admit("a", s, kT0 + absl::Milliseconds(100 * i)),
              ConnectionRefusal::kNone);
    l.Release("a", false);  // closing again does not give the slot back
  }
  EXPECT_EQ(l.Admit("a", s, kT0 + absl::Milliseconds(900)),
            ConnectionRefusal::kRate);
  EXPECT_EQ(l.Admit("b", s, kT0 + absl::Milliseconds(900)),
            ConnectionRefusal::kNone);
  // The next second starts a new count.
  EXPECT_EQ(l.Admit("a", s, kT0 + absl::Seconds(1)), ConnectionRefusal::kNone);
  // Refused attempts count too: a flood stays refused while it goes on.
  const absl::Time t2 = kT0 + absl::Seconds(2);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(l.Admit("c", s, t2), ConnectionRefusal::kNone);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(l.Admit("c", s, t2), ConnectionRefusal::kRate);
  }
  EXPECT_EQ(l.connections("c"), 3);
}

TEST(ConnectionLimitsTest, Total) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_connections = 2;
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  ASSERT_EQ(l.Admit("b", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.Admit("c", s, kT0), ConnectionRefusal::kTotal);
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kTotal);
  EXPECT_EQ(l.connections(), 2);
  EXPECT_EQ(l.connections("c"), 0);
  l.Release("b", false);
  EXPECT_EQ(l.Admit("c", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.connections(), 2);
}

TEST(ConnectionLimitsTest, MostSpecificRefusalFirst) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_connections = 1;
  s.max_per_address = 1;
  s.max_prelogin_per_address = 1;
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  // Full in every way: the reply names the address's own limit.
  EXPECT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kPerAddress);
  EXPECT_EQ(l.Admit("b", s, kT0), ConnectionRefusal::kTotal);
}

TEST(ConnectionLimitsTest, UnpairedCallsChangeNothing) {
  ConnectionLimits l;
  l.Release("nobody", false);
  l.LoggedIn("nobody");
  l.ReleaseTenant("none");
  EXPECT_EQ(l.connections(), 0);
  EXPECT_EQ(l.tracked_groups(), 0u);
  ASSERT_EQ(l.Admit("a", {}, kT0), ConnectionRefusal::kNone);
  l.Release("a", false);
  l.Release("a", false);
  EXPECT_EQ(l.connections(), 0);
  EXPECT_EQ(l.connections("a"), 0);
}

TEST(ConnectionLimitsTest, TableHoldsOnlyLiveAddresses) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_new_per_address_per_second = 5;
  // Seen this second: kept for the rate, even with nothing open.
  for (int i = 0; i < 10000; ++i) {
    const std::string g = absl::StrCat("10.0.", i / 256, ".", i % 256);
    ASSERT_EQ(l.Admit(g, s, kT0), ConnectionRefusal::kNone);
    l.Release(g, false);
  }
  EXPECT_EQ(l.tracked_groups(), 10000u);
  // A later second: the first touch of each shard sweeps it; what is left
  // is what is open or seen in this second.
  const absl::Time t1 = kT0 + absl::Seconds(1);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(l.Admit(absl::StrCat("b", i), s, t1), ConnectionRefusal::kNone);
  }
  EXPECT_EQ(l.tracked_groups(), 1000u);
  // Closed in a second after their rate second: gone at once.
  const absl::Time t2 = kT0 + absl::Seconds(2);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(l.Admit(absl::StrCat("c", i), s, t2), ConnectionRefusal::kNone);
    l.Release(absl::StrCat("c", i), false);
  }
  for (int i = 0; i < 1000; ++i) l.Release(absl::StrCat("b", i), false);
  // The b entries were last seen in t1 and are gone; the c ones were seen
  // in t2 and stay until a later second.
  EXPECT_EQ(l.tracked_groups(), 1000u);
  EXPECT_EQ(l.connections(), 0);
}

TEST(ConnectionLimitsTest, ClockSteppingBackKeepsTheWindow) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_new_per_address_per_second = 1;
  ASSERT_EQ(l.Admit("a", s, kT0), ConnectionRefusal::kNone);
  EXPECT_EQ(l.Admit("a", s, kT0 - absl::Seconds(3)), ConnectionRefusal::kRate);
}

TEST(ConnectionLimitsTest, TenantSessions) {
  ConnectionLimits l;
  EXPECT_TRUE(l.AcquireTenant("t", 2));
  EXPECT_TRUE(l.AcquireTenant("t", 2));
  EXPECT_FALSE(l.AcquireTenant("t", 2));
  EXPECT_EQ(l.tenant_sessions("t"), 2);
  EXPECT_TRUE(l.AcquireTenant("u", 2));  // per tenant
  l.ReleaseTenant("t");
  EXPECT_TRUE(l.AcquireTenant("t", 2));
  // No limit: counted all the same.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(l.AcquireTenant("v", 0));
  EXPECT_EQ(l.tenant_sessions("v"), 5);
  for (int i = 0; i < 5; ++i) l.ReleaseTenant("v");
  EXPECT_EQ(l.tenant_sessions("v"), 0);
  EXPECT_EQ(l.tenant_sessions("nobody"), 0);
}

// Workers on several threads share one table: no limit is ever exceeded,
// and everything is back to zero once they are done.
TEST(ConnectionLimitsTest, Threads) {
  ConnectionLimits l;
  ConnectionLimitSettings s;
  s.max_connections = 40;
  s.max_per_address = 5;
  s.max_prelogin_per_address = 3;
  constexpr int kGroups = 16;
  constexpr int kThreads = 8;
  constexpr int kRounds = 20000;
  std::vector<std::atomic<int>> held(kGroups);
  std::vector<std::atomic<int>> held_prelogin(kGroups);
  std::atomic<int> held_total{0};
  std::atomic<int> over{0};
  std::atomic<int> admitted{0};
  std::atomic<int> tenant_over{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const int g = (i * 7 + t) % kGroups;
        const std::string group = absl::StrCat("g", g);
        if (l.Admit(group, s, kT0) != ConnectionRefusal::kNone) continue;
        admitted.fetch_add(1);
        if (held.at(g).fetch_add(1) + 1 > s.max_per_address) over.fetch_add(1);
        if (held_prelogin.at(g).fetch_add(1) + 1 > s.max_prelogin_per_address) {
          over.fetch_add(1);
        }
        if (held_total.fetch_add(1) + 1 > s.max_connections) over.fetch_add(1);
        const bool login = i % 2 == 0;
        if (login) {
          held_prelogin.at(g).fetch_sub(1);
          l.LoggedIn(group);
          if (l.AcquireTenant("t", 4)) {
            if (l.tenant_sessions("t") > 4) tenant_over.fetch_add(1);
            l.ReleaseTenant("t");
          }
        }
        held_total.fetch_sub(1);
        held.at(g).fetch_sub(1);
        if (!login) held_prelogin.at(g).fetch_sub(1);
        l.Release(group, login);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(tenant_over.load(), 0);
  EXPECT_GT(admitted.load(), kThreads * kRounds / 10);
  EXPECT_EQ(l.connections(), 0);
  for (int g = 0; g < kGroups; ++g) {
    EXPECT_EQ(l.connections(absl::StrCat("g", g)), 0);
    EXPECT_EQ(l.prelogin(absl::StrCat("g", g)), 0);
  }
  EXPECT_EQ(l.tenant_sessions("t"), 0);
}

TEST(ConnectionLimitsTest, ProcessIsOneInstance) {
  EXPECT_EQ(&ConnectionLimits::Process(), &ConnectionLimits::Process());
}

}  // namespace
}  // namespace popgate::auth
