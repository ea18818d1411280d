#include "metrics/exposition.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "metrics/registry.h"

namespace popgate::metrics {
namespace {

TEST(FormatNumberTest, ShortestForms) {
  EXPECT_EQ(FormatNumber(uint64_t{0}), "0");
  EXPECT_EQ(FormatNumber(uint64_t{18446744073709551615u}),
            "18446744073709551615");
  EXPECT_EQ(FormatNumber(3.0), "3");
  EXPECT_EQ(FormatNumber(0.25), "0.25");
  EXPECT_EQ(FormatNumber(0.1), "0.1");
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatNumber(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatNumber(std::nan("")), "NaN");
}

TEST(FormatNumberTest, BoundsAreCanonical) {
  EXPECT_EQ(FormatBound(1), "1.0");
  EXPECT_EQ(FormatBound(30), "30.0");
  EXPECT_EQ(FormatBound(0.005), "0.005");
  EXPECT_EQ(FormatBound(2.5), "2.5");
}

TEST(EscapeTest, LabelValues) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(EscapeTest, HelpQuotesOnlyInOpenMetrics) {
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\n", Format::kPrometheus),
            "say \"hi\"\\\\\\n");
  EXPECT_EQ(EscapeHelp("say \"hi\"", Format::kOpenMetrics), "say \\\"hi\\\"");
}

TEST(HeaderTest, CounterNamesPerFormat) {
  std::string prom, om;
  AppendHeader(prom, Format::kPrometheus, "popgate_x", Type::kCounter, "X.");
  AppendHeader(om, Format::kOpenMetrics, "popgate_x", Type::kCounter, "X.");
  EXPECT_EQ(prom,
            "# HELP popgate_x_total X.\n# TYPE popgate_x_total counter\n");
  EXPECT_EQ(om, "# HELP popgate_x X.\n# TYPE popgate_x counter\n");
}

TEST(SampleTest, Labels) {
  std::string out;
  const std::vector<std::string> names = {"a", "b"};
  const std::vector<std::string> values = {"1", "x\"y"};
  AppendSample(out, "m", names, values, "le", "0.5", "7");
  EXPECT_EQ(out, "m{a=\"1\",b=\"x\\\"y\",le=\"0.5\"} 7\n");
  out.clear();
  AppendSample(out, "m", {}, {}, "", "", "1");
  EXPECT_EQ(out, "m 1\n");
}

TEST(RenderTest, PrometheusText) {
  Registry r(2);
  CounterFamily& c = r.AddCounter("popgate_sessions", "Sessions ended.",
                                  {"listener", "result"});
  HistogramFamily& h = r.AddHistogram("popgate_login_duration_seconds",
                                      "Login time.", {"tenant"}, {0.1, 1});
  r.AddCollector("popgate_workers", "Worker threads.", Type::kGauge, {},
                 [](std::vector<Sample>& out) {
                   out.push_back({{}, 2});
                 });
  c.Add(0, {"127.0.0.1:110", "ok"}, 2);
  c.Add(1, {"127.0.0.1:110", "ok"});
  h.Observe(0, {"a"}, 0.05);
  h.Observe(1, {"a"}, 0.5);
  h.Observe(1, {"a"}, 5);
  EXPECT_EQ(r.Render(Format::kPrometheus),
            "# HELP popgate_sessions_total Sessions ended.\n"
            "# TYPE popgate_sessions_total counter\n"
            "popgate_sessions_total{listener=\"127.0.0.1:110\",result=\"ok\"} "
            "3\n"
            "# HELP popgate_login_duration_seconds Login time.\n"
            "# TYPE popgate_login_duration_seconds histogram\n"
            "popgate_login_duration_seconds_bucket{tenant=\"a\",le=\"0.1\"} 1\n"
            "popgate_login_duration_seconds_bucket{tenant=\"a\",le=\"1.0\"} 2\n"
            "popgate_login_duration_seconds_bucket{tenant=\"a\",le=\"+Inf\"} "
            "3\n"
            "popgate_login_duration_seconds_sum{tenant=\"a\"} 5.55\n"
            "popgate_login_duration_seconds_count{tenant=\"a\"} 3\n"
            "# HELP popgate_workers Worker threads.\n"
            "# TYPE popgate_workers gauge\n"
            "popgate_workers 2\n");
}

TEST(RenderTest, OpenMetricsText) {
  Registry r(1);
  r.AddCounter("popgate_reloads", "Reloads.", {"result"}).Add(0, {"ok"});
  EXPECT_EQ(r.Render(Format::kOpenMetrics),
            "# HELP popgate_reloads Reloads.\n"
            "# TYPE popgate_reloads counter\n"
            "popgate_reloads_total{result=\"ok\"} 1\n"
            "# EOF\n");
}

TEST(RenderTest, AcceptHeaderPicksFormat) {
  EXPECT_EQ(FormatForAccept(""), Format::kPrometheus);
  EXPECT_EQ(FormatForAccept("text/plain;version=0.0.4"), Format::kPrometheus);
  EXPECT_EQ(FormatForAccept("application/openmetrics-text;version=1.0.0;"
                            "q=0.5,text/plain;version=0.0.4;q=0.4"),
            Format::kOpenMetrics);
  EXPECT_EQ(FormatForAccept("Application/OpenMetrics-Text"),
            Format::kOpenMetrics);
  EXPECT_NE(ContentType(Format::kPrometheus).find("version=0.0.4"),
            std::string_view::npos);
  EXPECT_NE(ContentType(Format::kOpenMetrics).find("openmetrics-text"),
            std::string_view::npos);
}

}  // namespace
}  // namespace popgate::metrics
