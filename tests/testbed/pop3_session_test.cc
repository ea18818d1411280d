#include "testbed/synth/pop3_session.h"

#include <memory>
#include <string>
#include <string_view>

#include "testbed/synth/dot_stuffing.h"
#include "testbed/synth/message.h"
#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

constexpr char kAlice[] = "alice@example.com";
constexpr char kAuthFailed[] = "-ERR [AUTH] Authentication failed.\r\n";

class Pop3SessionTest : public ::testing::Test {
 protected:
  Pop3SessionTest() {
    std::vector<StoredMessage> messages = {{1, 300}, {2, 2000}, {3, 700}};
    store_.Add(kAlice, "demo", messages);
    store_.Add("bob@example.com", "pass with spaces", messages);
    store_.Add("big@example.com", "x", {{1, 1 << 20}});
  }

  std::unique_ptr<Pop3Session> NewSession() {
    auto s = std::make_unique<Pop3Session>(&store_, &cache_, &options_);
    s->Start();
    return s;
  }
  // Feeds `input`, answers it, and returns everything queued.
  static std::string Send(Pop3Session& s, std::string_view input) {
    s.Feed(input);
    s.Process();
    return s.TakeOutput();
  }
  std::unique_ptr<Pop3Session> LoggedIn(std::string_view user = kAlice,
                                        std::string_view pass = "demo") {
    auto s = NewSession();
    s->TakeOutput();
    std::string out = Send(*s, std::string("USER ") + std::string(user) +
                                   "\r\nPASS " + std::string(pass) + "\r\n");
    EXPECT_EQ(out.substr(0, 14), "+OK send PASS\r");
    EXPECT_TRUE(s->logged_in()) << out;
    return s;
  }
  static std::string Retr(std::string_view user, int n, size_t size) {
    return "+OK " + std::to_string(size) + " octets\r\n" +
           DotStuff(SynthMessage(user, n, size)) + ".\r\n";
  }

  MaildropStore store_;
  BodyWireCache cache_;
  SessionOptions options_;
};

TEST_F(Pop3SessionTest, GreetingAndCapa) {
  auto s = NewSession();
  EXPECT_EQ(s->TakeOutput(), "+OK pop3-synth ready.\r\n");
  EXPECT_EQ(Send(*s, "CAPA\r\n"),
            "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\n"
            "PIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
            "IMPLEMENTATION pop3-synth\r\n.\r\n");
}

TEST_F(Pop3SessionTest, CustomGreeting) {
  options_.greeting = "synth at your service";
  auto s = NewSession();
  EXPECT_EQ(s->TakeOutput(), "+OK synth at your service\r\n");
}

TEST_F(Pop3SessionTest, UserPassLogin) {
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, "USER alice@example.com\r\n"), "+OK send PASS\r\n");
  EXPECT_EQ(Send(*s, "PASS demo\r\n"),
            "+OK alice@example.com has 3 messages (3000 octets)\r\n");
  EXPECT_TRUE(s->logged_in());
  EXPECT_EQ(Send(*s, "USER bob\r\n"), "-ERR already logged in\r\n");
}

TEST_F(Pop3SessionTest, PasswordWithSpaces) {
  auto s = LoggedIn("bob@example.com", "pass with spaces");
}

TEST_F(Pop3SessionTest, WrongPasswordAndUnknownUserLookAlike) {
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, "USER alice@example.com\r\nPASS nope\r\n"),
            std::string("+OK send PASS\r\n") + kAuthFailed);
  EXPECT_EQ(Send(*s, "USER nobody@example.com\r\nPASS demo\r\n"),
            std::string("+OK send PASS\r\n") + kAuthFailed);
  // Case-sensitive user names.
  EXPECT_EQ(Send(*s, "USER Alice@example.com\r\nPASS demo\r\n"),
            std::string("+OK send PASS\r\n") + kAuthFailed);
  // A failed PASS forgets the USER.
  EXPECT_EQ(Send(*s, "PASS demo\r\n"), "-ERR send USER first\r\n");
  EXPECT_FALSE(s->logged_in());
  EXPECT_EQ(Send(*s, "USER alice@example.com\r\nPASS demo\r\n"),
            "+OK send PASS\r\n+OK alice@example.com has 3 messages (3000 "
            "octets)\r\n");
}

