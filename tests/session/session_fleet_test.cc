// The session's choice of backend (issue "Front a fleet"): fail-over past an
// unreachable or drained backend, state = "down", the maildrop guard, the
// tenant's CAPA capabilities. One process, a scripted backend and a closed
// port; users are picked by their rendezvous order so each case is
// deterministic whatever ports the run gets.
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backend/maildrop_guard.h"
#include "gtest/gtest.h"
#include "routing/rendezvous.h"
#include "tests/session/scripted_backend.h"
#include "tests/session/test_env.h"

namespace popgate {
namespace {

using testing::Client;
using testing::SessionHarness;
using testing::SessionOutcome;

// One tenant "direct" (auth = "backend": the scripted backend's answer to
// PASS decides) with `tenant` lines and the given backends table(s).
std::string FleetToml(const std::string& tenant, const std::string& backends) {
  return absl::StrCat(
      "[server]\n"
      "auth_failure_delay = \"10ms\"\n"
      "backend_timeout = \"2s\"\n"
      "[tls]\n"
      "session_tickets = false\n"
      "ktls = false\n"
      "[[listener]]\n"
      "address = \"127.0.0.1:1\"\n"
      "default_tenant = \"direct\"\n"
      "plaintext_auth = \"always\"\n"
      "[[tenant]]\n"
      "name = \"direct\"\n"
      "domains = [\"backend.test\"]\n"
      "auth = \"backend\"\n",
      tenant, backends);
}

// A user of backend.test whose first backend in rendezvous order (all of
// weight 1) is `first` among `ids`.
std::string UserFirstOn(const std::string& first,
                        const std::vector<std::string>& ids) {
  std::vector<routing::WeightedNode> nodes;
  for (const std::string& id : ids) nodes.push_back({id, 1});
  std::vector<uint32_t> order(nodes.size());
  for (int i = 0; i < 10000; ++i) {
    std::string user = absl::StrCat("u", i, "@backend.test");
    routing::RankRendezvous(user, nodes, order);
    if (nodes[order[0]].id == first) return user;
  }
  ADD_FAILURE() << "no user ranks " << first << " first";
  return "";
}

// Logs in as `user` (any password the script takes) and returns the reply.
std::string Login(Client& c, const std::string& user) {
  EXPECT_TRUE(c.Line().starts_with("+OK"));  // greeting
  EXPECT_TRUE(c.Send(absl::StrCat("USER ", user, "\r\n")));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Send("PASS secret\r\n"));
  return c.Line();
}

SessionOutcome QuitAndFinish(SessionHarness& h, Client& c) {
  EXPECT_TRUE(c.Send("QUIT\r\n"));
  c.Line();
  h.client_fd().Reset();
  std::optional<SessionOutcome> out = h.Wait();
  EXPECT_TRUE(out.has_value()) << "the session did not end";
  return out.value_or(SessionOutcome{});
}

constexpr char kClosedThenBackend[] =
    "[[tenant.backends]]\naddress = \"{CLOSED}\"\n"
    "[[tenant.backends]]\naddress = \"{BACKEND}\"\n";

TEST(SessionFleetTest, NextPassesOverAnUnreachableFirstBackend) {
  SessionHarness h(FleetToml("failover = \"next\"\n", kClosedThenBackend));
  ASSERT_TRUE(h.Start());
  const std::string user = UserFirstOn(
      h.closed_address(), {h.closed_address(), h.backend_address()});
  Client c(h.client());
  EXPECT_EQ(Login(c, user), "+OK logged in");
  SessionOutcome out = QuitAndFinish(h, c);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(testing::JsonField(out.log_line, "backend"), h.backend_address());
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"failovers\":1"))
      << out.log_line;
}

TEST(SessionFleetTest, NoneRefusesWhenTheUsersBackendIsUnreachable) {
  SessionHarness h(FleetToml("failover = \"none\"\n", kClosedThenBackend));
  ASSERT_TRUE(h.Start());
  const std::string user = UserFirstOn(
      h.closed_address(), {h.closed_address(), h.backend_address()});
  Client c(h.client());
  EXPECT_TRUE(Login(c, user).starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  std::optional<SessionOutcome> out = h.Wait();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->result(), "backend_unavailable") << out->log_line;
  EXPECT_EQ(out->backend_connections, 0);  // nobody else moved
}

