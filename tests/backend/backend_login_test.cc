// LoginToBackend against a scripted POP3 server on loopback: the exact bytes
// each client_identity and backend_login mode sends, what is refused before
// anything is sent, and the flags the session relies on (health_failure,
// credentials_sent, identity_sent).
#include "backend/backend_login.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/proxy_protocol.h"
#include "pop3/sasl.h"
#include "runtime/ring.h"
#include "tests/backend/testing_pop3_server.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using Outcome = BackendLoginResult::Outcome;
using ::popgate::testing::Pop3Reply;
using ::popgate::testing::Pop3Script;
using ::popgate::testing::TestingPop3Server;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kDovecotGreeting[] = "+OK [XCLIENT] Dovecot (Debian) ready.\r\n";
constexpr char kMasterPassword[] = "m4ster-Secret";

SocketAddress Addr(const char* host_port) {
  absl::StatusOr<HostPort> hp = ParseHostPort(host_port);
  return *hp->Numeric();
}

// What a Dovecot 2.3 pop3-login says, plus PASS secret / the master
// password as the right answers.
Pop3Reply DovecotLike(const std::string& line) {
  if (line == "CAPA") {
    return {
        "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
        "AUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"};
  }
  if (line.starts_with("XCLIENT ")) return {"+OK Updated\r\n"};
  if (line.starts_with("USER ")) return {"+OK\r\n"};
  if (line == "PASS secret" || line == absl::StrCat("PASS ", kMasterPassword)) {
    return {"+OK Logged in.\r\n"};
  }
  if (line.starts_with("PASS ")) {
    return {"-ERR [AUTH] Authentication failed.\r\n"};
  }
  if (line.starts_with("AUTH PLAIN ")) return {"+OK Logged in.\r\n"};
  return {"-ERR Unknown command.\r\n"};
}

class BackendLoginTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(ring_.Init(64).ok()); }

  // Defaults: mode none, client login bob / secret, an identity that
  // XCLIENT and PROXY v2 can carry.
  BackendLoginParams Params(const SocketAddress& addr) {
    BackendLoginParams p;
    p.addr = &addr;
    p.creds.user = "bob";
    p.creds.password = "secret";
    p.connect_timeout = absl::Seconds(5);
    p.auth_timeout = absl::Seconds(5);
    p.loop = LoopGuard{ProcessLoopToken(), {}};
    p.identity.client = Addr("192.0.2.7:4242");
    p.identity.local = Addr("127.0.0.1:110");
    p.identity.session_id = "sess1";
    return p;
  }

  void UseMaster(BackendLoginParams& p, MasterLoginMethod method) {
    p.creds.mode = BackendLoginMode::kMaster;
    p.creds.method = method;
    p.creds.master_user = "popmaster";
    p.creds.password = kMasterPassword;
  }

  BackendLoginResult Login(const BackendLoginParams& p) {
    std::optional<BackendLoginResult> r =
        popgate::testing::RunTask(ring_, LoginToBackend(ring_, p));
    EXPECT_TRUE(r.has_value()) << "LoginToBackend did not end";
    if (!r.has_value()) return {};
    return std::move(*r);
  }

  // Ends the connection and waits until the server has recorded all.
  std::string ReceivedAfterClose(BackendLoginResult& r,
                                 TestingPop3Server& server) {
    r.stream.reset();
    r.fd.Reset();
    EXPECT_TRUE(server.WaitUntilIdle());
    return server.received();
  }

  Ring ring_;
};

TEST_F(BackendLoginTest, NoneModePipelinesCapaWithUserThenPass) {
  // The server answers CAPA only once USER has arrived too: a LoginToBackend
  // that waited for the CAPA answer before USER would time out.
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") return {""};
    if (line == "USER bob") {
      return {"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n+OK send PASS\r\n"};
    }
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  p.connect_timeout = absl::Seconds(3);
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.reply, "+OK Logged in.");
  EXPECT_TRUE(r.credentials_sent);
  EXPECT_FALSE(r.identity_sent);
  EXPECT_THAT(r.identity_error, IsEmpty());
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\nUSER bob\r\nPASS secret\r\n");
}

