#include "auth/login_counters.h"

#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

using std::literals::string_view_literals::operator""sv;

// W = 100 s, so bucket edges fall on multiples of 100 unix seconds.
ThrottleSettings Settings() {
  ThrottleSettings s;
  s.window = absl::Seconds(100);
  s.address_failures_to_block = 0;
  s.user_failures_to_block = 0;
  s.address_users_to_block = 0;
  s.block_time = absl::Seconds(30);
  return s;
}

absl::Time At(int64_t unix_seconds) {
  return absl::FromUnixSeconds(unix_seconds);
}

TEST(LoginCountersTest, NothingCountedAnswersZero) {
  LoginCounters c;
  const LoginCounts n = c.Look("192.0.2.1", "t\0u"sv, Settings(), At(1000));
  EXPECT_EQ(n.address_failures, 0);
  EXPECT_EQ(n.user_failures, 0);
  EXPECT_EQ(n.address_users, 0);
  EXPECT_FALSE(n.address_blocked);
  EXPECT_FALSE(n.user_blocked);
  EXPECT_EQ(c.address_entries(), 0u);
}

TEST(LoginCountersTest, CountsPerAddressAndPerUser) {
  LoginCounters c;
  const ThrottleSettings s = Settings();
  c.RecordFailure("192.0.2.1", "alice", s, At(1000));
  c.RecordFailure("192.0.2.1", "bob", s, At(1001));
  const LoginCounts after = c.RecordFailure("192.0.2.2", "alice", s, At(1002));
  EXPECT_EQ(after.address_failures, 1);
  EXPECT_EQ(after.user_failures, 2);
  const LoginCounts n = c.Look("192.0.2.1", "bob", s, At(1003));
  EXPECT_EQ(n.address_failures, 2);
  EXPECT_EQ(n.address_users, 2);
  EXPECT_EQ(n.user_failures, 1);
}

TEST(LoginCountersTest, EmptyAddressOrUserIsNotCounted) {
  LoginCounters c;
  const ThrottleSettings s = Settings();
  LoginCounts r = c.RecordFailure("", "alice", s, At(1000));
  EXPECT_EQ(r.address_failures, 0);
  EXPECT_EQ(r.user_failures, 1);
  r = c.RecordFailure("192.0.2.1", "", s, At(1000));
  EXPECT_EQ(r.address_failures, 1);
  EXPECT_EQ(r.address_users, 0);  // no user: not among the failing users
  EXPECT_EQ(r.user_failures, 0);
  EXPECT_EQ(c.user_entries(), 1u);
}

// count(t) = cur + floor(prev * (W - (t - b*W)) / W).
TEST(LoginCountersTest, SlidingWindowAtBucketEdges) {
  LoginCounters c;
  const ThrottleSettings s = Settings();
  for (int i = 0; i < 10; ++i) c.RecordFailure("a", "", s, At(1050));
  auto count = [&](int64_t t) {
    return c.Look("a", "", s, At(t)).address_failures;
  };
  EXPECT_EQ(count(1050), 10);
  EXPECT_EQ(count(1099), 10);  // last second of bucket 10
  EXPECT_EQ(count(1100), 10);  // bucket 11: prev 10 * (100 - 0) / 100
  EXPECT_EQ(count(1101), 9);   // 10 * 99 / 100 = 9.9 -> 9
  EXPECT_EQ(count(1150), 5);
  EXPECT_EQ(count(1191), 0);  // 10 * 9 / 100 = 0.9 -> 0
  EXPECT_EQ(count(1199), 0);
  EXPECT_EQ(count(1200), 0);  // two buckets on: gone

  // A failure in the next bucket: cur 1, prev 10.
  c.RecordFailure("a", "", s, At(1120));
  EXPECT_EQ(count(1120), 1 + 10 * 80 / 100);
  // Two buckets after the last failure: everything is gone.
  EXPECT_EQ(count(1300), 0);
  const LoginCounts r = c.RecordFailure("a", "", s, At(1300));
  EXPECT_EQ(r.address_failures, 1);
}

