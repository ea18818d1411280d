// RedisConnection against a real redis-server: commands on the worker's
// ring, pipelining, binary-safe arguments, AUTH and SELECT, the deadline
// (a SIGSTOPped server), a refused connection, reconnecting after a
// restart, and replies that come after their call gave up.
#include "store/redis_connection.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "tests/runtime/test_util.h"
#include "tests/store/redis_test_server.h"

namespace popgate::store {
namespace {

using ::popgate::testing::RedisTestServer;
using ::popgate::testing::RunTask;
using ::popgate::testing::SyncReply;

class RedisConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::popgate::testing::RedisServerBinary().empty()) {
      GTEST_SKIP() << "redis-server is not installed";
    }
    ASSERT_TRUE(ring_.Init(256).ok());
  }

  RedisOptions Options(const RedisTestServer& server) {
    RedisOptions o;
    o.host = "127.0.0.1";
    o.port = server.port();
    o.timeout = absl::Milliseconds(200);
    return o;
  }

  // Close, then let the ring finish what the connection had in flight.
  void Finish(RedisConnection& c) {
    c.Close();
    const absl::Time until = absl::Now() + absl::Seconds(2);
    while (!c.idle() && absl::Now() < until) {
      ring_.RunOnce(absl::Milliseconds(5));
    }
    EXPECT_TRUE(c.idle());
  }

  absl::StatusOr<RedisReply> Run(RedisConnection& c, RedisCommand cmd) {
    std::optional<absl::StatusOr<RedisReply>> r =
        RunTask(ring_, c.Command(std::move(cmd)), absl::Seconds(10));
    if (!r) return absl::InternalError("the call never ended");
    return *std::move(r);
  }

  Ring ring_;
};

TEST_F(RedisConnectionTest, CommandsAndBinarySafeArguments) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisConnection c(ring_, Options(server));
  absl::StatusOr<RedisReply> pong = Run(c, {"PING"});
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->type, RedisReply::Type::kStatus);
  EXPECT_EQ(pong->str, "PONG");
  EXPECT_TRUE(c.connected());

  const std::string key("k\0\r\n ey", 7);
  const std::string value("v\0\r\nalue", 8);
  ASSERT_TRUE(Run(c, {"SET", key, value}).ok());
  absl::StatusOr<RedisReply> got = Run(c, {"GET", key});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->type, RedisReply::Type::kString);
  EXPECT_EQ(got->str, value);

  absl::StatusOr<RedisReply> missing = Run(c, {"GET", "nothing-here"});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->type, RedisReply::Type::kNil);
  EXPECT_EQ(missing->AsInteger(), 0);

  // An error reply is a reply, not a failed call.
  absl::StatusOr<RedisReply> err = Run(c, {"INCR", key});
  ASSERT_TRUE(err.ok());
  EXPECT_TRUE(err->is_error());

  absl::StatusOr<RedisReply> arr = Run(c, {"MGET", key, "nothing-here"});
  ASSERT_TRUE(arr.ok());
  ASSERT_EQ(arr->elements.size(), 2u);
  EXPECT_EQ(arr->elements[0].str, value);
  EXPECT_EQ(arr->elements[1].type, RedisReply::Type::kNil);
  Finish(c);
}

Detached Issue(RedisConnection& c, int i, std::vector<long long>& order,
               int& done) {
  RedisCommand cmd = {"INCR", "counter"};
  absl::StatusOr<RedisReply> r = co_await c.Command(std::move(cmd));
  order.push_back(r.ok() ? r->integer : -1);
  (void)i;
  ++done;
}

TEST_F(RedisConnectionTest, PipelinesInOneBatchAndAcrossCalls) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisConnection c(ring_, Options(server));
  std::vector<RedisCommand> cmds;
  for (int i = 0; i < 100; ++i) cmds.push_back({"INCR", "batch"});
  std::optional<absl::StatusOr<std::vector<RedisReply>>> r =
      RunTask(ring_, c.Pipeline(std::move(cmds)));
  ASSERT_TRUE(r && r->ok());
  ASSERT_EQ((*r)->size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ((**r)[i].integer, i + 1);

  // 50 calls issued before any reply: all in flight together, answered in
  // the order they were issued.
  std::vector<long long> order;
  int done = 0;
  for (int i = 0; i < 50; ++i) Issue(c, i, order, done);
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (done < 50 && absl::Now() < until) ring_.RunOnce(absl::Milliseconds(5));
  ASSERT_EQ(done, 50);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i + 1);
  Finish(c);
}

