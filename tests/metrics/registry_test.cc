#include "metrics/registry.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "metrics/session_metrics.h"

namespace popgate::metrics {
namespace {

size_t Count(const std::string& text, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(RegistryTest, ShardsAreSummed) {
  Registry r(4);
  CounterFamily& c = r.AddCounter("popgate_t", "T.", {"k"});
  std::vector<std::thread> threads;
  for (int s = 0; s < 3; ++s) {
    threads.emplace_back([&c, s] {
      for (int i = 0; i < 10000; ++i) c.Add(s, {"v"});
    });
  }
  // The shared shard, from two threads at once.
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&c, &r] {
      for (int i = 0; i < 10000; ++i) c.Add(r.shared_shard(), {"v"});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_NE(
      r.Render(Format::kPrometheus).find("popgate_t_total{k=\"v\"} 50000"),
      std::string::npos);
}

TEST(RegistryTest, OutOfRangeShardIsTheSharedOne) {
  Registry r(2);
  CounterFamily& c = r.AddCounter("popgate_t", "T.", {});
  c.Add(-1, {}, 2);
  c.Add(99, {}, 3);
  EXPECT_NE(r.Render(Format::kPrometheus).find("popgate_t_total 5\n"),
            std::string::npos);
}

TEST(RegistryTest, SeriesAreBounded) {
  Registry r(2);
  CounterFamily& c = r.AddCounter("popgate_t", "T.", {"tenant"}, 8);
  for (int i = 0; i < 100; ++i) c.Add(i % 2, {absl::StrCat("t", i)});
  const std::string text = r.Render(Format::kPrometheus);
  // 7 named series and one overflow series with the rest.
  EXPECT_EQ(Count(text, "popgate_t_total{"), 8u) << text;
  EXPECT_NE(text.find("popgate_t_total{tenant=\"_overflow\"} 93"),
            std::string::npos)
      << text;
}

TEST(RegistryTest, MissingLabelValuesAreEmpty) {
  Registry r(1);
  r.AddCounter("popgate_t", "T.", {"a", "b"}).Add(0, {"x"});
  EXPECT_NE(
      r.Render(Format::kPrometheus).find("popgate_t_total{a=\"x\",b=\"\"} 1"),
      std::string::npos);
}

TEST(RegistryTest, ManySeriesSpanChunks) {
  Registry r(2);
  CounterFamily& c = r.AddCounter("popgate_t", "T.", {"k"}, 1024);
  for (int i = 0; i < 200; ++i) c.Add(1, {absl::StrCat(i)}, i);
  const std::string text = r.Render(Format::kPrometheus);
  EXPECT_NE(text.find("popgate_t_total{k=\"199\"} 199\n"), std::string::npos);
  EXPECT_NE(text.find("popgate_t_total{k=\"64\"} 64\n"), std::string::npos);
}

TEST(SessionMetricsTest, OneSessionEnd) {
  Registry r(2);
  SessionMetrics m(r);
  SessionEnd e;
  e.listener = "127.0.0.1:110";
  e.tenant = "acme";
  e.result = "ok";
  e.mechanism = "user";
  e.login_result = "ok";
  e.login_seconds = 0.02;
  e.duration_seconds = 2;
  e.bytes_in = 10;
  e.bytes_out = 1000;
  e.forwarding = "splice";
  e.tls_version = "TLSv1.3";
  e.tls_resumed = true;
  m.RecordSessionEnd(0, e);
  SessionEnd refused;
  refused.listener = "127.0.0.1:110";
  refused.result = "limited";
  refused.refusal = "limited";
  m.RecordSessionEnd(1, refused);
  const std::string text = r.Render(Format::kPrometheus);
  for (std::string_view want : {
           "popgate_sessions_total{listener=\"127.0.0.1:110\",result=\"ok\"} 1",
           "popgate_sessions_total{listener=\"127.0.0.1:110\",result="
           "\"limited\"} 1",
           "popgate_logins_total{tenant=\"acme\",mechanism=\"user\",result="
           "\"ok\"} 1",
           "popgate_login_duration_seconds_bucket{tenant=\"acme\",le="
           "\"0.025\"} 1",
           "popgate_session_duration_seconds_count{listener=\"127.0.0.1:110\"}"
           " 2",
           "popgate_forwarded_bytes_total{tenant=\"acme\",direction=\"out\"} "
           "1000",
           "popgate_forwarded_sessions_total{path=\"splice\"} 1",
           "popgate_tls_handshakes_total{listener=\"127.0.0.1:110\",version="
           "\"TLSv1.3\",resumed=\"true\"} 1",
           "popgate_refusals_total{listener=\"127.0.0.1:110\",reason="
           "\"limited\"} 1",
       }) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
  // A session without a login adds no login sample.
  EXPECT_EQ(text.find("mechanism=\"none\""), std::string::npos);
}

}  // namespace
}  // namespace popgate::metrics