TEST(LoginCountersTest, DistinctUsersPerAddress) {
  LoginCounters c;
  const ThrottleSettings s = Settings();
  for (int i = 0; i < 3; ++i) c.RecordFailure("a", "same", s, At(1000 + i));
  EXPECT_EQ(c.Look("a", "", s, At(1003)).address_users, 1);
  for (int i = 0; i < 10; ++i) {
    c.RecordFailure("a", absl::StrCat("user", i), s, At(1010));
  }
  EXPECT_EQ(c.Look("a", "", s, At(1011)).address_users, 11);
  // A user counts for W after its last failure from the address.
  EXPECT_EQ(c.Look("a", "", s, At(1109)).address_users, 10);
  EXPECT_EQ(c.Look("a", "", s, At(1110)).address_users, 0);
}

TEST(LoginCountersTest, DistinctUsersSaturateAtTheCap) {
  LoginCounters c;
  const ThrottleSettings s = Settings();  // address_users_to_block = 0
  for (int i = 0; i < 500; ++i) {
    c.RecordFailure("a", absl::StrCat("user", i), s, At(1000));
  }
  EXPECT_EQ(c.Look("a", "", s, At(1000)).address_users,
            LoginCounters::kMaxUsersPerAddress);
}

TEST(LoginCountersTest, AddressBlockedAtThresholdOnceAndExpires) {
  LoginCounters c;
  ThrottleSettings s = Settings();
  s.address_failures_to_block = 3;
  EXPECT_FALSE(c.RecordFailure("a", "u1", s, At(1000)).address_blocked);
  EXPECT_FALSE(c.RecordFailure("a", "u1", s, At(1001)).address_blocked);
  const LoginCounts third = c.RecordFailure("a", "u1", s, At(1002));
  EXPECT_TRUE(third.address_blocked);
  EXPECT_TRUE(third.address_block_new);
  EXPECT_FALSE(third.user_blocked);
  // A failure counted while it runs (a race) does not set it again.
  const LoginCounts fourth = c.RecordFailure("a", "u1", s, At(1003));
  EXPECT_TRUE(fourth.address_blocked);
  EXPECT_FALSE(fourth.address_block_new);

  EXPECT_TRUE(c.Look("a", "other", s, At(1031)).address_blocked);
  EXPECT_FALSE(c.Look("b", "u1", s, At(1031)).address_blocked);
  EXPECT_FALSE(c.Look("a", "", s, At(1032)).address_blocked);  // 1002 + 30
}

TEST(LoginCountersTest, SprayingBlocksTheAddress) {
  LoginCounters c;
  ThrottleSettings s = Settings();
  s.address_users_to_block = 4;
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(c.RecordFailure("a", absl::StrCat("u", i), s, At(1000))
                     .address_blocked);
  }
  const LoginCounts r = c.RecordFailure("a", "u3", s, At(1000));
  EXPECT_EQ(r.address_users, 4);
  EXPECT_TRUE(r.address_block_new);
}

TEST(LoginCountersTest, StuffingBlocksTheUserFromEveryAddress) {
  LoginCounters c;
  ThrottleSettings s = Settings();
  s.user_failures_to_block = 4;
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(
        c.RecordFailure(absl::StrCat("10.0.0.", i), "victim", s, At(1000))
            .user_blocked);
  }
  const LoginCounts r = c.RecordFailure("10.0.0.9", "victim", s, At(1000));
  EXPECT_TRUE(r.user_blocked);
  EXPECT_TRUE(r.user_block_new);
  EXPECT_FALSE(r.address_blocked);
  EXPECT_TRUE(c.Look("10.9.9.9", "victim", s, At(1001)).user_blocked);
  EXPECT_FALSE(c.Look("10.9.9.9", "someone", s, At(1001)).user_blocked);
  EXPECT_FALSE(c.Look("10.9.9.9", "victim", s, At(1030)).user_blocked);
}

TEST(LoginCountersTest, EntriesExpireAfterTwoWindowsOrTheBlock) {
  LoginCounters c;
  ThrottleSettings s = Settings();
  s.block_time = absl::Seconds(1000);
  s.user_failures_to_block = 1;
  c.RecordFailure("a", "u", s, At(1000));
  EXPECT_EQ(c.address_entries(), 1u);
  c.Look("a", "", s, At(1200));  // 2W on: looking drops it
  EXPECT_EQ(c.address_entries(), 0u);
  EXPECT_TRUE(c.Look("", "u", s, At(1999)).user_blocked);  // the block holds
  EXPECT_EQ(c.user_entries(), 1u);
  c.Look("", "u", s, At(2000));
  EXPECT_EQ(c.user_entries(), 0u);
}