TEST_F(RedisConnectionTest, StoppedServerTimesOutThenRecovers) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisConnection c(ring_, Options(server));
  ASSERT_TRUE(Run(c, {"PING"}).ok());
  server.Pause();
  // Several calls stuck behind each other: all end by the first deadline.
  std::vector<long long> order;
  int done = 0;
  for (int i = 0; i < 5; ++i) Issue(c, i, order, done);
  const absl::Time start = absl::Now();
  absl::StatusOr<RedisReply> r = Run(c, {"PING"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_GE(took, absl::Milliseconds(150));
  EXPECT_LT(took, absl::Milliseconds(700));
  while (done < 5 && absl::Now() < start + absl::Seconds(2)) {
    ring_.RunOnce(absl::Milliseconds(5));
  }
  EXPECT_EQ(done, 5);
  for (long long v : order) EXPECT_EQ(v, -1);
  server.Resume();
  // The stuck replies now arrive on a connection that was dropped; a new
  // one answers once the back-off has passed.
  bool ok = false;
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (!ok && absl::Now() < until) {
    ok = Run(c, {"PING"}).ok();
    if (!ok) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(ok);
  // The five INCRs may or may not have run; nothing else is broken.
  EXPECT_TRUE(Run(c, {"INCR", "after"}).ok());
  Finish(c);
}

TEST_F(RedisConnectionTest, RefusedFailsFastAndBacksOff) {
  RedisOptions o;
  o.host = "127.0.0.1";
  o.port = ::popgate::testing::ClosedLoopbackPort();
  o.timeout = absl::Seconds(2);
  RedisConnection c(ring_, o);
  absl::Time start = absl::Now();
  absl::StatusOr<RedisReply> r = Run(c, {"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  // In the back-off: refused at once, without a connect.
  start = absl::Now();
  r = Run(c, {"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("next try in"), absl::string_view::npos)
      << r.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_FALSE(c.Send({"PING"}));
  Finish(c);
}

TEST_F(RedisConnectionTest, ReconnectsAfterRestart) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisConnection c(ring_, Options(server));
  ASSERT_TRUE(Run(c, {"SET", "a", "1"}).ok());
  server.Kill();
  // Lost: fails (at once, or after seeing the close), never hangs.
  absl::Time start = absl::Now();
  absl::StatusOr<RedisReply> r = Run(c, {"GET", "a"});
  EXPECT_FALSE(r.ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  ASSERT_TRUE(server.Start());
  bool ok = false;
  const absl::Time until = absl::Now() + absl::Seconds(8);
  while (!ok && absl::Now() < until) {
    ok = Run(c, {"PING"}).ok();
    if (!ok) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(ok);
  Finish(c);
}

TEST_F(RedisConnectionTest, AuthAndSelect) {
  const std::string password = "s3cret-pw";
  RedisTestServer server(password);
  ASSERT_TRUE(server.Start());
  RedisOptions o = Options(server);
  o.password = password;
  o.db = 2;
  RedisConnection c(ring_, o);
  absl::StatusOr<RedisReply> set = Run(c, {"SET", "in-db-2", "yes"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_FALSE(set->is_error()) << set->str;
  auto sync = server.Sync(2);
  ASSERT_TRUE(sync);
  SyncReply got(
      static_cast<redisReply*>(redisCommand(sync.get(), "GET in-db-2")));
  ASSERT_TRUE(got);
  EXPECT_EQ(std::string(got->str, got->len), "yes");
  Finish(c);

  RedisOptions bad = Options(server);
  bad.password = "wrong-password";
  RedisConnection w(ring_, bad);
  absl::StatusOr<RedisReply> r = Run(w, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("wrong-password"),
            absl::string_view::npos);
  Finish(w);
}

// An ACL user limited to popgate's key prefix (what docs/redis.md
// suggests), over a unix socket: AUTH user password, keys outside the
// prefix refused by Redis, a wrong password refused without being quoted.
TEST_F(RedisConnectionTest, AclUserOverUnixSocket) {
  const std::string password = "acl-pw-7f3e";
  RedisTestServer server;
  const std::string path = server.EnableUnixSocket();
  server.AddConfig(
      "user popgate on >" + password +
      " resetkeys ~popgate:* resetchannels -@all +ping +select +set +get\n");
  ASSERT_TRUE(server.Start());
  RedisOptions o;
  o.unix_path = path;
  o.user = "popgate";
  o.password = password;
  o.timeout = absl::Milliseconds(500);
  RedisConnection c(ring_, o);
  EXPECT_EQ(c.address(), "unix:" + path);
  absl::StatusOr<RedisReply> set = Run(c, {"SET", "popgate:k", "v"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_FALSE(set->is_error()) << set->str;
  absl::StatusOr<RedisReply> got = Run(c, {"GET", "popgate:k"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str, "v");
  absl::StatusOr<RedisReply> outside = Run(c, {"SET", "other:k", "v"});
  ASSERT_TRUE(outside.ok()) << outside.status();
  EXPECT_TRUE(outside->is_error());  // NOPERM: the ACL holds
  Finish(c);

  RedisOptions bad = o;
  bad.password = "not-the-acl-pw";
  RedisConnection w(ring_, bad);
  absl::StatusOr<RedisReply> r = Run(w, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("not-the-acl-pw"),
            absl::string_view::npos);
  Finish(w);
}

TEST_F(RedisConnectionTest, CloseFailsPendingCalls) {
  RedisTestServer server;
  ASSERT_TRUE(server.Start());
  RedisConnection c(ring_, Options(server));
  ASSERT_TRUE(Run(c, {"PING"}).ok());
  server.Pause();
  std::vector<long long> order;
  int done = 0;
  for (int i = 0; i < 3; ++i) Issue(c, i, order, done);
  c.Close();
  const absl::Time until = absl::Now() + absl::Seconds(2);
  while ((done < 3 || !c.idle()) && absl::Now() < until) {
    ring_.RunOnce(absl::Milliseconds(5));
  }
  EXPECT_EQ(done, 3);
  EXPECT_TRUE(c.idle());
  absl::StatusOr<RedisReply> r = Run(c, {"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  server.Resume();
}

}  // namespace
}  // namespace popgate::store