TEST_F(BackendLoginTest, NoneModeIgnoresXclientOffer) {
  TestingPop3Server server({kDovecotGreeting, false, DovecotLike});
  BackendLoginResult r = Login(Params(server.address()));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\nUSER bob\r\nPASS secret\r\n");
}

TEST_F(BackendLoginTest, ProxyV2HeaderComesFirstWithTheClientAddress) {
  TestingPop3Server server(
      {"+OK ready\r\n", /*expect_proxy_v2=*/true, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kProxyV2;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.identity_sent);
  std::string got = ReceivedAfterClose(r, server);
  absl::StatusOr<std::optional<ProxyHeader>> h = ParseProxyHeader(got);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(h->has_value());
  const ProxyHeader& header = **h;
  EXPECT_EQ(header.version, 2);
  EXPECT_FALSE(header.local);
  ASSERT_TRUE(header.src.has_value() && header.dst.has_value());
  EXPECT_EQ(header.src->ToString(), "192.0.2.7:4242");
  EXPECT_EQ(header.dst->ToString(), "127.0.0.1:110");
  EXPECT_FALSE(header.ssl);
  EXPECT_EQ(got.substr(header.length), "CAPA\r\nUSER bob\r\nPASS secret\r\n");
}

TEST_F(BackendLoginTest, ProxyV2CarriesTheClientTls) {
  TestingPop3Server server({"+OK ready\r\n", true, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kProxyV2;
  p.identity.tls_version = "TLSv1.3";
  p.identity.tls_cipher = "TLS_AES_128_GCM_SHA256";
  p.identity.sni = "pop.example.com";
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  std::string got = ReceivedAfterClose(r, server);
  absl::StatusOr<std::optional<ProxyHeader>> h = ParseProxyHeader(got);
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(h->has_value());
  EXPECT_TRUE((*h)->ssl);
  EXPECT_EQ((*h)->ssl_version, "TLSv1.3");
  EXPECT_EQ((*h)->ssl_cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ((*h)->authority, "pop.example.com");
  EXPECT_EQ((*h)->src->ToString(), "192.0.2.7:4242");
}

TEST_F(BackendLoginTest, ProxyV2WithoutClientAddressSendsLocal) {
  TestingPop3Server server({"+OK ready\r\n", true, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kProxyV2;
  p.identity.client = SocketAddress{};
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_FALSE(r.identity_sent);
  EXPECT_THAT(r.identity_error, HasSubstr("LOCAL"));
  std::string got = ReceivedAfterClose(r, server);
  absl::StatusOr<std::optional<ProxyHeader>> h = ParseProxyHeader(got);
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_TRUE((*h)->local);
}

TEST_F(BackendLoginTest, XclientOfferedInTheGreetingIsPipelinedWithUser) {
  // Dovecot 2.3 offers XCLIENT in its greeting only (not in CAPA). As
  // above, nothing is answered until USER is in: one round trip.
  Pop3Script script{kDovecotGreeting, false, nullptr};
  std::vector<std::string> held;
  script.respond = [&held](const std::string& line) -> Pop3Reply {
    if (line != "USER bob") {
      if (line == "CAPA" || line.starts_with("XCLIENT ")) {
        held.push_back(line);
        return {""};
      }
      return DovecotLike(line);
    }
    std::string out;
    for (const std::string& h : held) out += DovecotLike(h).bytes;
    return {out + "+OK\r\n"};
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  p.connect_timeout = absl::Seconds(3);
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.identity_sent);
  EXPECT_THAT(r.identity_error, IsEmpty());
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\n"
            "XCLIENT ADDR=192.0.2.7 PORT=4242 SESSION=sess1 TTL=7 "
            "DESTADDR=127.0.0.1 DESTPORT=110\r\n"
            "USER bob\r\n"
            "PASS secret\r\n");
}

TEST_F(BackendLoginTest, XclientOfferedInCapaGoesAfterItsAnswer) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") return {"+OK\r\nUSER\r\nXCLIENT ADDR PORT\r\n.\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  p.identity.hops = 3;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.identity_sent);
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\n"
            "XCLIENT ADDR=192.0.2.7 PORT=4242 SESSION=sess1 TTL=5 "
            "DESTADDR=127.0.0.1 DESTPORT=110\r\n"
            "USER bob\r\n"
            "PASS secret\r\n");
}

TEST_F(BackendLoginTest, XclientTtlNeverBelowOne) {
  TestingPop3Server server({kDovecotGreeting, false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  p.identity.hops = 50;
  p.identity.client = Addr("[::ffff:198.51.100.9]:995");
  p.identity.local = Addr("[2001:db8::1]:110");
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_THAT(server.lines(),
              ::testing::Contains(
                  "XCLIENT ADDR=198.51.100.9 PORT=995 SESSION=sess1 TTL=1 "
                  "DESTADDR=2001:db8::1 DESTPORT=110"));
}

TEST_F(BackendLoginTest, XclientNotOfferedLogsInAsWithoutIdentity) {
  TestingPop3Server server({"+OK Dovecot ready.\r\n", false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_FALSE(r.identity_sent);
  EXPECT_THAT(r.identity_error, HasSubstr("not offered"));
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\nUSER bob\r\nPASS secret\r\n");
}

TEST_F(BackendLoginTest, XclientRefusedStillLogsIn) {
  Pop3Script script{kDovecotGreeting, false, nullptr};
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line.starts_with("XCLIENT")) return {"-ERR Invalid parameters\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.reply, "+OK Logged in.");
  EXPECT_FALSE(r.identity_sent);
  EXPECT_THAT(r.identity_error, HasSubstr("refused"));
  EXPECT_THAT(server.lines(), ElementsAre("CAPA", HasSubstr("XCLIENT ADDR="),
                                          "USER bob", "PASS secret"));
}

TEST_F(BackendLoginTest, XclientThatCannotBeFormattedIsSkipped) {
  TestingPop3Server server({kDovecotGreeting, false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kXclient;
  p.identity.session_id = "bad session";
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_FALSE(r.identity_sent);
  EXPECT_THAT(r.identity_error, HasSubstr("XCLIENT not sent"));
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\nUSER bob\r\nPASS secret\r\n");
}

TEST_F(BackendLoginTest, MasterSeparatorLogin) {
  TestingPop3Server server({"+OK ready\r\n", false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSeparator);
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.credentials_sent);
  EXPECT_EQ(ReceivedAfterClose(r, server),
            absl::StrCat("CAPA\r\nUSER bob*popmaster\r\nPASS ", kMasterPassword,
                         "\r\n"));
}

TEST_F(BackendLoginTest, MasterSeparatorIsConfigurable) {
  TestingPop3Server server({"+OK ready\r\n", false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSeparator);
  p.creds.separator = "%";
  p.creds.user = "bob*x";  // '*' is only special when it is the separator
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_THAT(server.lines(), ::testing::Contains("USER bob*x%popmaster"));
}

TEST_F(BackendLoginTest, MasterUserContainingTheSeparatorIsRefusedUnsent) {
  TestingPop3Server server({"+OK ready\r\n", false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSeparator);
  p.creds.user = "bob*othermaster";
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_THAT(r.reply, HasSubstr("[AUTH]"));
  EXPECT_FALSE(r.credentials_sent);
  EXPECT_FALSE(r.health_failure);
  EXPECT_THAT(r.error, Not(HasSubstr(kMasterPassword)));
  EXPECT_EQ(server.connections(), 0);
  EXPECT_THAT(server.received(), IsEmpty());
}

TEST_F(BackendLoginTest, MasterSaslPlainLogin) {
  TestingPop3Server server({kDovecotGreeting, false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSaslPlain);
  p.creds.user = "bob*odd";  // authzid is explicit: no separator to abuse
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.reply, "+OK Logged in.");
  EXPECT_TRUE(r.credentials_sent);
  std::vector<std::string> lines = server.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "CAPA");
  ASSERT_TRUE(lines[1].starts_with("AUTH PLAIN "));
  std::optional<std::string> raw =
      DecodeBase64(std::string_view(lines[1]).substr(11));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(*raw, absl::StrCat("bob*odd", std::string(1, '\0'), "popmaster",
                               std::string(1, '\0'), kMasterPassword));
}

TEST_F(BackendLoginTest, MasterSaslPlainTooLongForOneLineUsesContinuation) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line == "AUTH PLAIN") return {"+ \r\n"};
    if (line == "CAPA") return DovecotLike(line);
    return {"+OK Logged in.\r\n"};  // the response line
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSaslPlain);
  const std::string long_password(300, 'p');
  p.creds.password = long_password;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.credentials_sent);
  std::vector<std::string> lines = server.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "AUTH PLAIN");
  std::optional<std::string> raw = DecodeBase64(lines[2]);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(*raw, absl::StrCat("bob", std::string(1, '\0'), "popmaster",
                               std::string(1, '\0'), long_password));
}

TEST_F(BackendLoginTest, MasterSaslPlainRefused) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line.starts_with("AUTH PLAIN")) {
      return {"-ERR [AUTH] Authentication failed.\r\n"};
    }
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSaslPlain);
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_TRUE(r.credentials_sent);
  EXPECT_FALSE(r.health_failure);
  EXPECT_EQ(r.reply, "-ERR [AUTH] Authentication failed.");
}

TEST_F(BackendLoginTest, MasterWithoutMasterUserIsOurErrorNotTheClients) {
  TestingPop3Server server;
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSeparator);
  p.creds.master_user = "";
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kUnavailable);
  EXPECT_FALSE(r.health_failure);
  EXPECT_EQ(server.connections(), 0);
}

