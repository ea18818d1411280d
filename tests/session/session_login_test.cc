// The session's login state machine, end to end but in one process: the
// session runs on a TestEnv ring against a ScriptedBackend on the same ring;
// the test thread is the client over a loopback TCP pair. Each test checks
// what the client saw, what the backend received, and the session log
// line's "result".
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "backend/backend_login.h"
#include "tests/runtime/test_util.h"
#include "tests/session/scripted_backend.h"
#include "tests/session/test_env.h"

namespace popgate {
namespace {

using testing::BackendReply;
using testing::BackendScript;
using testing::Client;
using testing::DefaultScript;
using testing::SessionHarness;
using testing::SessionOutcome;
using testing::TestMessage;

struct ConfigOptions {
  std::string server;  // extra [server] lines
  std::string listener = "tls = \"none\"\n";
  std::string file_backend = "{BACKEND}";  // the file tenant's backend
};

// Two tenants: "files" (passwd-file, alice@example.com / secret, the
// default) and "direct" (auth = "backend": the backend's answer to PASS is
// the verdict), both on the scripted backend.
std::string Toml(const ConfigOptions& o = {}) {
  static const std::string passwd = testing::WriteTestFile(
      "example.com.passwd", "alice@example.com:{PLAIN}secret\n");
  return absl::StrCat(
      "[server]\n"
      "max_auth_failures = 3\n"
      "auth_failure_delay = \"10ms\"\n"
      "preauth_idle_timeout = \"10s\"\n"
      "backend_timeout = \"5s\"\n"
      "backend_auth_timeout = \"5s\"\n"
      "forward_idle_timeout = \"10s\"\n"
      "client_drain_timeout = \"2s\"\n",
      o.server,
      "[tls]\n"
      "session_tickets = false\n"
      "ktls = false\n"
      "[[listener]]\n"
      "address = \"127.0.0.1:1\"\n"
      "default_tenant = \"files\"\n"
      "plaintext_auth = \"trusted\"\n",
      o.listener,
      "[[tenant]]\n"
      "name = \"files\"\n"
      "domains = [\"example.com\"]\n"
      "auth = \"file\"\n"
      "passwd_file = \"",
      passwd,
      "\"\n"
      "backends = [ { address = \"",
      o.file_backend,
      "\" } ]\n"
      "[[tenant]]\n"
      "name = \"direct\"\n"
      "domains = [\"backend.test\"]\n"
      "auth = \"backend\"\n"
      "backends = [ { address = \"{BACKEND}\" } ]\n");
}

// Runs the session to its end after the client is done with it.
SessionOutcome Finish(SessionHarness& h) {
  std::optional<SessionOutcome> out = h.Wait();
  EXPECT_TRUE(out.has_value()) << "the session did not end";
  if (!out) return {};
  EXPECT_EQ(out->live_after, 0u) << "a session stayed registered";
  // popgate's own CAPA probe (it looks for a loop token) is no command of
  // the client's: leave it out of what the tests compare.
  std::erase(out->backend_lines, std::string("CAPA"));
  return *out;
}

bool Contains(const std::vector<std::string>& v, const std::string& needle) {
  for (const std::string& s : v) {
    if (absl::StrContains(s, needle)) return true;
  }
  return false;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) absl::StrAppend(&out, "[", s, "] ");
  return out;
}

// AUTH PLAIN's initial response: base64("" NUL user NUL password).
std::string SaslPlain(const std::string& user, const std::string& password) {
  std::string raw(1, '\0');
  absl::StrAppend(&raw, user);
  raw.push_back('\0');
  absl::StrAppend(&raw, password);
  return absl::Base64Escape(raw);
}

TEST(SessionLoginTest, UserPassThenRetrThroughForwarding) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("PASS secret\r\n"));
  EXPECT_EQ(c.Line(), "+OK logged in");  // the backend's own +OK, relayed
  ASSERT_TRUE(c.Send("RETR 1\r\n"));
  const std::string msg = TestMessage();
  EXPECT_EQ(c.Line(), absl::StrCat("+OK ", msg.size(), " octets"));
  EXPECT_TRUE(c.Body() == msg) << "message differs";
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_EQ(c.Line(), "+OK bye");
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(testing::JsonField(out.log_line, "forwarding"), "splice");
  EXPECT_EQ(testing::JsonField(out.log_line, "tenant"), "files");
  EXPECT_EQ(out.backend_lines,
            (std::vector<std::string>{"USER alice@example.com", "PASS secret",
                                      "RETR 1", "QUIT"}));
}

