#include "backend/backend_login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/base64.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/absl_view.h"
#include "base/wipe.h"
#include "forward/read_line.h"
#include "forward/tls_stream.h"
#include "net/proxy_protocol.h"
#include "pop3/line_reader.h"
#include "pop3/line_safety.h"
#include "pop3/xclient.h"
#include "runtime/stream.h"
#include "tls/tls_engine.h"

namespace popgate {
namespace {

using Outcome = BackendLoginResult::Outcome;

// A backend's CAPA answer longer than this is not one.
constexpr size_t kMaxCapaLines = 64;

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

constexpr std::string_view kAuthFailedReply =
    "-ERR [AUTH] Authentication failed.";

// Wipes a string that held a secret when the coroutine leaves its scope,
// whichever co_return it takes.
struct WipeOnExit {
  std::string& s;
  ~WipeOnExit() { Wipe(s); }
};

// "+OK [XCLIENT] ..." (Dovecot's pop3-login, to trusted peers; its own
// POP3 proxy looks for exactly this). Any response code in the leading
// brackets counts, case-insensitively.
bool GreetingOffersXclient(std::string_view greeting) {
  if (!greeting.starts_with("+OK")) return false;
  std::string_view rest = greeting.substr(3);
  while (rest.starts_with(" ")) rest.remove_prefix(1);
  while (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view code = rest.substr(1, close - 1);
    if (absl::EqualsIgnoreCase(absl::string_view(code.data(), code.size()),
                               "XCLIENT"))
      return true;
    rest.remove_prefix(close + 1);
    while (rest.starts_with(" ")) rest.remove_prefix(1);
  }
  return false;
}

// The numeric host of an address ("192.0.2.7", "2001:db8::1"); a v4-mapped
// IPv6 address as IPv4, as the backend would see the client without us.
// Empty for an unknown family.
std::string NumericHost(const SocketAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&a.storage);
    ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
  } else if (a.family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      ::inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf, sizeof(buf));
    } else {
      ::inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    }
  }
  return buf;
}

XclientParams XclientFor(const BackendIdentity& id) {
  XclientParams x;
  x.addr = NumericHost(id.client);
  x.port = id.client.len > 0 ? id.client.port() : 0;
  x.session = id.session_id;
  // Hops left for the backend's own proxying (Dovecot refuses to proxy on
  // at TTL 0 or 1): counts down from popgate's own chain limit, so a loop
  // through Dovecot proxies and popgates still ends.
  const int left = static_cast<int>(kMaxPopgateHops) - id.hops;
  x.ttl = std::max(left, 1);
  x.dest_addr = NumericHost(id.local);
  x.dest_port = id.local.len > 0 ? id.local.port() : 0;
  return x;
}

// base64 (RFC 4648, padded) of `raw`; the caller wipes both.
std::string Base64(std::string_view raw) {
  size_t len = 0;
  if (!EVP_EncodedLength(&len, raw.size())) return {};
  std::string out(len, '\0');  // len counts a trailing NUL
  size_t n =
      EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()),
                      reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  out.resize(n);
  return out;
}

// line = command + argument + CRLF, in a buffer sized for it at once: a
// secret is never in a buffer that grows (a reallocation would leave a
// copy in freed memory that no Wipe reaches), and one allocation, not
// three.
void SetCommandLine(std::string& line, std::string_view command,
                    std::string_view argument) {
  line.clear();
  line.reserve(command.size() + argument.size() + 2);
  line.append(command).append(argument).append("\r\n");
}

