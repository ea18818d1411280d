#include "bench/loadgen/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace popgate::loadgen {
namespace {

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.mean(), 0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 50u);
  EXPECT_EQ(h.Percentile(0.99), 99u);
  EXPECT_EQ(h.Percentile(0.999), 100u);
  EXPECT_EQ(h.Percentile(1.0), 100u);
  EXPECT_EQ(h.Percentile(0.01), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, LargeValuesWithinOnePercent) {
  LatencyHistogram h;
  // 1..100000 microseconds, in nanoseconds.
  for (uint64_t v = 1; v <= 100000; ++v) h.Record(v * 1000);
  auto near = [](uint64_t got, double want) {
    return std::abs(static_cast<double>(got) - want) / want < 0.01;
  };
  EXPECT_TRUE(near(h.Percentile(0.5), 50000e3)) << h.Percentile(0.5);
  EXPECT_TRUE(near(h.Percentile(0.99), 99000e3)) << h.Percentile(0.99);
  EXPECT_TRUE(near(h.Percentile(0.999), 99900e3)) << h.Percentile(0.999);
  EXPECT_EQ(h.Percentile(1.0), 100000000u);  // clamped to the max
  EXPECT_EQ(h.max(), 100000000u);
}

TEST(LatencyHistogramTest, TailIsNotHiddenByTheBulk) {
  LatencyHistogram h;
  for (int i = 0; i < 9990; ++i) h.Record(1000);
  for (int i = 0; i < 10; ++i) h.Record(5000000);
  EXPECT_LE(h.Percentile(0.99), 1008u);
  // p99.9 is rank 9990: still the bulk; one more slow sample moves it.
  EXPECT_LE(h.Percentile(0.999), 1008u);
  h.Record(5000000);
  EXPECT_GE(h.Percentile(0.999), 4950000u);
}

TEST(LatencyHistogramTest, BucketsAreMonotoneAndContainTheirValues) {
  uint64_t previous_edge = 0;
  for (size_t b = 0; b < 5000; ++b) {
    uint64_t edge = LatencyHistogram::BucketUpperEdge(b);
    EXPECT_EQ(LatencyHistogram::BucketOf(edge), b);
    if (b > 0) {
      EXPECT_GT(edge, previous_edge);
      EXPECT_EQ(LatencyHistogram::BucketOf(previous_edge + 1), b);
    }
    previous_edge = edge;
  }
  EXPECT_LT(LatencyHistogram::BucketOf(UINT64_MAX),
            (64 - 7 + 1) << 7);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  for (int i = 0; i < 50; ++i) a.Record(10);
  for (int i = 0; i < 50; ++i) b.Record(90);
  a.Merge(b);
  EXPECT_EQ(a.count(), 100u);
  EXPECT_EQ(a.Percentile(0.5), 10u);
  EXPECT_EQ(a.Percentile(0.51), 90u);
  EXPECT_EQ(a.max(), 90u);
}

TEST(StatsTest, MergeAndErrorNames) {
  Stats a;
  Stats b;
  a.sessions = 2;
  b.sessions = 3;
  b.bytes = 10;
  a.AddError(ErrorKind::kTimeout);
  b.AddError(ErrorKind::kTimeout);
  b.AddError(ErrorKind::kRetrVerify);
  a.Merge(b);
  EXPECT_EQ(a.sessions, 5u);
  EXPECT_EQ(a.bytes, 10u);
  EXPECT_EQ(a.errors_total(), 3u);
  EXPECT_EQ(a.errors[static_cast<size_t>(ErrorKind::kTimeout)], 2u);
  EXPECT_EQ(ErrorKindName(ErrorKind::kRetrVerify), "retr_verify");
  EXPECT_EQ(ErrorKindName(ErrorKind::kConnect), "connect");
  for (size_t i = 0; i < static_cast<size_t>(ErrorKind::kCount); ++i) {
    EXPECT_NE(ErrorKindName(static_cast<ErrorKind>(i)), "?");
  }
}

}  // namespace
}  // namespace popgate::loadgen