// Everything in one write: what follows PASS reaches the backend after the
// login, in order, and the replies come back in order.
TEST(SessionLoginTest, PipeliningBehindPassIsDeliveredInOrder) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(
      c.Send("USER alice@example.com\r\nPASS secret\r\nSTAT\r\nLIST\r\n"
             "NOOP\r\nQUIT\r\n"));
  const std::string msg = TestMessage();
  EXPECT_TRUE(c.Line().starts_with("+OK"));  // USER
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), absl::StrCat("+OK 1 ", msg.size()));
  EXPECT_EQ(c.Line(), "+OK 1 messages");
  EXPECT_EQ(c.Body(), absl::StrCat("1 ", msg.size(), "\r\n"));
  EXPECT_EQ(c.Line(), "+OK");
  EXPECT_EQ(c.Line(), "+OK bye");
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.backend_lines,
            (std::vector<std::string>{"USER alice@example.com", "PASS secret",
                                      "STAT", "LIST", "NOOP", "QUIT"}));
  EXPECT_EQ(out.result(), "ok") << out.log_line;
}

// CVE-2011-0411: whatever was pipelined in plaintext behind STLS is
// discarded, not executed after the handshake. Here a man in the middle
// injected a valid USER: if it were kept, the client's PASS over TLS would
// log in as that user. It must be refused for want of a USER instead.
TEST(SessionLoginTest, StlsDiscardsPipelinedPlaintext) {
  ConfigOptions o;
  o.listener =
      "tls = \"starttls\"\n"
      "certificates = [ { cert = \"{CERT}\", key = \"{KEY}\" } ]\n";
  BackendScript script = DefaultScript();
  auto base = script.respond;
  script.respond = [base](const std::string& line) -> BackendReply {
    if (line == "USER mallory") return {"+OK\r\n"};
    if (line == "PASS secret") return {"+OK logged in\r\n"};
    return base(line);
  };
  SessionHarness h(Toml(o), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("STLS\r\nUSER mallory@backend.test\r\n"));
  EXPECT_EQ(c.Line(), "+OK Begin TLS negotiation");
  ASSERT_TRUE(c.StartTls("mail.example.test")) << c.tls_error();
  ASSERT_TRUE(c.Send("PASS secret\r\n"));
  EXPECT_EQ(c.Line(), "-ERR No username given, send USER first")
      << "the USER injected before TLS was kept";
  ASSERT_TRUE(c.Send("USER alice@example.com\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("PASS secret\r\n"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_EQ(c.Line(), "+OK bye");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_FALSE(Contains(out.backend_lines, "mallory"))
      << Joined(out.backend_lines);
  EXPECT_EQ(out.backend_connections, 1);
  EXPECT_EQ(testing::JsonField(out.log_line, "user"), "alice@example.com");
  EXPECT_EQ(testing::JsonField(out.log_line, "tls"), "TLSv1.3");
  EXPECT_EQ(testing::JsonField(out.log_line, "forwarding"), "copy");
  EXPECT_EQ(out.result(), "ok") << out.log_line;
}

// A STARTTLS listener refuses plaintext credentials from an untrusted
// network... but 127.0.0.1 is trusted by default; with plaintext_auth =
// "never" USER is refused before STLS.
TEST(SessionLoginTest, PlaintextRefusedBeforeStlsWhenNever) {
  ConfigOptions o;
  o.listener =
      "tls = \"starttls\"\n"
      "plaintext_auth = \"never\"\n"
      "certificates = [ { cert = \"{CERT}\", key = \"{KEY}\" } ]\n";
  // plaintext_auth is set twice otherwise: drop the default line.
  std::string toml = Toml(o);
  toml.erase(toml.find("plaintext_auth = \"trusted\"\n"),
             sizeof("plaintext_auth = \"trusted\"\n") - 1);
  SessionHarness h(toml);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\n"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH]"));
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.backend_connections, 0);
  EXPECT_EQ(out.result(), "quit") << out.log_line;
}

TEST(SessionLoginTest, QuitBeforeLogin) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("CAPA\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(absl::StrContains(c.Body(), "PIPELINING"));
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "quit") << out.log_line;
  EXPECT_EQ(out.backend_connections, 0);
}

