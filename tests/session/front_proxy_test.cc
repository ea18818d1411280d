// The front balancer's PROXY header (session/front_proxy.cc), through a
// whole session: the test thread plays the balancer over a loopback TCP
// pair (so the session's peer, the "balancer", is 127.0.0.1), writes a v1
// or v2 header and then talks POP3 as the client it names. Each test
// checks what the client saw and the session log's client, front, result
// and detail.
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/proxy_protocol.h"
#include "net/socket_address.h"
#include "tests/session/scripted_backend.h"
#include "tests/session/test_env.h"

namespace popgate {
namespace {

using testing::BackendReply;
using testing::BackendScript;
using testing::Client;
using testing::DefaultScript;
using testing::JsonField;
using testing::SessionHarness;
using testing::SessionOutcome;

struct Options {
  std::string proxy_trusted = "[\"127.0.0.0/8\"]";
  // Where plaintext_auth = "trusted" allows plain logins: the header's
  // 192.0.2.0/24 clients by default, not the balancer.
  std::string trusted = "[\"192.0.2.0/24\", \"2001:db8::/32\"]";
  std::string timeout = "2s";
  std::string identity = "none";
};

std::string Toml(const Options& o = {}) {
  static const std::string passwd = testing::WriteTestFile(
      "front.example.com.passwd", "alice@example.com:{PLAIN}secret\n");
  return absl::StrCat(
      "[server]\n"
      "auth_failure_delay = \"10ms\"\n"
      "preauth_idle_timeout = \"10s\"\n"
      "backend_timeout = \"5s\"\n"
      "backend_auth_timeout = \"5s\"\n"
      "forward_idle_timeout = \"10s\"\n"
      "client_drain_timeout = \"2s\"\n"
      "proxy_protocol_timeout = \"",
      o.timeout,
      "\"\n"
      "[tls]\n"
      "session_tickets = false\n"
      "ktls = false\n"
      "trusted_networks = ",
      o.trusted,
      "\n"
      "[[listener]]\n"
      "address = \"127.0.0.1:1\"\n"
      "default_tenant = \"files\"\n"
      "tls = \"none\"\n"
      "plaintext_auth = \"trusted\"\n"
      "proxy_protocol = true\n"
      "proxy_trusted_networks = ",
      o.proxy_trusted,
      "\n"
      "[[tenant]]\n"
      "name = \"files\"\n"
      "domains = [\"example.com\"]\n"
      "auth = \"file\"\n"
      "passwd_file = \"",
      passwd,
      "\"\n"
      "client_identity = \"",
      o.identity,
      "\"\n"
      "backends = [ { address = \"{BACKEND}\" } ]\n");
}

SocketAddress Addr(const std::string& host_port) {
  absl::StatusOr<HostPort> hp = ParseHostPort(host_port);
  EXPECT_TRUE(hp.ok()) << hp.status();
  if (!hp.ok()) return {};
  std::optional<SocketAddress> a = hp->Numeric();
  EXPECT_TRUE(a.has_value());
  return a.value_or(SocketAddress{});
}

// The session's view of the balancer: the test client's own address.
std::string LocalAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return "";
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len)
      .ToString();
}

SessionOutcome Finish(SessionHarness& h) {
  std::optional<SessionOutcome> out = h.Wait();
  EXPECT_TRUE(out.has_value()) << "the session did not end";
  if (!out) return {};
  EXPECT_EQ(out->live_after, 0u) << "a session stayed registered";
  return *out;
}

// USER/PASS, RETR of the one message, QUIT: the session works as the
// client the header named.
void LogInAndQuit(Client& c) {
  ASSERT_TRUE(c.Send("USER alice@example.com\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("PASS secret\r\n"));
  EXPECT_EQ(c.Line(), "+OK logged in");
  ASSERT_TRUE(c.Send("RETR 1\r\n"));
  const std::string msg = testing::TestMessage();
  EXPECT_EQ(c.Line(), absl::StrCat("+OK ", msg.size(), " octets"));
  EXPECT_TRUE(c.Body() == msg) << "message differs";
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_EQ(c.Line(), "+OK bye");
}

// Sends `header`, logs in, and returns the outcome; `client` is what the
// log's client must be.
SessionOutcome LoginThrough(const std::string& header,
                            const std::string& client, const Options& o = {}) {
  SessionHarness h(Toml(o));
  EXPECT_TRUE(h.Start());
  const std::string balancer = LocalAddress(h.client());
  Client c(h.client());
  EXPECT_TRUE(c.Send(header));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  LogInAndQuit(c);
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "client"), client) << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "front"), balancer) << out.log_line;
  return out;
}

