#include "server/trim_policy.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(TrimPolicyTest, TrimsAfterABigDropInLiveSessions) {
  TrimPolicy p(kT0);
  absl::Time t = kT0;
  EXPECT_FALSE(p.ShouldTrim(0, 0, t += absl::Seconds(1)));
  EXPECT_FALSE(p.ShouldTrim(5000, 0, t += absl::Seconds(1)));
  EXPECT_FALSE(p.ShouldTrim(4000, 1000, t += absl::Seconds(1)));  // > half
  EXPECT_TRUE(p.ShouldTrim(100, 4900, t += absl::Seconds(1)));
  // Once: the peak starts again from what is live now.
  EXPECT_FALSE(p.ShouldTrim(0, 5000, t += absl::Seconds(1)));
}

TEST(TrimPolicyTest, SmallDropsDoNotTrim) {
  TrimPolicy p(kT0);
  absl::Time t = kT0;
  EXPECT_FALSE(p.ShouldTrim(200, 0, t += absl::Seconds(1)));
  EXPECT_FALSE(p.ShouldTrim(0, 200, t += absl::Seconds(1)));  // < kDrop
}

TEST(TrimPolicyTest, PeriodicOnlyWhileSessionsEnd) {
  TrimPolicy p(kT0);
  EXPECT_FALSE(p.ShouldTrim(10, 0, kT0 + absl::Seconds(59)));
  // A minute passed, but nothing ended: nothing was freed.
  EXPECT_FALSE(p.ShouldTrim(10, 0, kT0 + absl::Seconds(61)));
  EXPECT_TRUE(p.ShouldTrim(10, 7, kT0 + absl::Seconds(62)));
  EXPECT_FALSE(p.ShouldTrim(10, 90, kT0 + absl::Seconds(100)));
  EXPECT_TRUE(p.ShouldTrim(10, 90, kT0 + absl::Seconds(123)));
}

}  // namespace
}  // namespace popgate