// The USER line and the secret line(s) for `c` (see LoginToBackend's
// comment in the header). InvalidArgument: the client's bytes cannot go
// into a line, or the user name names a master login itself (refuse the
// login); FailedPrecondition: the master login is not configured (ours).
// Messages never contain the password.
absl::Status BuildCredentialLines(const BackendCredentials& c,
                                  std::string& user_line,
                                  std::string& secret_line,
                                  std::string& sasl_response) {
  if (c.mode == BackendLoginMode::kClient) {
    for (absl::Status st : {CheckLineArgument("USER", c.user),
                            CheckLineArgument("PASS", c.password)}) {
      if (!st.ok()) return st;
    }
    user_line = absl::StrCat("USER ", AbslView(c.user), "\r\n");
    SetCommandLine(secret_line, "PASS ", c.password);
    return absl::OkStatus();
  }
  if (c.master_user.empty() || c.password.empty()) {
    return absl::FailedPreconditionError(
        "master login: no master user or master password configured");
  }
  if (c.method == MasterLoginMethod::kSeparator) {
    if (c.separator.empty()) {
      return absl::FailedPreconditionError(
          "master login: empty master separator");
    }
    if (c.user.find(c.separator) != std::string_view::npos) {
      // "bob*othermaster" would pick the master login itself.
      return absl::InvalidArgumentError(
          "master login: the user name contains the master separator");
    }
    const std::string login =
        absl::StrCat(std::string(c.user), std::string(c.separator),
                     std::string(c.master_user));
    for (absl::Status st : {CheckLineArgument("USER", login),
                            CheckLineArgument("PASS", c.password)}) {
      if (!st.ok()) return st;
    }
    user_line = absl::StrCat("USER ", login, "\r\n");
    SetCommandLine(secret_line, "PASS ", c.password);
    return absl::OkStatus();
  }
  // AUTH PLAIN: authzid = the user, authcid = the master user.
  if (!SafeForLine(c.user) || c.user.empty()) {
    return absl::InvalidArgumentError(
        "AUTH PLAIN: the user name is empty or contains CR, LF or NUL");
  }
  if (!SafeForLine(c.master_user) || !SafeForLine(c.password)) {
    return absl::FailedPreconditionError(
        "AUTH PLAIN: the master user or password contains CR, LF or NUL");
  }
  std::string raw;
  raw.append(c.user).push_back('\0');
  raw.append(c.master_user).push_back('\0');
  raw.append(c.password);
  std::string b64 = Base64(raw);
  Wipe(raw);
  if (CheckLineArgument("AUTH PLAIN", b64).ok()) {
    SetCommandLine(secret_line, "AUTH PLAIN ", b64);
  } else {
    // RFC 5034 4: an initial response that would make the command longer
    // than 255 octets is not sent on the AUTH line but after "+ ".
    secret_line = "AUTH PLAIN\r\n";
    SetCommandLine(sasl_response, "", b64);
  }
  Wipe(b64);
  return absl::OkStatus();
}

}  // namespace