// The header is refused: no greeting, the connection just closes.
SessionOutcome Refused(SessionHarness& h, Client& c) {
  EXPECT_TRUE(c.AtEof()) << "the session answered";
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(JsonField(out.log_line, "front"), "") << out.log_line;
  return out;
}

// A v2 header with its length field fixed after TLVs were appended.
std::string WithTlv(std::string header, uint8_t type, std::string_view value) {
  header.push_back(static_cast<char>(type));
  header.push_back(static_cast<char>(value.size() >> 8));
  header.push_back(static_cast<char>(value.size() & 0xff));
  header.append(value);
  const size_t len = header.size() - 16;
  header[14] = static_cast<char>(len >> 8);
  header[15] = static_cast<char>(len & 0xff);
  return header;
}

TEST(FrontProxyTest, V1Tcp4IsTheClient) {
  LoginThrough("PROXY TCP4 192.0.2.7 198.51.100.1 40000 110\r\n",
               "192.0.2.7:40000");
}

TEST(FrontProxyTest, V1Tcp6IsTheClient) {
  LoginThrough("PROXY TCP6 2001:db8::7 2001:db8::1 40001 110\r\n",
               "[2001:db8::7]:40001");
}

TEST(FrontProxyTest, V2Tcp4WithTlvsIsTheClient) {
  ProxyTlsInfo tls{"TLSv1.3", "TLS_AES_128_GCM_SHA256", "mail.example.com"};
  std::string header =
      EncodeProxyV2(Addr("192.0.2.8:40002"), Addr("198.51.100.1:995"), &tls);
  // And types nobody here reads: NOOP, UNIQUE_ID.
  header = WithTlv(header, 0x04, std::string(7, '\0'));
  header = WithTlv(header, 0x05, "abc123");
  LoginThrough(header, "192.0.2.8:40002");
}

TEST(FrontProxyTest, V2Tcp6IsTheClient) {
  LoginThrough(EncodeProxyV2(Addr("[2001:db8::8]:40003"),
                             Addr("[2001:db8::1]:110"), nullptr),
               "[2001:db8::8]:40003");
}

// The header's address is what the backend is told (client_identity), and
// what it connected to is the header's destination.
TEST(FrontProxyTest, BackendIsToldTheHeadersClient) {
  BackendScript script = DefaultScript();
  script.greeting = "+OK [XCLIENT] scripted backend ready\r\n";
  auto respond = script.respond;
  script.respond = [respond](const std::string& line) -> BackendReply {
    if (line.starts_with("XCLIENT ")) return {"+OK\r\n"};
    return respond(line);
  };
  Options o;
  o.identity = "xclient";
  SessionHarness h(Toml(o), script);
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY TCP4 192.0.2.9 198.51.100.2 40004 110\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  LogInAndQuit(c);
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(out.result(), "ok") << out.log_line;
  std::string xclient;
  for (const std::string& l : out.backend_lines) {
    if (l.starts_with("XCLIENT ")) xclient = l;
  }
  EXPECT_TRUE(absl::StrContains(xclient, "ADDR=192.0.2.9 ")) << xclient;
  EXPECT_TRUE(absl::StrContains(xclient, "PORT=40004")) << xclient;
  EXPECT_TRUE(absl::StrContains(xclient, "DESTADDR=198.51.100.2")) << xclient;
  EXPECT_TRUE(absl::StrContains(xclient, "DESTPORT=110")) << xclient;
}

