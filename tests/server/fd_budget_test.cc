// The descriptor budget: how many sessions a limit holds, when the
// start-up warning names a max_connections that does not fit, and the
// process-wide count the workers stop accepting at.
#include "server/fd_budget.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

using ::testing::HasSubstr;

// Two workers, one listener (a socket each), one backend, no admin API.
constexpr FdOverhead kTwoWorkers{.workers = 2,
                                 .listening_sockets = 2,
                                 .backends = 1,
                                 .admin_connections = 0};
// 64 + 2 x (8 + 2 x 64) + 2 + 1.
constexpr uint64_t kTwoWorkersReserve = 339;

TEST(FdBudgetTest, TwoSocketsPerSessionAfterTheReserve) {
  EXPECT_EQ(FdReserve(20000, kTwoWorkers), kTwoWorkersReserve);
  EXPECT_EQ(SessionsForFdLimit(20000, kTwoWorkers),
            (20000 - kTwoWorkersReserve) / 2);
  EXPECT_EQ(SessionsForFdLimit(1 << 20, kTwoWorkers),
            ((1 << 20) - kTwoWorkersReserve) / 2);
  // What the config holds counts: more workers, sockets, backends, the
  // admin API's connections.
  const FdOverhead big{.workers = 8,
                       .listening_sockets = 24,
                       .backends = 40,
                       .admin_connections = 64};
  EXPECT_EQ(FdReserve(1 << 20, big), 64u + 8 * 136 + 24 + 40 + 64);
  // At most half a small limit: it still serves.
  EXPECT_EQ(FdReserve(200, kTwoWorkers), 100u);
  EXPECT_EQ(SessionsForFdLimit(200, kTwoWorkers), 50u);
  EXPECT_EQ(SessionsForFdLimit(0, kTwoWorkers), 0u);
}

TEST(FdBudgetTest, NoWarningWhenMaxConnectionsFits) {
  const int fit = static_cast<int>(SessionsForFdLimit(1 << 20, kTwoWorkers));
  EXPECT_FALSE(FdLimitWarning(20000, 1 << 20, kTwoWorkers).has_value());
  EXPECT_FALSE(FdLimitWarning(fit, 1 << 20, kTwoWorkers).has_value());
}

TEST(FdBudgetTest, WarnsWithWhatFitsAndWhatToChange) {
  std::optional<std::string> w = FdLimitWarning(20000, 20000, kTwoWorkers);
  ASSERT_TRUE(w.has_value());
  EXPECT_THAT(*w, HasSubstr("\"level\":\"warning\""));
  EXPECT_THAT(*w, HasSubstr("\"event\":\"fd_limit\""));
  EXPECT_THAT(*w, HasSubstr("\"nofile\":20000"));
  EXPECT_THAT(*w, HasSubstr("\"max_connections\":20000"));
  EXPECT_THAT(*w, HasSubstr("\"sessions_that_fit\":9830"));
  EXPECT_THAT(*w, HasSubstr("339 kept for the rest"));
  EXPECT_THAT(*w, HasSubstr("wait in the listen backlog"));
  EXPECT_THAT(*w, HasSubstr("LimitNOFILE="));
  EXPECT_EQ(w->back(), '\n');
  // One more than fits warns; no limit at all warns too.
  const int fit = static_cast<int>(SessionsForFdLimit(20000, kTwoWorkers));
  EXPECT_TRUE(FdLimitWarning(fit + 1, 20000, kTwoWorkers).has_value());
  std::optional<std::string> none = FdLimitWarning(0, 1 << 20, kTwoWorkers);
  ASSERT_TRUE(none.has_value());
  EXPECT_THAT(*none, HasSubstr("0 (no limit)"));
}

