#include "auth/login_throttle.h"

#include <climits>

#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

ThrottleSettings Small() {
  ThrottleSettings s;
  s.base_delay = absl::Milliseconds(100);
  s.max_delay = absl::Seconds(2);
  s.address_failures_to_block = 5;
  s.user_failures_to_block = 3;
  s.address_users_to_block = 4;
  return s;
}

LoginCounts Counts(int address_failures, int user_failures,
                   int address_users = 0) {
  LoginCounts c;
  c.address_failures = address_failures;
  c.user_failures = user_failures;
  c.address_users = address_users;
  return c;
}

TEST(LoginThrottleTest, FirstFailureWaitsTheBaseDelay) {
  const ThrottleDecision d = Decide(LoginCounts{}, Small());
  EXPECT_EQ(d.verdict, ThrottleVerdict::kAllow);
  EXPECT_EQ(d.failure_delay, absl::Milliseconds(100));
}

TEST(LoginThrottleTest, DelayDoublesWithTheLargerCountUpToTheCap) {
  const ThrottleSettings s = Small();
  EXPECT_EQ(Decide(Counts(1, 0), s).failure_delay, absl::Milliseconds(200));
  EXPECT_EQ(Decide(Counts(0, 2), s).failure_delay, absl::Milliseconds(400));
  EXPECT_EQ(Decide(Counts(3, 1), s).failure_delay, absl::Milliseconds(800));
  EXPECT_EQ(Decide(Counts(1, 4), s).failure_delay, absl::Milliseconds(1600));
  EXPECT_EQ(Decide(Counts(5, 0), s).failure_delay, absl::Seconds(2));
  EXPECT_EQ(Decide(Counts(40, 0), s).failure_delay, absl::Seconds(2));
}

TEST(LoginThrottleTest, HugeCountsDoNotOverflow) {
  ThrottleSettings s = Small();
  s.max_delay = absl::Hours(1000000);
  EXPECT_EQ(Decide(Counts(INT_MAX, INT_MAX), s).failure_delay,
            absl::Hours(1000000));
  s.max_delay = absl::InfiniteDuration();
  const absl::Duration d = Decide(Counts(INT_MAX, 0), s).failure_delay;
  EXPECT_GT(d, absl::Hours(1));  // doubled into infinity, not wrapped
}

TEST(LoginThrottleTest, ZeroBaseStaysZeroAndACapBelowTheBaseWins) {
  ThrottleSettings s = Small();
  s.base_delay = absl::ZeroDuration();
  EXPECT_EQ(Decide(Counts(7, 7), s).failure_delay, absl::ZeroDuration());
  s.base_delay = absl::Seconds(5);
  EXPECT_EQ(Decide(LoginCounts{}, s).failure_delay, absl::Seconds(2));
}

TEST(LoginThrottleTest, BlocksAreRefusedAddressFirst) {
  const ThrottleSettings s = Small();
  LoginCounts c;
  c.user_blocked = true;
  EXPECT_EQ(Decide(c, s).verdict, ThrottleVerdict::kUserBlocked);
  c.address_blocked = true;
  EXPECT_EQ(Decide(c, s).verdict, ThrottleVerdict::kAddressBlocked);
}

TEST(LoginThrottleTest, ThresholdsBlockAtTheirCount) {
  const ThrottleSettings s = Small();
  EXPECT_FALSE(AfterFailure(Counts(4, 2, 3), s).block_address);
  EXPECT_FALSE(AfterFailure(Counts(4, 2, 3), s).block_user);
  EXPECT_TRUE(AfterFailure(Counts(5, 0), s).block_address);
  EXPECT_FALSE(AfterFailure(Counts(5, 0), s).block_user);
  EXPECT_TRUE(AfterFailure(Counts(1, 0, 4), s).block_address);  // spraying
  EXPECT_TRUE(AfterFailure(Counts(1, 3), s).block_user);        // stuffing
  EXPECT_FALSE(AfterFailure(Counts(1, 3), s).block_address);
}

TEST(LoginThrottleTest, ZeroMeansNever) {
  ThrottleSettings s = Small();
  s.address_failures_to_block = 0;
  s.user_failures_to_block = 0;
  s.address_users_to_block = 0;
  const FailureEffect e = AfterFailure(Counts(1000, 1000, 64), s);
  EXPECT_FALSE(e.block_address);
  EXPECT_FALSE(e.block_user);
  EXPECT_FALSE(AfterFailure(Counts(0, 0, 0), s).block_address);
}

}  // namespace
}  // namespace popgate::auth