// trusted_networks is judged by the header's address: a client outside it
// may not log in in plaintext, though the balancer (127.0.0.1) would be
// trusted.
TEST(FrontProxyTest, TrustedNetworksJudgeTheHeadersAddress) {
  Options o;
  o.trusted = "[\"127.0.0.0/8\"]";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY TCP4 203.0.113.5 198.51.100.1 40005 110\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("USER alice@example.com\r\n"));
  EXPECT_TRUE(c.Line().starts_with("-ERR [AUTH] Plaintext"));
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(JsonField(out.log_line, "client"), "203.0.113.5:40005");
}

// v2 LOCAL (the balancer's health check): the greeting, QUIT works, the
// log keeps the socket's address.
TEST(FrontProxyTest, V2LocalGetsTheGreeting) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  const std::string balancer = LocalAddress(h.client());
  Client c(h.client());
  ASSERT_TRUE(c.Send(EncodeProxyV2Local()));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.AtEof());
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(JsonField(out.log_line, "client"), balancer) << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "front"), balancer) << out.log_line;
  EXPECT_NE(out.result(), "proxy_header_error") << out.log_line;
}

TEST(FrontProxyTest, V1UnknownIsLikeLocal) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  const std::string balancer = LocalAddress(h.client());
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nCAPA\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));  // CAPA's
  c.Body();
  ASSERT_TRUE(c.Send("QUIT\r\n"));
  EXPECT_TRUE(c.Line().starts_with("+OK"));
  h.client_fd().Reset();
  SessionOutcome out = Finish(h);
  EXPECT_EQ(JsonField(out.log_line, "client"), balancer) << out.log_line;
}

// The header and the client's first commands in one segment: not a byte
// of the POP3 stream is taken with the header.
TEST(FrontProxyTest, PipelinedBytesBehindTheHeaderStay) {
  for (const std::string& header :
       {std::string("PROXY TCP4 192.0.2.10 198.51.100.1 40006 110\r\n"),
        EncodeProxyV2(Addr("192.0.2.10:40006"), Addr("198.51.100.1:110"),
                      nullptr)}) {
    SessionHarness h(Toml());
    ASSERT_TRUE(h.Start());
    Client c(h.client());
    ASSERT_TRUE(c.Send(absl::StrCat(
        header, "USER alice@example.com\r\nPASS secret\r\nSTAT\r\n")));
    EXPECT_TRUE(c.Line().starts_with("+OK"));  // greeting
    EXPECT_TRUE(c.Line().starts_with("+OK"));  // USER
    EXPECT_EQ(c.Line(), "+OK logged in");
    EXPECT_TRUE(c.Line().starts_with("+OK 1 "));  // STAT
    ASSERT_TRUE(c.Send("QUIT\r\n"));
    EXPECT_EQ(c.Line(), "+OK bye");
    h.client_fd().Reset();
    SessionOutcome out = Finish(h);
    EXPECT_EQ(out.result(), "ok") << out.log_line;
    EXPECT_EQ(JsonField(out.log_line, "client"), "192.0.2.10:40006");
  }
}

// Sent a few bytes at a time with pauses (each a segment of its own).
TEST(FrontProxyTest, HeaderSplitOverWrites) {
  for (const std::string& header :
       {std::string("PROXY TCP4 192.0.2.11 198.51.100.1 40007 110\r\n"),
        EncodeProxyV2(Addr("192.0.2.11:40007"), Addr("198.51.100.1:110"),
                      nullptr)}) {
    SessionHarness h(Toml());
    ASSERT_TRUE(h.Start());
    Client c(h.client());
    for (size_t at = 0; at < header.size(); at += 5) {
      ASSERT_TRUE(c.Send(header.substr(at, 5)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(c.Line().starts_with("+OK"));
    LogInAndQuit(c);
    h.client_fd().Reset();
    SessionOutcome out = Finish(h);
    EXPECT_EQ(out.result(), "ok") << out.log_line;
    EXPECT_EQ(JsonField(out.log_line, "client"), "192.0.2.11:40007");
  }
}

// A partial header, then nothing: closed at proxy_protocol_timeout after
// accept (a total deadline: the trickle before does not extend it).
TEST(FrontProxyTest, TruncatedHeaderTimesOut) {
  Options o;
  o.timeout = "400ms";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  const absl::Time start = absl::Now();
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY TCP4 192.0.2.12 "));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(c.Send("198.51."));
  SessionOutcome out = Refused(h, c);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(out.result(), "proxy_header_error") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "detail"), "PROXY header timeout");
  EXPECT_GE(took, absl::Milliseconds(350));
  EXPECT_LT(took, absl::Seconds(2));
}

// Nothing at all (a plain POP3 client waiting for the greeting).
TEST(FrontProxyTest, SilentClientTimesOut) {
  Options o;
  o.timeout = "300ms";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  SessionOutcome out = Refused(h, c);
  EXPECT_EQ(out.result(), "proxy_header_error") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "detail"), "PROXY header timeout");
}

