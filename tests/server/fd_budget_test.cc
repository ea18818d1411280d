// The descriptor budget: how many sessions a limit holds, and when the
// start-up warning names a max_connections that does not fit.
#include "server/fd_budget.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

using ::testing::HasSubstr;

TEST(FdBudgetTest, TwoSocketsPerSessionAfterTheReserve) {
  EXPECT_EQ(SessionsForFdLimit(20000), (20000 - kFdReserve) / 2);
  EXPECT_EQ(SessionsForFdLimit(1 << 20), ((1 << 20) - kFdReserve) / 2);
  EXPECT_EQ(SessionsForFdLimit(kFdReserve), 0u);
  EXPECT_EQ(SessionsForFdLimit(10), 0u);
}

TEST(FdBudgetTest, NoWarningWhenMaxConnectionsFits) {
  const int fit = static_cast<int>(SessionsForFdLimit(1 << 20));
  EXPECT_FALSE(FdLimitWarning(20000, 1 << 20).has_value());
  EXPECT_FALSE(FdLimitWarning(fit, 1 << 20).has_value());
}

TEST(FdBudgetTest, WarnsWithWhatFitsAndWhatToChange) {
  std::optional<std::string> w = FdLimitWarning(20000, 20000);
  ASSERT_TRUE(w.has_value());
  EXPECT_THAT(*w, HasSubstr("\"level\":\"warning\""));
  EXPECT_THAT(*w, HasSubstr("\"event\":\"fd_limit\""));
  EXPECT_THAT(*w, HasSubstr("\"nofile\":20000"));
  EXPECT_THAT(*w, HasSubstr("\"max_connections\":20000"));
  EXPECT_THAT(*w, HasSubstr("\"sessions_that_fit\":9488"));
  EXPECT_THAT(*w, HasSubstr("LimitNOFILE="));
  EXPECT_EQ(w->back(), '\n');
  // One more than fits warns; no limit at all warns too.
  const int fit = static_cast<int>(SessionsForFdLimit(20000));
  EXPECT_TRUE(FdLimitWarning(fit + 1, 20000).has_value());
  std::optional<std::string> none = FdLimitWarning(0, 1 << 20);
  ASSERT_TRUE(none.has_value());
  EXPECT_THAT(*none, HasSubstr("0 (no limit)"));
}

}  // namespace
}  // namespace popgate
