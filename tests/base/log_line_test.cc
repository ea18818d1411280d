// The log line's time stamp: the fast formatter (a per-thread prefix of
// the second, then milliseconds) writes exactly what absl::FormatTime
// does, across days, years, leap days, the epoch and the range edges.
#include "base/log_line.h"

#include <cstdint>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

std::string Reference(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

TEST(FormatLogTimeTest, KnownStamps) {
  EXPECT_EQ(FormatLogTime(absl::FromUnixMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatLogTime(absl::FromUnixMillis(1796300717042)),
            "2026-12-03T12:25:17.042Z");
  // A leap day, and the last millisecond of a leap year.
  EXPECT_EQ(
      FormatLogTime(absl::FromCivil(absl::CivilSecond(2028, 2, 29, 23, 59, 59),
                                    absl::UTCTimeZone()) +
                    absl::Milliseconds(999)),
      "2028-02-29T23:59:59.999Z");
  // Sub-millisecond parts are cut, as absl does.
  EXPECT_EQ(FormatLogTime(absl::FromUnixMicros(1999)),
            "1970-01-01T00:00:00.001Z");
}

TEST(FormatLogTimeTest, SameAsAbslAcrossTheRange) {
  std::mt19937_64 rng(42);
  // 0000-01-01 .. 9999-12-31, in milliseconds, and some before 1970.
  std::uniform_int_distribution<int64_t> ms(-62167219200000, 253402300799999);
  for (int i = 0; i < 200000; ++i) {
    const absl::Time t = absl::FromUnixMillis(ms(rng));
    ASSERT_EQ(FormatLogTime(t), Reference(t)) << absl::ToUnixMillis(t);
  }
}

TEST(FormatLogTimeTest, ConsecutiveMillisecondsAndSecondsShareNothingStale) {
  // The per-thread prefix must change with every second, forwards and
  // backwards.
  const int64_t base = 1796300717000;
  for (int64_t d : {0, 1, 999, 1000, 1001, 59999, 60000, 86399999, 86400000, -1,
                    -1000, -1001, 1000, 0}) {
    const absl::Time t = absl::FromUnixMillis(base + d);
    ASSERT_EQ(FormatLogTime(t), Reference(t)) << d;
  }
  for (int64_t d : {-1, -999, -1000, -1001, -86400001}) {
    const absl::Time t = absl::FromUnixMillis(d);
    ASSERT_EQ(FormatLogTime(t), Reference(t)) << d;
  }
}

TEST(FormatLogTimeTest, OutsideFourDigitYearsFallsBackToAbsl) {
  for (absl::Time t : {absl::FromUnixSeconds(-62167219201),
                       absl::FromUnixSeconds(-30610224001),
                       absl::FromUnixSeconds(253402300800),
                       absl::FromUnixSeconds(400000000000)}) {
    EXPECT_EQ(FormatLogTime(t), Reference(t));
  }
}

// The in-place forms add to what is there, the fast path and absl's alike.
TEST(FormatLogTimeTest, AppendsAfterWhatIsThere) {
  std::string out = "a";
  AppendLogTime(&out, absl::FromUnixMillis(1796300717042));
  AppendLogTime(&out, absl::FromUnixSeconds(253402300800));
  EXPECT_EQ(out, "a" + FormatLogTime(absl::FromUnixMillis(1796300717042)) +
                     Reference(absl::FromUnixSeconds(253402300800)));
  out = "line1\n";
  AppendLogFrame(&out, LogLevel::kWarning, "warning", absl::FromUnixMillis(0));
  EXPECT_EQ(out,
            "line1\n{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":"
            "\"warning\",\"event\":\"warning\"");
}

}  // namespace
}  // namespace popgate