TEST_F(Pop3SessionTest, WrongStateAndUnknownCommands) {
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, "STAT\r\n"), "-ERR command not valid before login\r\n");
  EXPECT_EQ(Send(*s, "RETR 1\r\n"), "-ERR command not valid before login\r\n");
  EXPECT_EQ(Send(*s, "PASS x\r\n"), "-ERR send USER first\r\n");
  EXPECT_EQ(Send(*s, "USER\r\n"), "-ERR USER needs a name\r\n");
  EXPECT_EQ(Send(*s, "XYZZY\r\n"), "-ERR unknown command\r\n");
  EXPECT_EQ(Send(*s, "APOP a b\r\n"), "-ERR APOP not supported\r\n");
  EXPECT_EQ(Send(*s, "\r\n"), "-ERR empty command\r\n");
}

TEST_F(Pop3SessionTest, InUseWhileLockedThenReleasedOnDisconnect) {
  auto first = LoggedIn();
  auto second = NewSession();
  second->TakeOutput();
  EXPECT_EQ(Send(*second, "USER alice@example.com\r\nPASS demo\r\n"),
            "+OK send PASS\r\n-ERR [IN-USE] Mailbox locked.\r\n");
  // A wrong password is refused as such, not as IN-USE.
  EXPECT_EQ(Send(*second, "USER alice@example.com\r\nPASS bad\r\n"),
            std::string("+OK send PASS\r\n") + kAuthFailed);
  first.reset();  // disconnect
  auto third = LoggedIn();
}

TEST_F(Pop3SessionTest, StatListUidl) {
  auto s = LoggedIn();
  EXPECT_EQ(Send(*s, "STAT\r\n"), "+OK 3 3000\r\n");
  EXPECT_EQ(Send(*s, "LIST\r\n"),
            "+OK 3 messages (3000 octets)\r\n1 300\r\n2 2000\r\n3 700\r\n"
            ".\r\n");
  EXPECT_EQ(Send(*s, "LIST 2\r\n"), "+OK 2 2000\r\n");
  EXPECT_EQ(Send(*s, "UIDL\r\n"), "+OK unique-id listing follows\r\n1 " +
                                      SynthUidl(kAlice, 1, 300) + "\r\n2 " +
                                      SynthUidl(kAlice, 2, 2000) + "\r\n3 " +
                                      SynthUidl(kAlice, 3, 700) + "\r\n.\r\n");
  EXPECT_EQ(Send(*s, "UIDL 3\r\n"),
            "+OK 3 " + SynthUidl(kAlice, 3, 700) + "\r\n");
}

TEST_F(Pop3SessionTest, RetrIsDotStuffedMessage) {
  auto s = LoggedIn();
  for (int n = 1; n <= 3; ++n) {
    size_t size = n == 1 ? 300 : n == 2 ? 2000 : 700;
    std::string out = Send(*s, "RETR " + std::to_string(n) + "\r\n");
    EXPECT_EQ(out, Retr(kAlice, n, size)) << n;
    // And the client's view after unstuffing is the raw message.
    size_t start = out.find("\r\n") + 2;
    EXPECT_EQ(DotUnstuff(out.substr(start, out.size() - start - 3)),
              SynthMessage(kAlice, n, size));
  }
}

TEST_F(Pop3SessionTest, Top) {
  auto s = LoggedIn();
  MessageLayout layout = SynthLayout(kAlice, 2, 2000);
  EXPECT_EQ(Send(*s, "TOP 2 0\r\n"),
            "+OK top of message follows\r\n" + layout.header_section + ".\r\n");
  // The body starts with the lines ".", "..", ".a line ...": stuffed.
  EXPECT_EQ(Send(*s, "TOP 2 3\r\n"),
            "+OK top of message follows\r\n" + layout.header_section +
                "..\r\n...\r\n..a line starting with one dot\r\n.\r\n");
  // More lines than the body has: the whole message.
  std::string all = Send(*s, "TOP 2 100000\r\n");
  EXPECT_EQ(all, "+OK top of message follows\r\n" +
                     DotStuff(SynthMessage(kAlice, 2, 2000)) + ".\r\n");
}

