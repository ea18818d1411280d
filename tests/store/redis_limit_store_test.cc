// RedisLimitStore against a real redis-server: the same answers as the
// local store on the same sequence (thresholds, blocks, a 2 s window
// sliding), counts shared by two stores (two instances), keys that all
// expire and hold no user name, user session slots (limit, release,
// expiry of a dead instance's slots, refresh), and the policies when Redis
// is down or stopped (fail_open from the local counters, fail_closed
// Unavailable, both fast; store_down logged once, store_up on return).
#include "store/redis_limit_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "auth/login_counters.h"
#include "store/local_limit_store.h"
#include "tests/runtime/test_util.h"
#include "tests/store/redis_test_server.h"

namespace popgate::store {
namespace {

using ::popgate::testing::RedisTestServer;
using ::popgate::testing::RunTask;
using ::popgate::testing::SyncReply;
using namespace std::string_literals;

auth::ThrottleSettings Settings() {
  auth::ThrottleSettings s;
  s.base_delay = absl::Milliseconds(10);
  s.max_delay = absl::Milliseconds(100);
  s.window = absl::Seconds(2);
  s.address_failures_to_block = 6;
  s.user_failures_to_block = 4;
  s.address_users_to_block = 3;
  s.block_time = absl::Seconds(1);
  return s;
}

// Waits until the clock is not within 100 ms of a whole second, so two
// stores asked one after the other see the same bucket and weight.
void AwayFromSecondEdge() {
  while (true) {
    const int64_t ms = absl::ToUnixMillis(absl::Now()) % 1000;
    if (ms > 50 && ms < 850) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

class RedisLimitStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::popgate::testing::RedisServerBinary().empty()) {
      GTEST_SKIP() << "redis-server is not installed";
    }
    ASSERT_TRUE(ring_.Init(256).ok());
    RedisLimitStore::ResetDownStateForTests();
  }

  void TearDown() override {
    for (auto& s : stores_) s->Stop();
    const absl::Time until = absl::Now() + absl::Seconds(2);
    for (auto& s : stores_) {
      while (!s->idle() && absl::Now() < until) {
        ring_.RunOnce(absl::Milliseconds(5));
      }
      EXPECT_TRUE(s->idle());
    }
    stores_.clear();
  }

  RedisLimitStore& MakeStore(uint16_t port, bool fail_closed = false,
                             absl::Duration lease = absl::Seconds(120),
                             const RedisOptions* connection = nullptr) {
    RedisStoreOptions o;
    if (connection != nullptr) o.connection = *connection;
    o.connection.host = "127.0.0.1";
    o.connection.port = port;
    o.connection.timeout = absl::Milliseconds(200);
    o.prefix = "t:";
    o.fail_closed = fail_closed;
    o.session_lease = lease;
    auto counters = std::make_unique<auth::LoginCounters>();
    auto local = std::make_unique<LocalLimitStore>(*counters);
    counters_.push_back(std::move(counters));
    stores_.push_back(std::make_unique<RedisLimitStore>(
        ring_, std::move(o), [this](std::string line) { log_.push_back(line); },
        std::move(local)));
    stores_.back()->Start();
    return *stores_.back();
  }

  template <typename T>
  T Run(Task<T> task) {
    std::optional<T> r = RunTask(ring_, std::move(task), absl::Seconds(10));
    EXPECT_TRUE(r.has_value());
    return *std::move(r);
  }

  int LogCount(std::string_view event) const {
    int n = 0;
    for (const std::string& l : log_) {
      n += absl::StrContains(
               l, absl::StrCat("\"event\":\"", std::string(event), "\""))
               ? 1
               : 0;
    }
    return n;
  }