TEST_F(BackendLoginTest, CredentialsWithCrLfOrNulAreRefusedUnsent) {
  TestingPop3Server server;
  const std::string nul_user("bob\0x", 5);
  for (MasterLoginMethod method :
       {MasterLoginMethod::kSeparator, MasterLoginMethod::kSaslPlain}) {
    for (bool master : {false, true}) {
      for (int which = 0; which < 3; ++which) {
        BackendLoginParams p = Params(server.address());
        if (master) UseMaster(p, method);
        if (which == 0) p.creds.user = "bob\r\nDELE 1";
        if (which == 1) p.creds.user = nul_user;
        if (which == 2) p.creds.password = "x\r\nDELE 1";
        BackendLoginResult r = Login(p);
        SCOPED_TRACE(absl::StrCat("master ", master, " method ",
                                  static_cast<int>(method), " case ", which));
        if (master && which == 2) {
          // The master password comes from our own (checked) file.
          EXPECT_NE(r.outcome, Outcome::kOk);
        } else {
          EXPECT_EQ(r.outcome, Outcome::kRefused);
          EXPECT_THAT(r.reply, HasSubstr("[AUTH]"));
        }
        EXPECT_FALSE(r.credentials_sent);
        EXPECT_THAT(r.error, Not(HasSubstr("DELE")));
      }
    }
  }
  EXPECT_EQ(server.connections(), 0);
  EXPECT_THAT(server.received(), IsEmpty());
}