TEST(SessionLoginTest, WrongPasswordThenClientLeaves) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS wrong\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "auth_failed") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":1"));
  // The file tenant's verdict is popgate's: the backend is never asked.
  EXPECT_EQ(out.backend_connections, 0);
  EXPECT_FALSE(absl::StrContains(out.log_line, "wrong"));  // no secret
}

TEST(SessionLoginTest, UnknownUserFailsLikeAWrongPassword) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER nobody@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "-ERR [AUTH] Authentication failed.");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "auth_failed") << out.log_line;
  EXPECT_EQ(out.backend_connections, 0);
}

TEST(SessionLoginTest, TooManyAuthFailuresCloses) {
  ConfigOptions o;
  o.server = "login_timeout = \"30s\"\n";
  std::string toml = Toml(o);
  toml.replace(toml.find("max_auth_failures = 3"), 21, "max_auth_failures = 2");
  SessionHarness h(toml);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS one\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH]"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS two\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(absl::StrContains(c.Line(), "too many failures"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "too_many_auth_failures") << out.log_line;
}

TEST(SessionLoginTest, BackendUnavailable) {
  ConfigOptions o;
  o.file_backend = "{CLOSED}";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "backend_unavailable") << out.log_line;
  EXPECT_FALSE(absl::StrContains(out.log_line, "secret"));
}

// A backend that greets with -ERR: unavailable, not a failed login.
TEST(SessionLoginTest, BackendGreetingRefused) {
  BackendScript script = DefaultScript();
  script.greeting = "-ERR [SYS/TEMP] maintenance\r\n";
  SessionHarness h(Toml(), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "backend_unavailable") << out.log_line;
}

// auth = "backend": the backend's -ERR to PASS is the verdict, relayed
// with its response code, and counted as a failed login.
TEST(SessionLoginTest, BackendRejectsPassword) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER bob@backend.test\r\nPASS nope\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "-ERR [AUTH] Invalid login");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "auth_failed") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":1"));
  EXPECT_EQ(out.backend_lines,
            (std::vector<std::string>{"USER bob@backend.test", "PASS nope"}));
}

// [IN-USE] from the backend (the mailbox is locked) says nothing about the
// password: relayed at once, not counted as a failed login (issue 8, §1.3).
TEST(SessionLoginTest, BackendInUseIsRelayedAndNotCounted) {
  BackendScript script = DefaultScript();
  auto base = script.respond;
  script.respond = [base](const std::string& line) -> BackendReply {
    if (line.starts_with("PASS ")) {
      return {"-ERR [IN-USE] Mailbox is locked by another session\r\n"};
    }
    return base(line);
  };
  SessionHarness h(Toml(), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER bob@backend.test\r\nPASS pw\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "-ERR [IN-USE] Mailbox is locked by another session");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "backend_refused") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":0"));
}

// AUTH PLAIN whose decoded password holds CRLF and a command: refused
// before anything reaches the backend (issue 8, §1.1).
TEST(SessionLoginTest, SaslPasswordWithCrlfNeverReachesTheBackend) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  const std::string blob = SaslPlain("bob@backend.test", "demo\r\nDELE 1");
  ASSERT_TRUE(c.Send(absl::StrCat("AUTH PLAIN ", blob, "\r\n")));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_FALSE(Contains(out.backend_lines, "DELE"))
      << Joined(out.backend_lines);
  EXPECT_FALSE(Contains(out.backend_lines, "PASS"))
      << Joined(out.backend_lines);
  EXPECT_EQ(out.result(), "auth_failed") << out.log_line;
}

TEST(SessionLoginTest, AuthPlainLogsIn) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  const std::string blob = SaslPlain("alice@example.com", "secret");
  ASSERT_TRUE(c.Send(absl::StrCat("AUTH PLAIN ", blob, "\r\nQUIT\r\n")));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "+OK bye");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(out.backend_lines,
            (std::vector<std::string>{"USER alice@example.com", "PASS secret",
                                      "QUIT"}));
}