TEST(SessionFdBudgetTest, FullAtTheBoundWithRoomAgainBelowTheResumeMark) {
  SessionFdBudget b(20000, kTwoWorkers);
  ASSERT_EQ(b.max_sessions(), 9830u);
  const uint64_t margin = 9830 / 64;
  for (uint64_t i = 1; i < b.max_sessions(); ++i) ASSERT_FALSE(b.Add()) << i;
  EXPECT_FALSE(b.full());
  EXPECT_TRUE(b.Add());  // the last that fits
  EXPECT_TRUE(b.full());
  EXPECT_FALSE(b.has_room());
  EXPECT_TRUE(b.Add());  // accepted before the pause took: still full
  EXPECT_EQ(b.live(), b.max_sessions() + 1);
  // Room again only once the sessions are more than `margin` under the
  // bound.
  while (b.live() > b.max_sessions() - margin) b.Remove();
  EXPECT_FALSE(b.full());
  EXPECT_FALSE(b.has_room());
  b.Remove();
  EXPECT_TRUE(b.has_room());
}

TEST(SessionFdBudgetTest, SmallBoundResumesOneUnder) {
  SessionFdBudget b(200, kTwoWorkers);  // 50 sessions, no margin below 64
  for (int i = 0; i < 49; ++i) ASSERT_FALSE(b.Add());
  EXPECT_TRUE(b.Add());
  EXPECT_FALSE(b.has_room());
  b.Remove();
  EXPECT_TRUE(b.has_room());
}

// Far from the bound one multishot accept may take a whole backlog; once
// a burst that size could pass the bound, accepts go one at a time.
TEST(SessionFdBudgetTest, OneAcceptAtATimeWhereABurstCouldPassTheBound) {
  SessionFdBudget b(20000, kTwoWorkers);  // 9,830 sessions, two sockets
  const uint64_t switch_at = 9830 - 2 * 4096;
  for (uint64_t i = 0; i + 1 < switch_at; ++i) b.Add();
  EXPECT_FALSE(b.one_at_a_time());
  b.Add();
  EXPECT_TRUE(b.one_at_a_time());
  b.Remove();
  EXPECT_FALSE(b.one_at_a_time());
  // A bound smaller than the burst: one at a time from the start.
  EXPECT_TRUE(SessionFdBudget(200, kTwoWorkers).one_at_a_time());
  EXPECT_FALSE(SessionFdBudget(0, kTwoWorkers).one_at_a_time());
  EXPECT_FALSE(SessionFdBudget(1 << 20, kTwoWorkers).one_at_a_time());
}

TEST(SessionFdBudgetTest, NoLimitIsNeverFull) {
  SessionFdBudget b(0, kTwoWorkers);
  EXPECT_EQ(b.max_sessions(), 0u);
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(b.Add());
  EXPECT_FALSE(b.full());
  EXPECT_TRUE(b.has_room());
}

TEST(SessionFdBudgetTest, CountsEveryThreadsSessions) {
  SessionFdBudget b(1 << 20, kTwoWorkers);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) b.Add();
      for (int i = 0; i < 5000; ++i) b.Remove();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.live(), 20000u);
}

TEST(SessionFdBudgetTest, PauseWarningFirstThenAtMostOnceAMinute) {
  SessionFdBudget b(20000, kTwoWorkers);
  const absl::Time t0 = absl::Now();
  EXPECT_EQ(b.NotePause(t0), std::optional<uint64_t>(1));
  EXPECT_EQ(b.NotePause(t0 + absl::Seconds(1)), std::nullopt);
  EXPECT_EQ(b.NotePause(t0 + absl::Seconds(59)), std::nullopt);
  // The next names every pause since start.
  EXPECT_EQ(b.NotePause(t0 + absl::Seconds(61)), std::optional<uint64_t>(4));
  EXPECT_EQ(b.pauses(), 4u);
  const std::string line = FdLimitReachedLine(1, b, 4);
  EXPECT_THAT(line, HasSubstr("\"event\":\"fd_limit_reached\""));
  EXPECT_THAT(line, HasSubstr("\"level\":\"warning\""));
  EXPECT_THAT(line, HasSubstr("\"worker\":1"));
  EXPECT_THAT(line, HasSubstr("\"sessions_that_fit\":9830"));
  EXPECT_THAT(line, HasSubstr("\"nofile\":20000"));
  EXPECT_THAT(line, HasSubstr("\"pauses\":4"));
  EXPECT_EQ(line.back(), '\n');
}

}  // namespace
}  // namespace popgate