const std::string& ProcessLoopToken() {
  // A function-local static: one token per process, drawn once, shared by
  // every worker thread (C++ guarantees thread-safe initialisation).
  static const std::string token = [] {
    unsigned char bytes[kLoopTokenLength / 2] = {};
    size_t got = 0;
    while (got < sizeof(bytes)) {
      ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
      if (n > 0) got += static_cast<size_t>(n);
      // EINTR: try again. getrandom does not fail otherwise once the pool
      // is initialised, which it is long before a mail proxy starts.
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string t;
    for (unsigned char b : bytes) {
      t += kHex[b >> 4];
      t += kHex[b & 0xf];
    }
    return t;
  }();
  return token;
}

bool IsLoopToken(std::string_view token) {
  return token.size() == kLoopTokenLength &&
         std::all_of(token.begin(), token.end(), IsLowerHex);
}

std::optional<std::string_view> FindLoopToken(std::string_view line) {
  size_t at = line.find(kLoopTokenTag);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view token =
      line.substr(at + kLoopTokenTag.size(), kLoopTokenLength);
  if (!IsLoopToken(token)) return std::nullopt;
  return token;
}

Task<BackendLoginResult> LoginToBackend(Ring& ring,
                                        const BackendLoginParams& p) {
  BackendLoginResult r;
  const BackendCredentials& creds = p.creds;
  const BackendIdentity& identity = p.identity;
  const absl::Duration connect_timeout = p.connect_timeout;
  const absl::Duration auth_timeout = p.auth_timeout;
  const LoopGuard& loop = p.loop;
  const bool sasl = creds.mode == BackendLoginMode::kMaster &&
                    creds.method == MasterLoginMethod::kSaslPlain;

  // The lines that carry credentials, built and checked before connecting:
  // client bytes go into them, and a CR or LF would let the client append
  // commands of its own. The secret ones are wiped on every way out.
  std::string user_line;      // "USER ...\r\n"; empty with AUTH PLAIN
  std::string secret_line;    // "PASS ...\r\n" or "AUTH PLAIN <b64>\r\n"
  std::string sasl_response;  // the base64 line after "+ " (long AUTH)
  WipeOnExit wipe_secret{secret_line};
  WipeOnExit wipe_response{sasl_response};
  if (absl::Status st =
          BuildCredentialLines(creds, user_line, secret_line, sasl_response);
      !st.ok()) {
    r.error = std::string(st.message());
    if (absl::IsFailedPrecondition(st)) co_return r;  // our configuration
    r.outcome = Outcome::kRefused;
    r.reply = std::string(kAuthFailedReply);
    co_return r;
  }

  // PROXY v2: the backend reads it off the raw connection, before TLS.
  std::string preamble;
  bool proxy_sends_client = false;
  if (identity.mode == ClientIdentity::kProxyV2) {
    if (identity.client.len == 0 || identity.local.len == 0) {
      // No client address to pass on (should not happen for a session):
      // LOCAL keeps the connection acceptable to a PROXY listener.
      preamble = EncodeProxyV2Local();
      r.identity_error = "PROXY v2: client address unknown, sent LOCAL";
    } else {
      ProxyTlsInfo tls_info{identity.tls_version, identity.tls_cipher,
                            identity.sni};
      preamble =
          EncodeProxyV2(identity.client, identity.local,
                        identity.tls_version.empty() ? nullptr : &tls_info);
      proxy_sends_client = true;
    }
  }

  BackendConnectParams cp;
  cp.addr = p.addr;
  cp.timeout = connect_timeout;
  cp.tls = p.tls;
  cp.preamble = preamble;
  cp.fd_slot = p.fd_slot;
  BackendConnection conn = co_await ConnectBackend(ring, cp);
  r.fd = std::move(conn.fd);
  if (!conn.ok) {
    r.health_failure = conn.health_failure;
    r.error = std::move(conn.error);
    co_return r;
  }
  r.identity_sent = proxy_sends_client;
  std::unique_ptr<Stream> stream = std::move(conn.stream);
  std::unique_ptr<LineReader> reader = std::move(conn.reader);
  std::string_view line;
  LineStatus st;

  // XCLIENT: Dovecot says in its greeting whether we may send it.
  const bool want_xclient = identity.mode == ClientIdentity::kXclient;
  const bool greeting_offers_xclient =
      want_xclient && GreetingOffersXclient(conn.greeting);
  std::string xclient_line;
  if (want_xclient) {
    absl::StatusOr<std::string> x = FormatXclient(XclientFor(identity));
    if (x.ok()) {
      xclient_line = *std::move(x);
    } else {
      r.identity_error =
          absl::StrCat("XCLIENT not sent: ", std::string(x.status().message()));
    }
  }
  bool xclient_sent = false;
  bool user_sent = false;

  // First flight. CAPA always: its IMPLEMENTATION line tells whether the
  // backend is a popgate, and which (see LoopGuard); a backend without CAPA
  // answers one -ERR line, which is fine. USER goes with it (no extra round
  // trip) unless XCLIENT may still have to go before it, or the login is
  // one AUTH line (which must wait for the loop check).
  // The secret line, where it goes, is appended last: a buffer outgrown
  // before it holds no secret; the last one is wiped.
  std::string command;
  WipeOnExit wipe_command{command};
  // Room for every line it may take, the secret one last: no growth.
  command.reserve(6 + xclient_line.size() + user_line.size() +
                  secret_line.size());
  command = "CAPA\r\n";
  if (greeting_offers_xclient && !xclient_line.empty()) {
    command += xclient_line;
    xclient_sent = true;
  }
  const bool user_waits_for_capa =
      want_xclient && !greeting_offers_xclient && !xclient_line.empty();
  if (!sasl && !user_waits_for_capa) {
    command += user_line;
    user_sent = true;
  }
  // PASS too when this backend's CAPA, at the latest login, listed
  // PIPELINING and named no popgate (CapaMemo): no wait for the USER
  // reply. Never on the first login to a backend, so a loop back to us or
  // a popgate behind is seen before any password goes out to it.
  const bool pass_pipelined =
      user_sent && p.capa_memo != nullptr &&
      p.capa_memo->pipelining() == BackendPipelining::kYes;
  if (pass_pipelined) {
    command += secret_line;
    r.credentials_sent = true;
  }
  int first_rc = co_await stream->WriteAll(command, connect_timeout);
  Wipe(command);
  if (first_rc < 0) {
    r.error = "CAPA: write failed";
    co_return r;
  }
  // A copy: `line` points into the reader, which the next read reuses.
  std::string token;
  bool capa_offers_xclient = false;
  bool capa_offers_pipelining = false;
  st = co_await ReadLine(*stream, *reader, line, connect_timeout);
  const bool capa_ok = st == LineStatus::kLine && line.starts_with("+OK");
  if (capa_ok) {
    for (size_t n = 0;; ++n) {
      st = co_await ReadLine(*stream, *reader, line, connect_timeout);
      if (st != LineStatus::kLine || line == "." || n == kMaxCapaLines) break;
      if (token.empty()) token = std::string(FindLoopToken(line).value_or(""));
      if (CapaOffersXclient(line)) capa_offers_xclient = true;
      // Capability names are case-insensitive (RFC 2449 5).
      if (absl::EqualsIgnoreCase(absl::string_view(line.data(), line.size()),
                                 "PIPELINING")) {
        capa_offers_pipelining = true;
      }
    }
  }
  if (st != LineStatus::kLine || (line != "." && !line.starts_with("-"))) {
    r.error = absl::StrCat("CAPA: ", st == LineStatus::kLine
                                         ? "malformed or overlong answer"
                                         : DescribeLineStatus(st));
    co_return r;
  }
  if (p.capa_memo != nullptr) {
    p.capa_memo->set_pipelining(capa_ok && capa_offers_pipelining &&
                                        token.empty()
                                    ? BackendPipelining::kYes
                                    : BackendPipelining::kNo);
  }

  if (user_waits_for_capa) {
    // Not offered in the greeting: maybe in CAPA (servers other than
    // Dovecot 2.3). Never to a popgate: it does not offer XCLIENT.
    command.clear();
    if (capa_offers_xclient && !xclient_line.empty()) {
      command += xclient_line;
      xclient_sent = true;
    }
    if (!sasl) {
      command += user_line;
      user_sent = true;
    }
    if (!command.empty() &&
        co_await stream->WriteAll(command, connect_timeout) < 0) {
      r.error = "USER: write failed";
      co_return r;
    }
  }
  if (xclient_sent) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error = absl::StrCat("XCLIENT: ", DescribeLineStatus(st));
      co_return r;
    }
    if (line.starts_with("+OK")) {
      r.identity_sent = true;
    } else {
      // The login goes on: the backend sees our address, as without
      // client_identity. The reply is the backend's text, no secret.
      r.identity_error =
          absl::StrCat("XCLIENT refused by the backend: ",
                       absl::CHexEscape(absl::string_view(
                           line.data(), std::min<size_t>(line.size(), 100))));
    }
  } else if (want_xclient && r.identity_error.empty()) {
    r.identity_error =
        "XCLIENT not offered by the backend (is popgate in its "
        "login_trusted_networks?)";
  }
  if (user_sent) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error = absl::StrCat("USER: ", DescribeLineStatus(st));
      co_return r;
    }
    if (!line.starts_with("+OK")) {
      r.outcome = Outcome::kRefused;
      r.reply = std::string(line);
      co_return r;
    }
  }
  // Is the backend a popgate, and one we came through? (See LoopGuard.)
  const bool backend_is_popgate = !token.empty();
  if (backend_is_popgate &&
      (token == loop.own ||
       std::find(loop.upstream.begin(), loop.upstream.end(), token) !=
           loop.upstream.end() ||
       loop.upstream.size() + 1 >= kMaxPopgateHops)) {
    r.outcome = Outcome::kLoop;
    r.error = absl::StrCat("the backend is popgate ", token,
                           ", which this session came through");
    co_return r;
  }

  // A popgate where the memo said none (it changed since the latest
  // login, not a loop): PASS went without XPOPGATE-LOOP, and the next
  // login, told by the memo, sends it again.
  const bool loop_command_sent = backend_is_popgate && !pass_pipelined;
  int wrc = 0;
  if (!pass_pipelined) {
    command.clear();
    if (loop_command_sent) {
      // Pipelined before PASS (popgate announces PIPELINING): no extra
      // round trip. Its answer is read and ignored: an older popgate says
      // -ERR.
      absl::StrAppend(&command, std::string(kLoopCommand), " ",
                      std::string(loop.own));
      for (const std::string& t : loop.upstream)
        absl::StrAppend(&command, " ", t);
      command += "\r\n";
    }
    command += secret_line;
    // With a long AUTH PLAIN, the first line is only "AUTH PLAIN": the
    // credentials go with the response line below.
    if (sasl_response.empty()) r.credentials_sent = true;
    wrc = co_await stream->WriteAll(command, auth_timeout);
    Wipe(command);
    if (wrc < 0) {
      r.error = sasl ? "AUTH: write failed" : "PASS: write failed";
      co_return r;
    }
  }
  if (loop_command_sent) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error =
          absl::StrCat(std::string(kLoopCommand), ": ", DescribeLineStatus(st));
      co_return r;
    }
  }
  const char* const step = sasl ? "AUTH" : "PASS";
  if (!sasl_response.empty()) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error = absl::StrCat("AUTH: ", DescribeLineStatus(st));
      co_return r;
    }
    if (!line.starts_with("+ ") && line != "+") {
      r.outcome = Outcome::kRefused;
      r.reply = std::string(line);
      r.error = "AUTH PLAIN refused by the backend";
      co_return r;
    }
    r.credentials_sent = true;
    wrc = co_await stream->WriteAll(sasl_response, auth_timeout);
    Wipe(sasl_response);
    if (wrc < 0) {
      r.error = "AUTH: write failed";
      co_return r;
    }
  }
  st = co_await ReadLine(*stream, *reader, line, auth_timeout);
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat(step, ": ", DescribeLineStatus(st));
    co_return r;
  }
  if (sasl && line.starts_with("+") && !line.starts_with("+OK")) {
    // A continuation after a complete PLAIN response: the backend wants
    // something we do not speak. Not the client's fault, not ill health.
    r.error = "AUTH PLAIN: the backend asked for more than the response";
    co_return r;
  }
  r.reply = std::string(line);
  r.outcome = line.starts_with("+OK") ? Outcome::kOk : Outcome::kRefused;
  if (backend_is_popgate && line == kLoopReply) {
    // The popgate behind us found the loop (it leads back to us).
    r.outcome = Outcome::kLoop;
    r.error = absl::StrCat("popgate ", token, " behind us found a loop");
  }
  r.leftover = std::string(reader->Pending());
  r.stream = std::move(stream);
  co_return r;
}

}  // namespace popgate