TEST(SessionLoginTest, IdleTimeoutBeforeLogin) {
  ConfigOptions o;
  std::string toml = Toml(o);
  toml.replace(toml.find("preauth_idle_timeout = \"10s\""), 28,
               "preauth_idle_timeout = \"100ms\"");
  SessionHarness h(toml);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  // Say nothing.
  EXPECT_TRUE(c.Line().starts_with("-ERR"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "idle_timeout") << out.log_line;
}

// The login deadline counts from accept whatever the client does; here it
// passes long before the idle timeout would.
TEST(SessionLoginTest, LoginTimeout) {
  ConfigOptions o;
  o.server = "login_timeout = \"500ms\"\n";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("CAPA\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  c.Body();
  // A USER line that never ends.
  ASSERT_TRUE(c.Send("USER alice"));
  EXPECT_TRUE(c.Line().starts_with("-ERR"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "login_timeout") << out.log_line;
}

TEST(SessionLoginTest, TooManyInvalidCommandsIsAProtocolError) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  std::string burst;
  for (int i = 0; i < 20; ++i) burst += "XYZZY\r\n";
  ASSERT_TRUE(c.Send(burst));
  std::string last;
  for (int i = 0; i < 20; ++i) last = c.Line();
  EXPECT_TRUE(absl::StrContains(last, "Too many invalid commands")) << last;
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "protocol_error") << out.log_line;
}

// max_preauth_commands counts every command, CAPA included.
TEST(SessionLoginTest, TooManyCommandsBeforeLogin) {
  ConfigOptions o;
  o.server = "max_preauth_commands = 3\n";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send("CAPA\r\n"));
    EXPECT_TRUE(c.Line().starts_with("+OK"));
    c.Body();
  }
  ASSERT_TRUE(c.Send("CAPA\r\n"));
  EXPECT_TRUE(c.Line().starts_with("-ERR"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "too_many_commands") << out.log_line;
}

// A line that never ends is closed, not read for ever.
TEST(SessionLoginTest, EndlessLineIsClosed) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER " + std::string(8192, 'a')));
  std::string line;
  do {
    line = c.Line();
  } while (line.starts_with("-ERR Line too long") &&
           !absl::StrContains(line, "closing"));
  EXPECT_TRUE(absl::StrContains(line, "closing")) << line;
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "line_too_long") << out.log_line;
}

// The hash pool's queue is full: -ERR [SYS/TEMP] at once, "overloaded",
// not a failed login.
TEST(SessionLoginTest, FullHashPoolQueueIsOverloaded) {
  ConfigOptions o;
  o.server = "auth_queue_limit = 1\n";
  SessionHarness h(Toml(o));
  h.BlockHashPool();
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "overloaded") << out.log_line;
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":0"));
}

// The backend dies in the middle of RETR (issue 8, §1.14): the session's
// result says so, not "ok".
TEST(SessionLoginTest, BackendDiesMidRetr) {
  BackendScript script = DefaultScript();
  auto base = script.respond;
  script.respond = [base](const std::string& line) -> BackendReply {
    if (line == "RETR 1") {
      return {"+OK 999999 octets\r\nSubject: cut\r\n\r\npart of it",
              /*close_after=*/true, /*reset=*/true};
    }
    return base(line);
  };
  SessionHarness h(Toml(), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nRETR 1\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "+OK 999999 octets");
  c.Body();  // what arrived, up to the cut
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "backend_reset") << out.log_line;
}

// The backend closes on its own (autologout) while forwarding.
TEST(SessionLoginTest, BackendClosesWhileForwarding) {
  BackendScript script = DefaultScript();
  auto base = script.respond;
  script.respond = [base](const std::string& line) -> BackendReply {
    if (line == "NOOP") return {"-ERR autologout\r\n", /*close_after=*/true};
    return base(line);
  };
  SessionHarness h(Toml(), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nNOOP\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "-ERR autologout");
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "backend_closed") << out.log_line;
}

// The client resets while forwarding: client_reset, and the backend gets
// no QUIT (DELE marks are discarded, RFC 1939).
TEST(SessionLoginTest, ClientResetWhileForwarding) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nNOOP\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "+OK");
  testing::CloseWithReset(h.client_fd());
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "client_reset") << out.log_line;
  EXPECT_FALSE(Contains(out.backend_lines, "QUIT"));
}

// The client closes (FIN, no QUIT) while forwarding.
TEST(SessionLoginTest, ClientClosesWhileForwarding) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nDELE 1\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_TRUE(c.Line().starts_with("-ERR"));  // the script knows no DELE
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "client_closed") << out.log_line;
  EXPECT_FALSE(Contains(out.backend_lines, "QUIT"));
}