TEST_F(Pop3SessionTest, BadArguments) {
  auto s = LoggedIn();
  EXPECT_EQ(Send(*s, "RETR\r\n"), "-ERR usage: RETR msg\r\n");
  EXPECT_EQ(Send(*s, "RETR x\r\n"), "-ERR invalid message number\r\n");
  EXPECT_EQ(Send(*s, "RETR -1\r\n"), "-ERR invalid message number\r\n");
  EXPECT_EQ(Send(*s, "RETR 0\r\n"), "-ERR no such message\r\n");
  EXPECT_EQ(Send(*s, "RETR 4\r\n"), "-ERR no such message\r\n");
  EXPECT_EQ(Send(*s, "RETR 99999999999\r\n"),
            "-ERR invalid message number\r\n");
  EXPECT_EQ(Send(*s, "RETR 1 2\r\n"), "-ERR usage: RETR msg\r\n");
  EXPECT_EQ(Send(*s, "TOP 1\r\n"), "-ERR usage: TOP msg lines\r\n");
  EXPECT_EQ(Send(*s, "TOP 1 -1\r\n"), "-ERR invalid line count\r\n");
  EXPECT_EQ(Send(*s, "TOP 9 1\r\n"), "-ERR no such message\r\n");
  EXPECT_EQ(Send(*s, "STAT 1\r\n"), "-ERR STAT takes no arguments\r\n");
  EXPECT_EQ(Send(*s, "LIST 1 2\r\n"), "-ERR too many arguments\r\n");
  EXPECT_EQ(Send(*s, "LIST 4\r\n"), "-ERR no such message\r\n");
  EXPECT_EQ(Send(*s, "DELE\r\n"), "-ERR usage: DELE msg\r\n");
  EXPECT_EQ(Send(*s, "FOO\r\n"), "-ERR unknown command\r\n");
  EXPECT_EQ(Send(*s, "NOOP\r\n"), "+OK\r\n");
}

TEST_F(Pop3SessionTest, DeleAndRset) {
  auto s = LoggedIn();
  EXPECT_EQ(Send(*s, "DELE 2\r\n"), "+OK message 2 deleted\r\n");
  EXPECT_EQ(Send(*s, "DELE 2\r\n"), "-ERR message 2 already deleted\r\n");
  EXPECT_EQ(Send(*s, "RETR 2\r\n"), "-ERR message 2 already deleted\r\n");
  EXPECT_EQ(Send(*s, "LIST 2\r\n"), "-ERR message 2 already deleted\r\n");
  EXPECT_EQ(Send(*s, "STAT\r\n"), "+OK 2 1000\r\n");
  EXPECT_EQ(Send(*s, "LIST\r\n"),
            "+OK 2 messages (1000 octets)\r\n1 300\r\n3 700\r\n.\r\n");
  EXPECT_EQ(Send(*s, "RSET\r\n"),
            "+OK maildrop has 3 messages (3000 octets)\r\n");
  EXPECT_EQ(Send(*s, "STAT\r\n"), "+OK 3 3000\r\n");
  EXPECT_EQ(Send(*s, "RETR 2\r\n"), Retr(kAlice, 2, 2000));
}

TEST_F(Pop3SessionTest, DeleThenQuitRemovesForLaterSessions) {
  auto s = LoggedIn();
  EXPECT_EQ(Send(*s, "DELE 1\r\nQUIT\r\n"),
            "+OK message 1 deleted\r\n"
            "+OK pop3-synth signing off (2 messages left)\r\n");
  EXPECT_TRUE(s->closing());
  s.reset();
  auto again = LoggedIn();
  EXPECT_EQ(Send(*again, "STAT\r\n"), "+OK 2 2700\r\n");
  // Renumbered, but each message keeps its content and unique-id.
  EXPECT_EQ(Send(*again, "LIST\r\n"),
            "+OK 2 messages (2700 octets)\r\n1 2000\r\n2 700\r\n.\r\n");
  EXPECT_EQ(Send(*again, "UIDL 1\r\n"),
            "+OK 1 " + SynthUidl(kAlice, 2, 2000) + "\r\n");
  EXPECT_EQ(Send(*again, "RETR 1\r\n"), Retr(kAlice, 2, 2000));
  // Other users are untouched.
  auto bob = LoggedIn("bob@example.com", "pass with spaces");
  EXPECT_EQ(Send(*bob, "STAT\r\n"), "+OK 3 3000\r\n");
}

TEST_F(Pop3SessionTest, DisconnectWithoutQuitKeepsMessages) {
  auto s = LoggedIn();
  EXPECT_EQ(Send(*s, "DELE 1\r\nDELE 2\r\n"),
            "+OK message 1 deleted\r\n+OK message 2 deleted\r\n");
  s.reset();
  auto again = LoggedIn();
  EXPECT_EQ(Send(*again, "STAT\r\n"), "+OK 3 3000\r\n");
}

TEST_F(Pop3SessionTest, QuitInAuthorizationAndNothingAfterQuit) {
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, "QUIT\r\nCAPA\r\n"), "+OK pop3-synth signing off\r\n");
  EXPECT_TRUE(s->closing());
  EXPECT_FALSE(s->WantsInput());
  EXPECT_EQ(Send(*s, "NOOP\r\n"), "");
}

