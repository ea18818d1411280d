#include "store/local_limit_store.h"

#include <optional>
#include <utility>

#include "absl/time/clock.h"
#include "auth/login_counters.h"
#include "gtest/gtest.h"
#include "runtime/task.h"

namespace popgate::store {
namespace {

// The local store never suspends: a detached coroutine that awaits the
// task has its answer as soon as it returns.
template <typename T>
T RunNow(Task<T> task) {
  std::optional<T> out;
  [](Task<T> t, std::optional<T>& o) -> Detached { o.emplace(co_await t); }(
                                         std::move(task), out);
  EXPECT_TRUE(out.has_value()) << "the local store suspended";
  return std::move(*out);
}

auth::ThrottleSettings Settings() {
  auth::ThrottleSettings s;
  s.window = absl::Minutes(15);
  s.address_failures_to_block = 3;
  s.user_failures_to_block = 0;
  s.address_users_to_block = 0;
  s.block_time = absl::Minutes(15);
  return s;
}

TEST(LocalLimitStoreTest, CountsAndBlocksThroughTheStore) {
  auth::LoginCounters counters;
  LocalLimitStore store(counters);
  const auth::ThrottleSettings s = Settings();
  const LoginKey key{"192.0.2.1", std::string("t\0alice", 7)};

  absl::StatusOr<auth::LoginCounts> n = RunNow(store.Look(key, s));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->address_failures, 0);
  for (int i = 1; i <= 2; ++i) {
    n = RunNow(store.RecordFailure(key, s));
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->address_failures, i);
    EXPECT_EQ(n->user_failures, i);
    EXPECT_FALSE(n->address_blocked);
  }
  n = RunNow(store.RecordFailure(key, s));
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->address_blocked);
  EXPECT_TRUE(n->address_block_new);

  n = RunNow(store.Look(LoginKey{"192.0.2.1", ""}, s));
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->address_blocked);
  n = RunNow(store.Look(LoginKey{"192.0.2.2", key.user}, s));
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n->address_blocked);
  EXPECT_EQ(n->user_failures, 3);
}

TEST(LocalLimitStoreTest, UserSessionSlots) {
  auth::LoginCounters counters;
  LocalLimitStore store(counters);
  absl::StatusOr<bool> got = RunNow(store.AcquireUserSession("u", "s1", 1));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got);
  got = RunNow(store.AcquireUserSession("u", "s2", 1));
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  store.ReleaseUserSession("u", "s1");
  got = RunNow(store.AcquireUserSession("u", "s3", 1));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got);
}

TEST(LocalLimitStoreTest, DefaultStoreSharesTheProcessCounters) {
  LocalLimitStore a;
  LocalLimitStore b;  // another worker's
  const LoginKey key{"198.51.100.7", "t-shared"};
  const auth::ThrottleSettings s = Settings();
  ASSERT_TRUE(RunNow(a.RecordFailure(key, s)).ok());
  absl::StatusOr<auth::LoginCounts> n = RunNow(b.Look(key, s));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->address_failures, 1);
  EXPECT_EQ(auth::LoginCounters::Process()
                .Look(key.address, key.user, s, absl::Now())
                .user_failures,
            1);
}

}  // namespace
}  // namespace popgate::store