// A backend whose CAPA names this very process's loop token is
// popgate itself (a config loop through another route): -ERR [SYS/TEMP],
// result "loop", and no PASS is sent to it.
TEST(SessionLoginTest, LoopToOurselvesIsDetected) {
  BackendScript script = DefaultScript();
  auto base = script.respond;
  script.respond = [base](const std::string& line) -> BackendReply {
    if (line == "CAPA") {
      return {absl::StrCat("+OK\r\nUSER\r\nIMPLEMENTATION popgate ",
                           std::string(kLoopTokenTag), ProcessLoopToken(),
                           "\r\n.\r\n")};
    }
    return base(line);
  };
  SessionHarness h(Toml(), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [SYS/TEMP]"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "loop") << out.log_line;
  EXPECT_FALSE(Contains(out.backend_lines, "PASS"))
      << Joined(out.backend_lines);
}

// Implicit TLS: a client that sends garbage instead of a ClientHello.
TEST(SessionLoginTest, ImplicitTlsHandshakeFailure) {
  ConfigOptions o;
  o.listener =
      "tls = \"implicit\"\n"
      "certificates = [ { cert = \"{CERT}\", key = \"{KEY}\" } ]\n";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  ASSERT_TRUE(testing::WriteAllBlocking(h.client(), "USER alice\r\n"));
  testing::ReadUntilEof(h.client());  // an alert, then the end
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "tls_handshake_failed") << out.log_line;
  EXPECT_EQ(out.backend_connections, 0);
}

TEST(SessionLoginTest, ImplicitTlsHandshakeTimeout) {
  ConfigOptions o;
  o.listener =
      "tls = \"implicit\"\n"
      "certificates = [ { cert = \"{CERT}\", key = \"{KEY}\" } ]\n";
  std::string toml = Toml(o);
  toml.replace(toml.find("ktls = false"), 12,
               "ktls = false\nhandshake_timeout = \"100ms\"");
  SessionHarness h(toml);
  ASSERT_TRUE(h.Start());
  // Say nothing: the handshake never starts.
  testing::ReadUntilEof(h.client());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "tls_handshake_timeout") << out.log_line;
}

// Implicit TLS, then a normal login and a RETR through the copy path.
TEST(SessionLoginTest, ImplicitTlsLoginAndRetr) {
  ConfigOptions o;
  o.listener =
      "tls = \"implicit\"\n"
      "certificates = [ { cert = \"{CERT}\", key = \"{KEY}\" } ]\n";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  ASSERT_TRUE(c.StartTls("mail.example.test")) << c.tls_error();
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nRETR 1\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  const std::string msg = TestMessage();
  EXPECT_EQ(c.Line(), absl::StrCat("+OK ", msg.size(), " octets"));
  EXPECT_TRUE(c.Body() == msg) << "message differs";
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_EQ(c.Line(), "+OK bye");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(testing::JsonField(out.log_line, "forwarding"), "copy");
}

// The end of the shutdown grace: the worker shuts down every registered
// session's sockets. A forwarded session has its backend socket registered,
// unwinds through its normal exit, and sends the backend no QUIT.
TEST(SessionLoginTest, CutAtShutdownEndsAForwardedSession) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\nPASS secret\r\nNOOP\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "+OK");
  EXPECT_EQ(h.CutLiveSessions(), 1);
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_FALSE(Contains(out.backend_lines, "QUIT"));
  EXPECT_NE(out.result(), "ok") << out.log_line;
}

// Cut before login (a client idling at the greeting): the session ends.
TEST(SessionLoginTest, CutAtShutdownEndsASessionBeforeLogin) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(h.CutLiveSessions(), 0);
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.backend_connections, 0);
}

// Commands pipelined behind a PASS that fails are answered by popgate as
// pre-login commands, never forwarded; a later good login in the same
// connection works and the failure stays counted.
TEST(SessionLoginTest, PipelinedBehindAFailedPassIsNotForwarded) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(
      c.Send("USER alice@example.com\r\nPASS wrong\r\nDELE 1\r\n"
             "USER alice@example.com\r\nPASS secret\r\nQUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH]"));
  EXPECT_TRUE(c.Line().starts_with("-ERR"));  // DELE before login
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  EXPECT_EQ(c.Line(), "+OK bye");
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.backend_lines,
            (std::vector<std::string>{"USER alice@example.com", "PASS secret",
                                      "QUIT"}));
  EXPECT_TRUE(absl::StrContains(out.log_line, "\"auth_failures\":1"));
  EXPECT_EQ(out.result(), "ok") << out.log_line;
}

}  // namespace
}  // namespace popgate