  Ring ring_;
  std::vector<std::unique_ptr<auth::LoginCounters>> counters_;
  std::vector<std::unique_ptr<RedisLimitStore>> stores_;
  std::vector<std::string> log_;
};

// `users_exact`: false once failures are older than W. The local store
// counts the users that failed within W, Redis the union of two buckets
// (up to 2 W back): never fewer.
void ExpectSame(const auth::LoginCounts& redis, const auth::LoginCounts& local,
                const std::string& where, bool users_exact = true) {
  EXPECT_EQ(redis.address_failures, local.address_failures) << where;
  EXPECT_EQ(redis.user_failures, local.user_failures) << where;
  if (users_exact) {
    EXPECT_EQ(redis.address_users, local.address_users) << where;
  } else {
    EXPECT_GE(redis.address_users, local.address_users) << where;
  }
  EXPECT_EQ(redis.address_blocked, local.address_blocked) << where;
  EXPECT_EQ(redis.user_blocked, local.user_blocked) << where;
  EXPECT_EQ(redis.address_block_new, local.address_block_new) << where;
  EXPECT_EQ(redis.user_block_new, local.user_block_new) << where;
}

TEST_F(RedisLimitStoreTest, SameAnswersAsTheLocalStore) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisLimitStore& redis = MakeStore(server.port());
  auth::LoginCounters counters;
  LocalLimitStore local(counters);
  const auth::ThrottleSettings s = Settings();

  // The same sequence on both: stuffing one user from two addresses,
  // spraying users from one address, looks in between.
  struct Step {
    std::string address;
    std::string user;
    bool fail;
  };
  const std::vector<Step> steps = {
      {"192.0.2.1", "a\0alice"s, true},
      {"192.0.2.1", "a\0alice"s, false},
      {"192.0.2.2", "a\0alice"s, true},
      {"192.0.2.1", "a\0bob"s, true},
      {"192.0.2.1", "a\0bob"s, false},
      {"192.0.2.3", "a\0alice"s, true},
      {"192.0.2.1", "a\0carol"s, true},
      {"192.0.2.1", "a\0carol"s, false},
      {"192.0.2.4", "a\0alice"s, true},
      {"192.0.2.4", "a\0dave"s, false},
      {"192.0.2.1", ""s, true},
      {"192.0.2.1", ""s, false},
      {"2001:db8:1:2::/64", "a\0eve"s, true},
  };
  int i = 0;
  for (const Step& st : steps) {
    AwayFromSecondEdge();
    LoginKey key{st.address, st.user};
    absl::StatusOr<auth::LoginCounts> r =
        st.fail ? Run(redis.RecordFailure(key, s)) : Run(redis.Look(key, s));
    absl::StatusOr<auth::LoginCounts> l =
        st.fail ? Run(local.RecordFailure(key, s)) : Run(local.Look(key, s));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(l.ok());
    ExpectSame(*r, *l, absl::StrCat("step ", i++));
  }
  // The address reached 3 distinct users and the user 4 failures: both
  // blocked, in both stores, each block reported new exactly once.
  AwayFromSecondEdge();
  LoginKey k{"192.0.2.1", "a\0alice"s};
  absl::StatusOr<auth::LoginCounts> r = Run(redis.Look(k, s));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->address_blocked);
  EXPECT_TRUE(r->user_blocked);
  ExpectSame(*r, *Run(local.Look(k, s)), "blocked");

  // Blocks end after block_time; the window slides (W = 2 s): the counts
  // fall as the local ones do.
  absl::SleepFor(absl::Milliseconds(1100));
  for (int round = 0; round < 3; ++round) {
    AwayFromSecondEdge();
    r = Run(redis.Look(k, s));
    ASSERT_TRUE(r.ok());
    ExpectSame(*r, *Run(local.Look(k, s)), absl::StrCat("later ", round),
               /*users_exact=*/false);
    EXPECT_FALSE(r->address_blocked);
    absl::SleepFor(absl::Milliseconds(900));
  }
}