TEST(SessionFleetTest, StateDownIsNeverTried) {
  SessionHarness h(FleetToml(
      "", "[[tenant.backends]]\naddress = \"{BACKEND}\"\nstate = \"down\"\n"));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(Login(c, "bob@backend.test").starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  std::optional<SessionOutcome> out = h.Wait();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->result(), "no_backend") << out->log_line;
  EXPECT_TRUE(absl::StrContains(out->log_line, "forced_down")) << out->log_line;
  EXPECT_EQ(out->backend_connections, 0);
}

TEST(SessionFleetTest, DrainedFirstBackendSendsNewSessionsToTheNext) {
  SessionHarness h(FleetToml("failover = \"next\"\n",
                             "[[tenant.backends]]\naddress = \"{CLOSED}\"\n"
                             "state = \"drain\"\n"
                             "[[tenant.backends]]\naddress = \"{BACKEND}\"\n"));
  ASSERT_TRUE(h.Start());
  const std::string user = UserFirstOn(
      h.closed_address(), {h.closed_address(), h.backend_address()});
  Client c(h.client());
  EXPECT_EQ(Login(c, user), "+OK logged in");
  SessionOutcome out = QuitAndFinish(h, c);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"failovers\":1"))
      << out.log_line;
}

TEST(SessionFleetTest, UserWithSessionsOnAnotherBackendGetsInUse) {
  SessionHarness h(FleetToml("failover = \"next\"\n", kClosedThenBackend));
  ASSERT_TRUE(h.Start());
  const std::string user = UserFirstOn(
      h.backend_address(), {h.closed_address(), h.backend_address()});
  // Another session of this user is open on a backend that a reload has
  // since removed from the pool: the user may not go anywhere else.
  std::string key = "direct";
  key.push_back('\0');
  key += user;
  ASSERT_TRUE(MaildropGuard::Process().Claim(key, "127.0.0.1:7"));
  Client c(h.client());
  EXPECT_TRUE(Login(c, user).starts_with("-ERR [IN-USE]"));
  h.client_fd().Reset();
  std::optional<SessionOutcome> out = h.Wait();
  MaildropGuard::Process().Release(key, "127.0.0.1:7");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->result(), "in_use") << out->log_line;
  EXPECT_EQ(out->backend_connections, 0);
  EXPECT_EQ(MaildropGuard::Process().users(), 0u);
}

TEST(SessionFleetTest, UserIsPinnedToTheBackendTheirSessionsAreOn) {
  SessionHarness h(
      FleetToml("failover = \"next\"\n",
                "[[tenant.backends]]\naddress = \"{BACKEND}\"\n"
                "[[tenant.backends]]\naddress = \"127.0.0.1:9\"\n"));
  ASSERT_TRUE(h.Start());
  // The user's first choice is the other one, but a session of theirs is
  // open on the scripted backend: the new one goes there too.
  const std::string user =
      UserFirstOn("127.0.0.1:9", {h.backend_address(), "127.0.0.1:9"});
  std::string key = "direct";
  key.push_back('\0');
  key += user;
  ASSERT_TRUE(MaildropGuard::Process().Claim(key, h.backend_address()));
  Client c(h.client());
  EXPECT_EQ(Login(c, user), "+OK logged in");
  SessionOutcome out = QuitAndFinish(h, c);
  MaildropGuard::Process().Release(key, h.backend_address());
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(testing::JsonField(out.log_line, "backend"), h.backend_address());
  EXPECT_EQ(MaildropGuard::Process().users(), 0u);
}

TEST(SessionFleetTest, CapaOffersTheTenantsCapabilities) {
  SessionHarness h(FleetToml("capabilities = [\"TOP\", \"EXPIRE NEVER\"]\n",
                             "[[tenant.backends]]\naddress = \"{BACKEND}\"\n"));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("CAPA\r\n"));
  std::vector<std::string> lines;
  for (std::string l = c.Line(); !l.empty() && l != "."; l = c.Line()) {
    lines.push_back(l);
  }
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(lines[0].starts_with("+OK"));
  const std::vector<std::string> rest(lines.begin() + 1, lines.end());
  ASSERT_EQ(rest.size(), 5u) << ::testing::PrintToString(rest);
  EXPECT_EQ(rest[0], "USER");
  EXPECT_TRUE(rest[1].starts_with("SASL "));
  EXPECT_EQ(rest[2], "TOP");
  EXPECT_EQ(rest[3], "EXPIRE NEVER");
  EXPECT_TRUE(rest[4].starts_with("IMPLEMENTATION popgate popgate-id="));
  h.client_fd().Reset();
  h.Wait();
}

}  // namespace
}  // namespace popgate