TEST_F(Pop3SessionTest, PipelinedCommandsAnsweredInOrder) {
  const std::string input =
      "USER alice@example.com\r\nPASS demo\r\nSTAT\r\nLIST 1\r\nDELE 1\r\n"
      "LIST 1\r\nRSET\r\nUIDL 2\r\nRETR 3\r\nNOOP\r\nQUIT\r\n";
  const std::string expected =
      "+OK send PASS\r\n"
      "+OK alice@example.com has 3 messages (3000 octets)\r\n"
      "+OK 3 3000\r\n"
      "+OK 1 300\r\n"
      "+OK message 1 deleted\r\n"
      "-ERR message 1 already deleted\r\n"
      "+OK maildrop has 3 messages (3000 octets)\r\n"
      "+OK 2 " +
      SynthUidl(kAlice, 2, 2000) + "\r\n" + Retr(kAlice, 3, 700) +
      "+OK\r\n"
      "+OK pop3-synth signing off (3 messages left)\r\n";
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, input), expected);

  // The same bytes one at a time give the same answers.
  auto t = NewSession();
  t->TakeOutput();
  std::string out;
  for (char c : input) out += Send(*t, std::string(1, c));
  EXPECT_EQ(out, expected);
}

TEST_F(Pop3SessionTest, CaseInsensitiveCommandsAndBareLf) {
  auto s = NewSession();
  s->TakeOutput();
  EXPECT_EQ(Send(*s, "user alice@example.com\npAsS demo\nstat\nQuit\n"),
            "+OK send PASS\r\n"
            "+OK alice@example.com has 3 messages (3000 octets)\r\n"
            "+OK 3 3000\r\n"
            "+OK pop3-synth signing off (3 messages left)\r\n");
}

TEST_F(Pop3SessionTest, OverlongLines) {
  auto s = NewSession();
  s->TakeOutput();
  // 255 octets including CRLF is the limit (RFC 2449).
  EXPECT_EQ(Send(*s, std::string(253, 'A') + "\r\n"),
            "-ERR unknown command\r\n");
  EXPECT_EQ(Send(*s, std::string(254, 'A') + "\r\nCAPA\r\n").substr(0, 21),
            "-ERR line too long\r\n+");
  // An overlong line arriving in pieces is dropped as it comes, not
  // buffered, and answered once at its end.
  EXPECT_EQ(Send(*s, std::string(200, 'B')), "");
  EXPECT_EQ(Send(*s, std::string(200, 'B')), "");
  EXPECT_EQ(Send(*s, std::string(100000, 'B')), "");
  EXPECT_TRUE(s->WantsInput());
  EXPECT_EQ(Send(*s, "BBB\r\nNOOP\r\n"),
            "-ERR line too long\r\n-ERR command not valid before login\r\n");
  // The third one closes the connection.
  EXPECT_EQ(Send(*s, std::string(300, 'C') + "\nCAPA\r\n"),
            "-ERR line too long, closing connection\r\n");
  EXPECT_TRUE(s->closing());
}

TEST_F(Pop3SessionTest, BackpressureStopsAnsweringUntilOutputDrains) {
  auto s = LoggedIn("big@example.com", "x");
  std::string input;
  for (int i = 0; i < 20; ++i) input += "RETR 1\r\n";
  s->Feed(input);
  s->Process();
  // One 1 MiB message is queued (by reference); the other 19 wait.
  EXPECT_TRUE(s->HasPendingCommands());
  EXPECT_LT(s->output().owned_bytes(), 64u * 1024);
  std::string expected = Retr("big@example.com", 1, 1 << 20);
  int answered = 0;
  std::string all;
  while (!s->output().empty()) {
    all += s->TakeOutput();
    ++answered;
    s->Process();
  }
  EXPECT_EQ(answered, 20);
  EXPECT_EQ(all.size(), expected.size() * 20);
  EXPECT_EQ(all.substr(0, expected.size()), expected);
  EXPECT_EQ(cache_.entries(), 1u) << "one shared body";
}

TEST_F(Pop3SessionTest, LargeInputBacklogStopsReading) {
  auto s = LoggedIn("big@example.com", "x");
  std::string input;
  for (int i = 0; i < 10000; ++i) input += "RETR 1\r\n";
  s->Feed(input);
  s->Process();
  EXPECT_FALSE(s->WantsInput());
}

}  // namespace
}  // namespace popgate::synth