TEST_F(RedisLimitStoreTest, TwoInstancesShareCountsAndBlocks) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisLimitStore& a = MakeStore(server.port());
  RedisLimitStore& b = MakeStore(server.port());
  auth::ThrottleSettings s = Settings();
  s.window = absl::Seconds(60);
  s.block_time = absl::Seconds(30);
  const LoginKey key{"198.51.100.9", "t\0mallory"s};
  int new_blocks = 0;
  for (int i = 0; i < 6; ++i) {
    RedisLimitStore& st = i % 2 == 0 ? a : b;
    absl::StatusOr<auth::LoginCounts> c =
        Run(st.RecordFailure(LoginKey{"198.51.100.9", ""}, s));
    ASSERT_TRUE(c.ok());
    // Both instances' failures add up (a bucket edge can only weigh the
    // older ones down, never up).
    EXPECT_LE(c->address_failures, i + 1);
    EXPECT_GE(c->address_failures, i);
    new_blocks += c->address_block_new ? 1 : 0;
  }
  EXPECT_EQ(new_blocks, 1);
  absl::StatusOr<auth::LoginCounts> seen = Run(a.Look(key, s));
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(seen->address_blocked);
  seen = Run(b.Look(key, s));
  EXPECT_TRUE(seen->address_blocked);
  EXPECT_FALSE(seen->user_blocked);

  // Every key expires by itself, and none names the user.
  auto sync = server.Sync();
  ASSERT_TRUE(sync);
  ASSERT_TRUE(Run(a.RecordFailure(key, s)).ok());
  SyncReply keys(
      static_cast<redisReply*>(redisCommand(sync.get(), "KEYS t:*")));
  ASSERT_TRUE(keys && keys->type == REDIS_REPLY_ARRAY);
  EXPECT_GE(keys->elements, 4u);  // fa, du, ba, fu
  for (size_t i = 0; i < keys->elements; ++i) {
    std::string name(keys->element[i]->str, keys->element[i]->len);
    EXPECT_FALSE(absl::StrContains(name, "mallory")) << name;
    SyncReply ttl(static_cast<redisReply*>(
        redisCommand(sync.get(), "PTTL %b", name.data(), name.size())));
    ASSERT_TRUE(ttl);
    EXPECT_GT(ttl->integer, 0) << name;
    EXPECT_LE(ttl->integer, 120000) << name;
  }
}