TEST_F(BackendLoginTest, RefusedConnectIsAHealthFailure) {
  SocketAddress closed =
      Addr(absl::StrCat("127.0.0.1:", popgate::testing::ClosedLoopbackPort())
               .c_str());
  BackendLoginParams p = Params(closed);
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kUnavailable);
  EXPECT_TRUE(r.health_failure);
  EXPECT_FALSE(r.credentials_sent);
  EXPECT_THAT(r.error, HasSubstr("connect"));
}

TEST_F(BackendLoginTest, GreetingTimeoutIsAHealthFailure) {
  TestingPop3Server server({std::nullopt, false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.connect_timeout = absl::Milliseconds(300);
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kUnavailable);
  EXPECT_TRUE(r.health_failure);
  EXPECT_FALSE(r.credentials_sent);
  EXPECT_THAT(r.error, HasSubstr("greeting"));
}

TEST_F(BackendLoginTest, WrongPasswordIsNotAHealthFailure) {
  TestingPop3Server server({"+OK ready\r\n", false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  p.creds.password = "wrong";
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_FALSE(r.health_failure);
  EXPECT_TRUE(r.credentials_sent);
  EXPECT_EQ(r.reply, "-ERR [AUTH] Authentication failed.");
  EXPECT_THAT(r.error, Not(HasSubstr("wrong")));
}

TEST_F(BackendLoginTest, UserRefusedMeansNoCredentialsSent) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line.starts_with("USER ")) return {"-ERR [AUTH] No such user\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  for (bool master : {false, true}) {
    BackendLoginParams p = Params(server.address());
    if (master) UseMaster(p, MasterLoginMethod::kSeparator);
    BackendLoginResult r = Login(p);
    EXPECT_EQ(r.outcome, Outcome::kRefused);
    EXPECT_FALSE(r.credentials_sent);
    EXPECT_EQ(r.reply, "-ERR [AUTH] No such user");
    r.fd.Reset();
    ASSERT_TRUE(server.WaitUntilIdle());
  }
  for (const std::string& line : server.lines()) {
    EXPECT_FALSE(line.starts_with("PASS")) << line;
  }
}

// The backend is this very popgate: caught from CAPA in every mode, before
// any credentials go out.
TEST_F(BackendLoginTest, LoopIsDetectedInEveryMode) {
  Pop3Script script{kDovecotGreeting, false, nullptr};
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") {
      return {absl::StrCat("+OK\r\nUSER\r\nIMPLEMENTATION popgate ",
                           std::string(kLoopTokenTag), ProcessLoopToken(),
                           "\r\n.\r\n")};
    }
    return DovecotLike(line);
  };
  struct Mode {
    ClientIdentity identity;
    BackendLoginMode login;
    MasterLoginMethod method;
  };
  const Mode modes[] = {
      {ClientIdentity::kNone, BackendLoginMode::kClient, {}},
      {ClientIdentity::kXclient, BackendLoginMode::kClient, {}},
      {ClientIdentity::kNone, BackendLoginMode::kMaster,
       MasterLoginMethod::kSeparator},
      {ClientIdentity::kXclient, BackendLoginMode::kMaster,
       MasterLoginMethod::kSaslPlain},
  };
  for (const Mode& m : modes) {
    TestingPop3Server server(script);
    BackendLoginParams p = Params(server.address());
    p.identity.mode = m.identity;
    if (m.login == BackendLoginMode::kMaster) UseMaster(p, m.method);
    BackendLoginResult r = Login(p);
    EXPECT_EQ(r.outcome, Outcome::kLoop) << r.error;
    EXPECT_FALSE(r.credentials_sent);
    std::string got = ReceivedAfterClose(r, server);
    EXPECT_THAT(got, Not(HasSubstr("PASS")));
    EXPECT_THAT(got, Not(HasSubstr("AUTH")));
  }
  // PROXY v2 as well.
  Pop3Script proxied = script;
  proxied.expect_proxy_v2 = true;
  TestingPop3Server server(proxied);
  BackendLoginParams p = Params(server.address());
  p.identity.mode = ClientIdentity::kProxyV2;
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kLoop) << r.error;
  EXPECT_THAT(ReceivedAfterClose(r, server), Not(HasSubstr("PASS")));
}