TEST(LoginCountersTest, BoundsHoldUnderAMillionDistinctKeys) {
  LoginCounters::Bounds b;
  b.max_addresses = 6400;
  b.max_users = 6400;
  LoginCounters c(b);
  const ThrottleSettings s = Settings();
  for (int i = 0; i < 1000000; ++i) {
    const std::string k = absl::StrCat("k", i);
    c.RecordFailure(k, k, s, At(1000 + i / 1000));
  }
  EXPECT_LE(c.address_entries(), 6400u);
  EXPECT_LE(c.user_entries(), 6400u);
  EXPECT_GT(c.address_entries(), 6000u);  // full, not emptied
  // The newest is still counted.
  EXPECT_EQ(c.Look("k999999", "k999999", s, At(2000)).address_failures, 1);
}

TEST(LoginCountersTest, ExpiredEntriesGoBeforeLiveOnes) {
  LoginCounters::Bounds b;
  b.max_addresses = 64 * 16;  // 16 per shard
  b.max_users = 64 * 16;
  LoginCounters c(b);
  ThrottleSettings s = Settings();
  s.address_failures_to_block = 1;
  s.block_time = absl::Hours(1);
  c.RecordFailure("blocked", "", s, At(1000));
  s.address_failures_to_block = 0;
  for (int i = 0; i < 5000; ++i) {
    c.RecordFailure(absl::StrCat("old", i), "", s, At(1000));
  }
  // Blocked for an hour: pushed out last, since every other entry expires
  // in 2W. New failures after the others expired find room without it.
  for (int i = 0; i < 5000; ++i) {
    c.RecordFailure(absl::StrCat("new", i), "", s, At(1300));
  }
  EXPECT_TRUE(c.Look("blocked", "", s, At(1300)).address_blocked);
}

TEST(LoginCountersTest, ThreadsHammeringOneKeyCountEveryFailure) {
  LoginCounters c;
  ThrottleSettings s = Settings();
  s.window = absl::Hours(1000);  // no bucket edge during the test
  s.address_failures_to_block = 4000;
  constexpr int kThreads = 8;
  constexpr int kEach = 1000;
  std::vector<std::thread> threads;
  std::atomic<int> new_blocks{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const absl::Time now = At(3600 * 1000 * 5 + 10);
        const LoginCounts r =
            c.RecordFailure("one", absl::StrCat("u", t), s, now);
        if (r.address_block_new) new_blocks.fetch_add(1);
        c.Look("one", "u0", s, now);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const LoginCounts n = c.Look("one", "u3", s, At(3600 * 1000 * 5 + 10));
  EXPECT_EQ(n.address_failures, kThreads * kEach);
  EXPECT_EQ(n.user_failures, kEach);
  EXPECT_EQ(n.address_users, kThreads);
  EXPECT_TRUE(n.address_blocked);
  EXPECT_EQ(new_blocks.load(), 1);
}

TEST(LoginCountersTest, UserSessionSlots) {
  LoginCounters c;
  EXPECT_TRUE(c.AcquireUserSession("t\0u"sv, 2));
  EXPECT_TRUE(c.AcquireUserSession("t\0u"sv, 2));
  EXPECT_FALSE(c.AcquireUserSession("t\0u"sv, 2));
  EXPECT_TRUE(c.AcquireUserSession("t\0other"sv, 2));
  EXPECT_EQ(c.user_sessions("t\0u"sv), 2);
  c.ReleaseUserSession("t\0u"sv);
  EXPECT_TRUE(c.AcquireUserSession("t\0u"sv, 2));
  c.ReleaseUserSession("t\0u"sv);
  c.ReleaseUserSession("t\0u"sv);
  EXPECT_EQ(c.user_sessions("t\0u"sv), 0);
  c.ReleaseUserSession("t\0u"sv);  // unpaired: no harm, no negative count
  EXPECT_TRUE(c.AcquireUserSession("t\0u"sv, 1));
  EXPECT_FALSE(c.AcquireUserSession("t\0u"sv, 1));
  EXPECT_TRUE(c.AcquireUserSession("t\0u"sv, 0));  // 0: no limit
}

}  // namespace
}  // namespace popgate::auth