TEST_F(RedisLimitStoreTest, UserSessionSlotsAcrossInstances) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisLimitStore& a = MakeStore(server.port());
  RedisLimitStore& b = MakeStore(server.port());
  const std::string user("t\0alice", 7);
  absl::StatusOr<bool> r = Run(a.AcquireUserSession(user, "s1", 1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  r = Run(b.AcquireUserSession(user, "s2", 1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);  // [IN-USE] across instances
  r = Run(b.AcquireUserSession(std::string("t\0bob", 5), "s3", 1));
  EXPECT_TRUE(r.ok() && *r);
  r = Run(b.AcquireUserSession(user, "s4", 2));
  EXPECT_TRUE(r.ok() && *r);  // a higher limit
  a.ReleaseUserSession(user, "s1");
  b.ReleaseUserSession(user, "s4");
  EXPECT_EQ(a.live_slots(), 0u);
  // The release is fire and forget: the next call on b follows it on a
  // different connection, so poll briefly.
  bool got = false;
  const absl::Time until = absl::Now() + absl::Seconds(2);
  while (!got && absl::Now() < until) {
    r = Run(b.AcquireUserSession(user, "s5", 1));
    got = r.ok() && *r;
  }
  EXPECT_TRUE(got);
}

// The least-privilege ACL docs/redis.md gives (its key pattern is this
// test's prefix "t:" instead of "popgate:*"), over a unix socket: every
// command the store sends is allowed, counts, blocks and slots work.
TEST_F(RedisLimitStoreTest, WorksUnderTheDocumentedAcl) {
  RedisTestServer server;
  const std::string path = server.EnableUnixSocket();
  server.AddConfig(
      "user popgate on >acl-pw-91c2 resetkeys ~t:* resetchannels -@all "
      "+ping +select +eval +incr +mget +set +pexpire +pfadd +pfcount "
      "+zadd +zrem +zremrangebyscore +zscore +zcard\n");
  ASSERT_TRUE(server.Start());
  RedisOptions conn;
  conn.user = "popgate";
  conn.password = "acl-pw-91c2";
  conn.unix_path = path;
  conn.db = 1;
  RedisLimitStore& st = MakeStore(0, false, absl::Seconds(120), &conn);
  auth::ThrottleSettings s = Settings();
  s.window = absl::Seconds(60);
  const LoginKey key{"203.0.113.5", "t\0zoe"s};
  bool blocked = false;
  for (int i = 0; i < 6 && !blocked; ++i) {
    absl::StatusOr<auth::LoginCounts> c = Run(st.RecordFailure(key, s));
    ASSERT_TRUE(c.ok()) << c.status();
    blocked = c->address_blocked || c->user_blocked;
  }
  EXPECT_TRUE(blocked);
  absl::StatusOr<auth::LoginCounts> seen = Run(st.Look(key, s));
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_TRUE(seen->address_blocked || seen->user_blocked);
  absl::StatusOr<bool> slot = Run(st.AcquireUserSession(key.user, "a1", 1));
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_TRUE(*slot);
  slot = Run(st.AcquireUserSession(key.user, "a2", 1));
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_FALSE(*slot);
  st.ReleaseUserSession(key.user, "a1");
  EXPECT_EQ(LogCount("store_down"), 0);
}

TEST_F(RedisLimitStoreTest, DeadInstanceSlotsExpireLiveOnesAreRefreshed) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  // Lease 600 ms: refreshed every 200 ms while the instance lives.
  RedisLimitStore& live =
      MakeStore(server.port(), false, absl::Milliseconds(600));
  RedisLimitStore& dead =
      MakeStore(server.port(), false, absl::Milliseconds(600));
  RedisLimitStore& other = MakeStore(server.port());
  const std::string u1("t\0one", 5), u2("t\0two", 5);
  ASSERT_TRUE(*Run(live.AcquireUserSession(u1, "x1", 1)));
  ASSERT_TRUE(*Run(dead.AcquireUserSession(u2, "x2", 1)));
  dead.Stop();  // its refresher ends, its slot is never released
  // Beyond a lease: the dead one's slot is gone, the live one's is not.
  const absl::Time until = absl::Now() + absl::Milliseconds(1200);
  while (absl::Now() < until) ring_.RunOnce(absl::Milliseconds(20));
  absl::StatusOr<bool> r = Run(other.AcquireUserSession(u2, "y2", 1));
  EXPECT_TRUE(r.ok() && *r);
  r = Run(other.AcquireUserSession(u1, "y1", 1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST_F(RedisLimitStoreTest, DownFailOpenAnswersLocallyAndFast) {
  RedisLimitStore& st = MakeStore(::popgate::testing::ClosedLoopbackPort());
  const auth::ThrottleSettings s = Settings();
  const LoginKey key{"203.0.113.5", "t\0zed"s};
  absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<auth::LoginCounts> c = Run(st.RecordFailure(key, s));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->address_failures, i + 1);  // the local counters
  }
  absl::StatusOr<auth::LoginCounts> c = Run(st.Look(key, s));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->user_failures, 3);
  absl::StatusOr<bool> slot = Run(st.AcquireUserSession(key.user, "z1", 1));
  EXPECT_TRUE(slot.ok() && *slot);
  slot = Run(st.AcquireUserSession(key.user, "z2", 1));
  EXPECT_TRUE(slot.ok() && !*slot);
  st.ReleaseUserSession(key.user, "z1");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(LogCount("store_down"), 1);
  ASSERT_FALSE(log_.empty());
  EXPECT_TRUE(absl::StrContains(log_[0], "\"policy\":\"fail_open\""))
      << log_[0];
}

TEST_F(RedisLimitStoreTest, StoppedRedisFailClosedThenStoreUp) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisLimitStore& st = MakeStore(server.port(), /*fail_closed=*/true);
  const auth::ThrottleSettings s = Settings();
  const LoginKey key{"203.0.113.6", "t\0yan"s};
  ASSERT_TRUE(Run(st.Look(key, s)).ok());
  server.Pause();
  absl::Time start = absl::Now();
  absl::StatusOr<auth::LoginCounts> c = Run(st.Look(key, s));
  EXPECT_FALSE(c.ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(700));
  // Within the skip: refused at once, no second timeout.
  start = absl::Now();
  c = Run(st.RecordFailure(key, s));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<bool> slot = Run(st.AcquireUserSession(key.user, "q", 1));
  EXPECT_FALSE(slot.ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_EQ(LogCount("store_down"), 1);
  EXPECT_TRUE(absl::StrContains(log_[0], "\"policy\":\"fail_closed\""));
  server.Resume();
  bool ok = false;
  const absl::Time until = absl::Now() + absl::Seconds(8);
  while (!ok && absl::Now() < until) {
    ok = Run(st.Look(key, s)).ok();
    if (!ok) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(LogCount("store_up"), 1);
  EXPECT_EQ(LogCount("store_down"), 1);
}

TEST(RedisUserKeyTest, HexPrefixOfSha256) {
  // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
  EXPECT_EQ(RedisUserKey("abc"), "ba7816bf8f01cfea414140de5dae2223");
  EXPECT_EQ(RedisInstanceId().size(), 16u);
  EXPECT_EQ(RedisInstanceId(), RedisInstanceId());
}

}  // namespace
}  // namespace popgate::store