TEST_F(BackendLoginTest, AnotherPopgateHearsWhoWeAreBeforeAuth) {
  const std::string other = "0123456789abcdef";
  ASSERT_NE(other, ProcessLoopToken());
  Pop3Script script;
  script.respond = [&other](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") {
      return {absl::StrCat("+OK\r\nUSER\r\nIMPLEMENTATION popgate ",
                           std::string(kLoopTokenTag), other, "\r\n.\r\n")};
    }
    if (line.starts_with(kLoopCommand)) return {"+OK\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSaslPlain);
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  std::vector<std::string> lines = server.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1],
            absl::StrCat(std::string(kLoopCommand), " ", ProcessLoopToken()));
  EXPECT_TRUE(lines[2].starts_with("AUTH PLAIN "));
}

// backend_pipelining: the memo learns from every CAPA answer, and PASS goes
// in the first flight only on its word.

// USER's reply is held back until PASS has arrived too: a login that waits
// for it before sending PASS times out.
Pop3Script UserAnsweredOnlyWithPass() {
  Pop3Script script{kDovecotGreeting, false, nullptr};
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line.starts_with("USER ")) return {""};
    if (line.starts_with("PASS ")) {
      Pop3Reply pass = DovecotLike(line);
      return {absl::StrCat("+OK\r\n", pass.bytes)};
    }
    return DovecotLike(line);
  };
  return script;
}