TEST(FrontProxyTest, PlainPop3IsMissingHeader) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  ASSERT_TRUE(c.Send("CAPA\r\n"));
  SessionOutcome out = Refused(h, c);
  EXPECT_EQ(out.result(), "proxy_header_error") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "detail"), "missing PROXY header");
  EXPECT_TRUE(absl::StartsWith(JsonField(out.log_line, "client"), "127.0.0.1:"))
      << out.log_line;
}

TEST(FrontProxyTest, GarbageIsMalformed) {
  const std::vector<std::string> bad = {
      "PROXY TCP5 192.0.2.1 198.51.100.1 1 2\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.1 1 99999\r\n",
      "PROXY TCP4 192.0.2.1  198.51.100.1 1 2\r\n",
      std::string(kProxyV2Signature) + std::string("\x22\x11\x00\x0c", 4),
      // TCP4 with a block too short for its addresses.
      std::string(kProxyV2Signature) + std::string("\x21\x11\x00\x04", 4) +
          std::string(4, '\0'),
      // A UNIX-socket pair: nothing popgate fronts.
      std::string(kProxyV2Signature) + std::string("\x21\x31\x00\x00", 4),
      // Longer than popgate accepts.
      std::string(kProxyV2Signature) + std::string("\x21\x11\xff\xff", 4),
  };
  for (const std::string& b : bad) {
    SessionHarness h(Toml());
    ASSERT_TRUE(h.Start());
    Client c(h.client());
    ASSERT_TRUE(c.Send(b));
    SessionOutcome out = Refused(h, c);
    EXPECT_EQ(out.result(), "proxy_header_error") << out.log_line;
    EXPECT_TRUE(absl::StartsWith(JsonField(out.log_line, "detail"),
                                 "malformed PROXY header: "))
        << out.log_line;
  }
}

// A partial header and the FIN: closed at once, not at the timeout.
TEST(FrontProxyTest, ClosedInHeader) {
  SessionHarness h(Toml());
  ASSERT_TRUE(h.Start());
  const absl::Time start = absl::Now();
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY TCP4 192.0.2.13 198.51"));
  ::shutdown(h.client(), SHUT_WR);
  SessionOutcome out = Refused(h, c);
  EXPECT_EQ(out.result(), "proxy_header_error") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "detail"),
            "connection closed in PROXY header");
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));  // the timeout is 2 s
}

// From a source outside proxy_trusted_networks: refused before a byte is
// read, whatever the header would have said.
TEST(FrontProxyTest, UntrustedSourceIsRefused) {
  Options o;
  o.proxy_trusted = "[\"10.0.0.0/8\", \"::1/128\"]";
  SessionHarness h(Toml(o));
  ASSERT_TRUE(h.Start());
  Client c(h.client());
  ASSERT_TRUE(c.Send("PROXY TCP4 192.0.2.14 198.51.100.1 40008 110\r\n"));
  SessionOutcome out = Refused(h, c);
  EXPECT_EQ(out.result(), "proxy_untrusted") << out.log_line;
  EXPECT_EQ(JsonField(out.log_line, "detail"),
            "source not in proxy_trusted_networks");
  EXPECT_TRUE(absl::StartsWith(JsonField(out.log_line, "client"), "127.0.0.1:"))
      << out.log_line;
}

}  // namespace
}  // namespace popgate
