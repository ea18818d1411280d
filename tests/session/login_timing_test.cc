#include "session/login_timing.h"

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

constexpr absl::Duration kDelay = absl::Milliseconds(100);

TEST(FailureDeadlineTest, FixedAtArrivalPlusDelay) {
  const absl::Time arrival = absl::FromUnixSeconds(1000);
  FailureDeadline d(arrival, kDelay);
  EXPECT_EQ(d.at(), arrival + kDelay);
  // A typical verification shorter than the delay changes nothing.
  d.NoSoonerThan(absl::Milliseconds(40));
  EXPECT_EQ(d.at(), arrival + kDelay);
  // A longer one pushes the deadline, counted from arrival.
  d.NoSoonerThan(absl::Milliseconds(250));
  EXPECT_EQ(d.at(), arrival + absl::Milliseconds(250));
  d.NoSoonerThan(absl::ZeroDuration());
  EXPECT_EQ(d.at(), arrival + absl::Milliseconds(250));
}

TEST(PreLoginTimeoutTest, CutShortByTheDeadlineButNeverZero) {
  const absl::Time far = absl::Now() + absl::Hours(1);
  EXPECT_EQ(PreLoginTimeout(absl::Seconds(30), far), absl::Seconds(30));
  const absl::Time past = absl::Now() - absl::Seconds(5);
  const absl::Duration t = PreLoginTimeout(absl::Seconds(30), past);
  EXPECT_GT(t, absl::ZeroDuration());
  EXPECT_LE(t, absl::Milliseconds(1));
  EXPECT_LE(PreLoginTimeout(absl::Seconds(30), absl::Now() + absl::Seconds(2)),
            absl::Seconds(2));
}

TEST(VerificationTimesTest, UnknownTenantIsZero) {
  VerificationTimes times;
  EXPECT_EQ(times.Typical("nobody"), absl::ZeroDuration());
}

TEST(VerificationTimesTest, TypicalIsTheMedianOfRecentVerifications) {
  VerificationTimes times;
  times.Record("t", absl::Milliseconds(10), kDelay);
  EXPECT_EQ(times.Typical("t"), absl::Milliseconds(10));
  times.Record("t", absl::Milliseconds(30), kDelay);
  times.Record("t", absl::Milliseconds(20), kDelay);
  EXPECT_EQ(times.Typical("t"), absl::Milliseconds(20));
}

TEST(VerificationTimesTest, OneOutlierDoesNotStick) {
  VerificationTimes times;
  for (int i = 0; i < 5; ++i) times.Record("t", absl::Milliseconds(10), kDelay);
  times.Record("t", absl::Seconds(5), kDelay);
  EXPECT_EQ(times.Typical("t"), absl::Milliseconds(10));
}

TEST(VerificationTimesTest, OnlyTheLastFewCount) {
  VerificationTimes times;
  for (size_t i = 0; i < VerificationTimes::kKept; ++i) {
    times.Record("t", absl::Seconds(1), absl::Hours(1));
  }
  EXPECT_EQ(times.Typical("t"), absl::Seconds(1));
  // kKept newer, faster verifications replace every old one.
  for (size_t i = 0; i < VerificationTimes::kKept; ++i) {
    times.Record("t", absl::Milliseconds(5), absl::Hours(1));
  }
  EXPECT_EQ(times.Typical("t"), absl::Milliseconds(5));
}

TEST(VerificationTimesTest, PerTenant) {
  VerificationTimes times;
  times.Record("a", absl::Milliseconds(10), kDelay);
  times.Record("b", absl::Milliseconds(70), kDelay);
  EXPECT_EQ(times.Typical("a"), absl::Milliseconds(10));
  EXPECT_EQ(times.Typical("b"), absl::Milliseconds(70));
}

TEST(VerificationTimesTest, WarnsOncePerTenantWhenSlowerThanTheDelay) {
  VerificationTimes times;
  EXPECT_FALSE(times.Record("t", absl::Milliseconds(50), kDelay));
  EXPECT_FALSE(times.Record("t", absl::Milliseconds(50), kDelay));
  // One slow verification: the median (of 50, 50, 300) is still 50.
  EXPECT_FALSE(times.Record("t", absl::Milliseconds(300), kDelay));
  // Two: the median (the upper one of 50, 50, 300, 300) is above the
  // delay: warn, once.
  EXPECT_TRUE(times.Record("t", absl::Milliseconds(300), kDelay));
  EXPECT_FALSE(times.Record("t", absl::Milliseconds(300), kDelay));
  EXPECT_FALSE(times.Record("t", absl::Milliseconds(300), kDelay));
  // Another tenant has its own warning.
  EXPECT_TRUE(times.Record("u", absl::Milliseconds(300), kDelay));
}

TEST(SlowVerificationWarningTest, OneJsonLineWithTheFigures) {
  const std::string w = SlowVerificationWarning(
      "ex\"ample", absl::Milliseconds(250), kDelay, absl::FromUnixSeconds(0));
  EXPECT_EQ(w,
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warning\","
            "\"event\":\"warning\","
            "\"warning\":\"password verification takes longer than "
            "auth_failure_delay; unknown users are delayed as long\","
            "\"tenant\":\"ex\\\"ample\",\"verify_ms\":250,"
            "\"auth_failure_delay_ms\":100}\n");
}

}  // namespace
}  // namespace popgate