// The CAPA answer of a popgate whose token is `token`, PIPELINING listed.
std::string PopgateCapaWithPipelining(std::string_view token) {
  return absl::StrCat("+OK\r\nUSER\r\nPIPELINING\r\nIMPLEMENTATION popgate ",
                      std::string(kLoopTokenTag), std::string(token),
                      "\r\n.\r\n");
}

TEST_F(BackendLoginTest, MemoLearnsFromEveryCapaAnswer) {
  struct Case {
    const char* capa_answer;
    BackendPipelining learned;
  };
  const std::string other_popgate =
      absl::StrCat("+OK\r\nPIPELINING\r\nIMPLEMENTATION popgate ",
                   std::string(kLoopTokenTag), "0123456789abcdef\r\n.\r\n");
  const Case cases[] = {
      {"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n", BackendPipelining::kYes},
      {"+OK\r\nUSER\r\npipelining\r\n.\r\n", BackendPipelining::kYes},
      {"+OK\r\nUSER\r\nTOP\r\n.\r\n", BackendPipelining::kNo},
      {"-ERR Unknown command.\r\n", BackendPipelining::kNo},
      {"+OK\r\nPIPELINING-NOT\r\n.\r\n", BackendPipelining::kNo},
      {other_popgate.c_str(), BackendPipelining::kNo},
  };
  for (const Case& c : cases) {
    const std::string answer = c.capa_answer;
    Pop3Script script;
    script.respond = [&answer](const std::string& line) -> Pop3Reply {
      if (line == "CAPA") return {answer};
      if (line.starts_with(kLoopCommand)) return {"+OK\r\n"};
      return DovecotLike(line);
    };
    TestingPop3Server server(script);
    BackendLoginParams p = Params(server.address());
    CapaMemo memo;
    p.capa_memo = &memo;
    BackendLoginResult r = Login(p);
    ASSERT_EQ(r.outcome, Outcome::kOk) << r.error << " for " << answer;
    EXPECT_EQ(memo.pipelining(), c.learned) << answer;
  }
}

TEST_F(BackendLoginTest, FirstLoginWaitsForTheUserReply) {
  TestingPop3Server server(UserAnsweredOnlyWithPass());
  BackendLoginParams p = Params(server.address());
  p.connect_timeout = absl::Milliseconds(500);
  CapaMemo memo;  // unknown: nothing learned yet
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kUnavailable);
  EXPECT_FALSE(r.credentials_sent);
  EXPECT_THAT(r.error, HasSubstr("USER"));
  EXPECT_THAT(ReceivedAfterClose(r, server), Not(HasSubstr("PASS")));
  // What that CAPA said is learned all the same.
  EXPECT_EQ(memo.pipelining(), BackendPipelining::kYes);
}

TEST_F(BackendLoginTest, PassGoesWithCapaAndUserOnTheMemosWord) {
  TestingPop3Server server(UserAnsweredOnlyWithPass());
  BackendLoginParams p = Params(server.address());
  CapaMemo memo;
  memo.set_pipelining(BackendPipelining::kYes);
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.reply, "+OK Logged in.");
  EXPECT_TRUE(r.credentials_sent);
  EXPECT_EQ(ReceivedAfterClose(r, server),
            "CAPA\r\nUSER bob\r\nPASS secret\r\n");

  // A wrong password: the PASS reply is the refusal.
  p.creds.password = "wrong";
  r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.reply, "-ERR [AUTH] Authentication failed.");
  r.fd.Reset();
  ASSERT_TRUE(server.WaitUntilIdle());

  // The master separator login, and XCLIENT offered in the greeting.
  UseMaster(p, MasterLoginMethod::kSeparator);
  p.identity.mode = ClientIdentity::kXclient;
  r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_TRUE(r.identity_sent);
  r.fd.Reset();
  r.stream.reset();
  ASSERT_TRUE(server.WaitUntilIdle());
  std::vector<std::string> lines = server.lines();
  ASSERT_GE(lines.size(), 4u);
  const size_t n = lines.size();
  EXPECT_EQ(lines[n - 4], "CAPA");
  EXPECT_TRUE(lines[n - 3].starts_with("XCLIENT ")) << lines[n - 3];
  EXPECT_EQ(lines[n - 2], "USER bob*popmaster");
  EXPECT_EQ(lines[n - 1], absl::StrCat("PASS ", kMasterPassword));
}

