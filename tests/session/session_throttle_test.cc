// The brute-force defence in a session (session/login_guard.cc over the
// process's local counters): a blocked user or address gets the [SYS/TEMP]
// refusal before any hash runs, and the session ends.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/login_counters.h"
#include "gtest/gtest.h"
#include "session/login_guard.h"
#include "tests/runtime/test_util.h"
#include "tests/session/test_env.h"

namespace popgate::testing {
namespace {

// One passwd-file tenant; loopback (the harness's client) is not exempt,
// and the hash pool's queue holds one job: with the pool blocked, a login
// that reached the hash would be answered "Server busy".
std::string Toml() {
  static const std::string passwd = testing::WriteTestFile(
      "throttle.passwd", "alice@example.com:{PLAIN}secret\n");
  return absl::StrCat(
      "[server]\n"
      "auth_failure_delay = \"10ms\"\n"
      "auth_queue_limit = 1\n"
      "[tls]\n"
      "session_tickets = false\n"
      "ktls = false\n"
      "[[listener]]\n"
      "address = \"127.0.0.1:1\"\n"
      "default_tenant = \"files\"\n"
      "plaintext_auth = \"always\"\n"
      "[[tenant]]\n"
      "name = \"files\"\n"
      "domains = [\"example.com\"]\n"
      "auth = \"file\"\n"
      "passwd_file = \"",
      passwd,
      "\"\n"
      "backends = [ { address = \"{BACKEND}\" } ]\n"
      "[limits]\n"
      "exempt_networks = []\n");
}

auth::ThrottleSettings BlockAtOnce() {
  auth::ThrottleSettings s;
  s.address_failures_to_block = 1;
  s.user_failures_to_block = 1;
  s.address_users_to_block = 0;
  s.block_time = absl::Minutes(10);
  return s;
}

// The session's outcome for a login with the right password.
SessionOutcome RightPassword(std::string* reply) {
  SessionHarness h(Toml());
  h.BlockHashPool();
  EXPECT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  *reply = c.Line();
  EXPECT_TRUE(c.AtEof()) << "the blocked session stayed open";
  h.client_fd().Reset();
  std::optional<SessionOutcome> out = h.Wait();
  EXPECT_TRUE(out.has_value());
  return out.value_or(SessionOutcome{});
}

// One test for both (the counters are the process's: a blocked loopback
// address would also refuse a later test's user in this process).
TEST(SessionThrottleTest, BlockedUserThenAddressRefusedWithoutAHash) {
  auth::LoginCounters& counters = auth::LoginCounters::Process();
  const std::string user = ThrottleUserKey("files", "alice@example.com");
  counters.RecordFailure("", user, BlockAtOnce(), absl::Now());

  std::string reply;
  SessionOutcome out = RightPassword(&reply);
  EXPECT_EQ(reply, "-ERR [SYS/TEMP] Too many failed logins; try again later");
  EXPECT_EQ(out.result(), "blocked") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"detail\":\"user blocked\""))
      << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":0"))
      << out.log_line;
  EXPECT_EQ(out.backend_connections, 0);

  counters.RecordFailure("127.0.0.1", "", BlockAtOnce(), absl::Now());
  out = RightPassword(&reply);
  EXPECT_EQ(reply, "-ERR [SYS/TEMP] Too many failed logins; try again later");
  EXPECT_EQ(out.result(), "blocked") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"detail\":\"address blocked\""))
      << out.log_line;
  EXPECT_EQ(out.backend_connections, 0);
}

}  // namespace
}  // namespace popgate::testing