TEST_F(BackendLoginTest, PipelinedPassAfterARefusedUserIsStillARefusal) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line.starts_with("USER ")) return {"-ERR [AUTH] No such user\r\n"};
    if (line.starts_with("PASS ")) return {"-ERR No username given.\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  CapaMemo memo;
  memo.set_pipelining(BackendPipelining::kYes);
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.reply, "-ERR [AUTH] No such user");
  // It went out with USER: the session must not try another backend.
  EXPECT_TRUE(r.credentials_sent);
}

TEST_F(BackendLoginTest, SaslPlainNeverGoesInTheFirstFlight) {
  TestingPop3Server server({kDovecotGreeting, false, DovecotLike});
  BackendLoginParams p = Params(server.address());
  UseMaster(p, MasterLoginMethod::kSaslPlain);
  CapaMemo memo;
  memo.set_pipelining(BackendPipelining::kYes);
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  r.fd.Reset();
  r.stream.reset();
  ASSERT_TRUE(server.WaitUntilIdle());
  std::vector<std::string> lines = server.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "CAPA");
  EXPECT_TRUE(lines[1].starts_with("AUTH PLAIN ")) << lines[1];
}

// The memo said "no popgate", but the backend now is this very popgate:
// still a loop, and the next login waits for CAPA again.
TEST_F(BackendLoginTest, StaleMemoStillCatchesALoop) {
  Pop3Script script;
  script.respond = [](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") {
      return {PopgateCapaWithPipelining(ProcessLoopToken())};
    }
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  CapaMemo memo;
  memo.set_pipelining(BackendPipelining::kYes);
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kLoop) << r.error;
  EXPECT_EQ(memo.pipelining(), BackendPipelining::kNo);
  r.fd.Reset();
  ASSERT_TRUE(server.WaitUntilIdle());
  const size_t before = server.received().size();
  r = Login(p);
  EXPECT_EQ(r.outcome, Outcome::kLoop) << r.error;
  EXPECT_FALSE(r.credentials_sent);
  std::string got = ReceivedAfterClose(r, server).substr(before);
  EXPECT_EQ(got, "CAPA\r\nUSER bob\r\n");
}

// Another popgate where the memo said none: this login goes on without
// XPOPGATE-LOOP; the next one sends it before PASS again.
TEST_F(BackendLoginTest, StaleMemoForAnotherPopgateTellsItNextTime) {
  const std::string other = "0123456789abcdef";
  Pop3Script script;
  script.respond = [&other](const std::string& line) -> Pop3Reply {
    if (line == "CAPA") {
      return {PopgateCapaWithPipelining(other)};
    }
    if (line.starts_with(kLoopCommand)) return {"+OK\r\n"};
    return DovecotLike(line);
  };
  TestingPop3Server server(script);
  BackendLoginParams p = Params(server.address());
  CapaMemo memo;
  memo.set_pipelining(BackendPipelining::kYes);
  p.capa_memo = &memo;
  BackendLoginResult r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(memo.pipelining(), BackendPipelining::kNo);
  r.fd.Reset();
  r.stream.reset();
  ASSERT_TRUE(server.WaitUntilIdle());
  r = Login(p);
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  r.fd.Reset();
  r.stream.reset();
  ASSERT_TRUE(server.WaitUntilIdle());
  EXPECT_THAT(server.lines(),
              ElementsAre("CAPA", "USER bob", "PASS secret", "CAPA", "USER bob",
                          absl::StrCat(std::string(kLoopCommand), " ",
                                       ProcessLoopToken()),
                          "PASS secret"));
}

}  // namespace
}  // namespace popgate
