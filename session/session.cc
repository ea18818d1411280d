// A session reads like the protocol: (TLS handshake on an implicit-TLS
// listener,) greet, answer AUTHORIZATION-state commands (CAPA, STLS, USER,
// PASS, AUTH, QUIT) until a login authenticates, log in to the user's
// backend, relay its +OK, hand over whatever the client pipelined, then
// forward both ways (splice, or copy through TLS) until both sides are done.
#include "session/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "auth/password_scheme.h"
#include "session/backend_login.h"
#include "forward/forward_copy.h"
#include "forward/forwarder.h"
#include "pop3/line_reader.h"
#include "runtime/pool_await.h"
#include "pop3/pop3_command.h"
#include "pop3/pop3_replies.h"
#include "session/read_line.h"
#include "pop3/sasl.h"
#include "session/session_log.h"
#include "runtime/stream.h"
#include "tls/tls_engine.h"
#include "forward/tls_stream.h"
#include "base/wipe.h"
#include "session/session_env.h"

namespace popgate {
namespace {

// A client sending garbage is closed after this many invalid commands, or
// after this many overlong lines (RFC 2449: "if it keeps coming").
constexpr int kMaxInvalidCommands = 20;
constexpr int kMaxOverlongLines = 3;
// Closing before login: how long, and how much, to drain from the client.
constexpr absl::Duration kLingerTime = absl::Seconds(2);
constexpr size_t kLingerBytes = 256 * 1024;
// Longest username kept for the log when it did not even canonicalise.
constexpr size_t kMaxLoggedUser = 64;

struct SessionState {
  SessionState(SessionEnv& w, int fd, int listener)
      : worker(w),
        ring(w.ring()),
        snap(w.snapshot()),
        listener_index(listener),
        client_fd(fd),
        client(std::make_unique<PlainStream>(w.ring(), fd)),
        reader(std::make_unique<LineReader>()) {}

  const ListenerConfig& listener() const {
    return snap->config.listeners[listener_index];
  }
  // RFC 2595: no plaintext password on an unprotected connection unless
  // the operator allows it (for trusted networks by default).
  bool PlaintextLoginAllowed() const {
    if (tls_active) return true;
    switch (listener().plaintext_auth) {
      case PlaintextAuth::kAlways:
        return true;
      case PlaintextAuth::kNever:
        return false;
      case PlaintextAuth::kTrusted:
        return trusted_client;
    }
    return false;
  }

  SessionEnv& worker;
  Ring& ring;
  std::shared_ptr<const Snapshot> snap;
  int listener_index;
  int client_fd;
  std::unique_ptr<Stream> client;
  bool tls_active = false;
  bool trusted_client = false;
  std::string sni_tenant;              // tenant chosen by the TLS SNI name
  std::unique_ptr<LineReader> reader;  // freed once forwarding starts
  SessionRecord rec;
  LiveSession live;
  UniqueFd backend;
  std::unique_ptr<Stream> backend_stream;
  std::string backend_reply;     // the backend's +OK to PASS
  std::string backend_leftover;  // anything it sent after that
};

// Replaces the session's client stream with TLS over the same socket and
// runs the handshake. False (with rec.result set) if it failed.
Task<bool> StartClientTls(SessionState& s) {
  const std::shared_ptr<const tls::ServerContext>& ctx =
      s.snap->listener_tls[s.listener_index];
  absl::StatusOr<std::unique_ptr<tls::TlsEngine>> engine =
      tls::TlsEngine::NewServer(ctx);
  if (!engine.ok()) {
    s.rec.result = "tls_error";
    co_return false;
  }
  auto stream = std::make_unique<TlsStream>(s.ring, s.worker.buffers(),
                                            s.client_fd, *std::move(engine));
  int rc = co_await stream->Handshake(s.snap->config.tls.handshake_timeout);
  if (rc < 0) {
    s.rec.result = rc == -EPROTO
                       ? "tls_handshake_failed: " + stream->engine().error()
                   : rc == -ECANCELED ? std::string("tls_handshake_timeout")
                                      : std::string("client_closed");
    co_return false;
  }
  tls::TlsEngine& e = stream->engine();
  s.rec.tls = std::string(e.version());
  s.rec.tls_resumed = e.resumed();
  s.rec.sni = std::string(e.sni());
  s.sni_tenant = std::string(e.sni_tenant());
  s.client = std::move(stream);
  s.tls_active = true;
  co_return true;
}

std::string CapaReply(const SessionState& s) {
  std::string capa(replies::kCapaHead);
  if (s.PlaintextLoginAllowed()) {
    capa += replies::kCapaUser;
    capa += kSaslCapa;
  }
  if (s.listener().tls == ListenerTls::kStartTls && !s.tls_active) {
    capa += replies::kCapaStls;
  }
  capa += replies::kCapaTail;
  return capa;
}

// A backend's -ERR, relayed with a response code the client can act on:
// the backend's own code ([IN-USE], [SYS/TEMP]...) if it gave one, else
// [AUTH].
std::string RefusalReply(std::string_view backend_line) {
  std::string_view rest = backend_line;
  if (rest.starts_with("-ERR")) rest.remove_prefix(4);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  std::string text;
  for (char c : rest) {
    text += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  if (!text.empty() && text.front() == '[') {
    return absl::StrCat("-ERR ", text, "\r\n");
  }
  if (text.empty()) text = "Authentication failed.";
  return absl::StrCat("-ERR [AUTH] ", text, "\r\n");
}

enum class PassOutcome { kLoggedIn, kFailed, kUnavailable, kClientGone };

// USER/PASS pair: resolve the tenant, check the password (on the hash pool
// for file tenants), log in to the backend. On failure the reply has been
// sent (after the failure delay) unless the outcome is kClientGone.
Task<PassOutcome> HandlePass(SessionState& s, std::string_view raw_user,
                             std::string& password) {
  const Snapshot& snap = *s.snap;
  const ServerConfig& cfg = snap.config.server;
  // No domain in the username: the TLS name picks the tenant, else the
  // listener's default.
  std::string_view default_tenant = s.sni_tenant;
  if (default_tenant.empty()) {
    default_tenant = snap.listener_default_tenant[s.listener_index];
  }
  s.rec.user = std::string(raw_user.substr(0, kMaxLoggedUser));
  absl::StatusOr<routing::Route> route =
      snap.table.Resolve(raw_user, default_tenant);

  std::string failure_reply(replies::kAuthFailed);
  bool ok = false;
  if (route.ok()) {
    s.rec.user = route->user.full;
    const TenantConfig& tenant = snap.config.tenants[route->tenant_index];
    s.rec.tenant = tenant.spec.name;
    if (tenant.auth == AuthProvider::kFile) {
      const auth::PasswdFile* file = snap.passwd[route->tenant_index].get();
      const auth::PasswdEntry* entry = file->Find(route->user.full);
      if (entry == nullptr && !route->user.domain.empty()) {
        // A per-tenant file may list bare local parts, as Dovecot's often do.
        entry = file->Find(route->user.local);
      }
      ok = co_await RunOnPool(
          s.worker.hash_pool(), s.ring, [entry, &password]() -> bool {
            if (entry == nullptr) {
              auth::BurnVerificationTime();
              return false;
            }
            return auth::VerifyPassword(entry->scheme, entry->hash, password);
          });
    } else {
      ok = true;  // the backend's answer to PASS is the verdict
    }
    if (ok) {
      const SocketAddress& addr =
          snap.backend_addrs[route->tenant_index][route->backend_index];
      s.rec.backend = tenant.spec.backends[route->backend_index].address;
      BackendTlsParams tls;
      tls.mode = tenant.backend_tls.mode;
      tls.ctx = snap.backend_tls[route->tenant_index];
      tls.name =
          snap.backend_tls_names[route->tenant_index][route->backend_index];
      tls.buffers = &s.worker.buffers();
      tls.handshake_timeout = snap.config.tls.handshake_timeout;
      BackendLoginResult login = co_await LoginToBackend(
          s.ring, addr, route->backend_user, password, cfg.backend_timeout,
          cfg.backend_auth_timeout, tls, &s.live.backend_fd);
      switch (login.outcome) {
        case BackendLoginResult::Outcome::kOk:
          s.backend = std::move(login.fd);
          s.backend_stream = std::move(login.stream);
          if (!s.backend_stream->IsPlainSocket()) {
            s.rec.backend_tls = std::string(
                static_cast<TlsStream&>(*s.backend_stream).engine().version());
          }
          s.backend_reply = std::move(login.reply);
          s.backend_leftover = std::move(login.leftover);
          co_return PassOutcome::kLoggedIn;
        case BackendLoginResult::Outcome::kUnavailable: {
          s.live.backend_fd = -1;
          login.fd.Reset();
          s.rec.result = absl::StrCat("backend_unavailable: ", login.error);
          co_await s.client->WriteAll(replies::kBackendUnavailable,
                                      cfg.preauth_idle_timeout);
          co_return PassOutcome::kUnavailable;
        }
        case BackendLoginResult::Outcome::kRefused:
          // Closed without QUIT: nothing was opened on the backend.
          s.live.backend_fd = -1;
          login.fd.Reset();
          failure_reply = RefusalReply(login.reply);
          ok = false;
          break;
      }
    }
  }
  // Every failure costs the same delay, whatever failed, so a client learns
  // nothing from timing and brute force slows down. The delay is a timer on
  // the ring: it holds no thread and slows no other session.
  ++s.rec.auth_failures;
  co_await Sleep(s.ring, cfg.auth_failure_delay);
  if (s.rec.auth_failures >= cfg.max_auth_failures) {
    s.rec.result = "too_many_auth_failures";
    co_await s.client->WriteAll(replies::kTooManyFailures,
                                cfg.preauth_idle_timeout);
    co_return PassOutcome::kClientGone;
  }
  s.rec.result = "auth_failed";
  if (co_await s.client->WriteAll(failure_reply, cfg.preauth_idle_timeout) <
      0) {
    co_return PassOutcome::kClientGone;
  }
  co_return PassOutcome::kFailed;
}

enum class SaslStatus { kOk, kCancelled, kMalformed, kClientGone };

// Reads one SASL client response line (base64, or "*" to cancel).
Task<SaslStatus> ReadSaslLine(SessionState& s, std::string& out) {
  std::string_view line;
  LineStatus st = co_await ReadLine(*s.client, *s.reader, line,
                                    s.snap->config.server.preauth_idle_timeout);
  if (st == LineStatus::kTooLong) co_return SaslStatus::kMalformed;
  if (st != LineStatus::kLine) co_return SaslStatus::kClientGone;
  if (line == "*") co_return SaslStatus::kCancelled;
  out = std::string(line);
  co_return SaslStatus::kOk;
}

// RFC 5034 AUTH: runs the PLAIN or LOGIN exchange (with or without an
// initial response) and yields the credentials. Payloads are never logged
// and are wiped after use.
Task<SaslStatus> SaslExchange(SessionState& s, SaslMechanism mech,
                              std::string_view initial,
                              SaslCredentials& creds) {
  const absl::Duration idle = s.snap->config.server.preauth_idle_timeout;
  std::string response(initial == "=" ? std::string_view() : initial);
  if (mech == SaslMechanism::kPlain) {
    if (initial.empty()) {
      if (co_await s.client->WriteAll(replies::kSaslContinue, idle) < 0) {
        co_return SaslStatus::kClientGone;
      }
      SaslStatus st = co_await ReadSaslLine(s, response);
      if (st != SaslStatus::kOk) co_return st;
    }
    std::optional<SaslCredentials> c = DecodeSaslPlain(response);
    Wipe(response);
    if (!c) co_return SaslStatus::kMalformed;
    creds = *std::move(c);
    co_return SaslStatus::kOk;
  }
  // LOGIN: the initial response, if any, is the username.
  if (initial.empty()) {
    if (co_await s.client->WriteAll(replies::kSaslUsername, idle) < 0) {
      co_return SaslStatus::kClientGone;
    }
    SaslStatus st = co_await ReadSaslLine(s, response);
    if (st != SaslStatus::kOk) co_return st;
  }
  std::optional<std::string> user = DecodeBase64(response);
  if (!user || user->empty()) co_return SaslStatus::kMalformed;
  if (co_await s.client->WriteAll(replies::kSaslPassword, idle) < 0) {
    co_return SaslStatus::kClientGone;
  }
  SaslStatus st = co_await ReadSaslLine(s, response);
  if (st != SaslStatus::kOk) co_return st;
  std::optional<std::string> password = DecodeBase64(response);
  Wipe(response);
  if (!password || password->empty()) co_return SaslStatus::kMalformed;
  creds.user = *std::move(user);
  creds.password = *std::move(password);
  co_return SaslStatus::kOk;
}

// The AUTHORIZATION state. True once logged in to the backend.
Task<bool> Authorize(SessionState& s) {
  const ServerConfig& cfg = s.snap->config.server;
  const absl::Duration idle = cfg.preauth_idle_timeout;
  std::string greeting = absl::StrCat("+OK ", cfg.greeting, "\r\n");
  if (co_await s.client->WriteAll(greeting, idle) < 0) co_return false;

  std::string user;
  int invalid = 0;
  int overlong = 0;
  std::string_view line;
  while (true) {
    LineStatus st = co_await ReadLine(*s.client, *s.reader, line, idle);
    if (st == LineStatus::kTimeout) {
      s.rec.result = "idle_timeout";
      co_await s.client->WriteAll(replies::kIdleTimeout, idle);
      co_return false;
    }
    if (st == LineStatus::kEof || st == LineStatus::kError) {
      s.rec.result = s.rec.auth_failures > 0 ? "auth_failed" : "client_closed";
      co_return false;
    }
    std::string_view reply;
    std::string capa;
    if (st == LineStatus::kTooLong) {
      reply = replies::kLineTooLong;
      if (++overlong >= kMaxOverlongLines) {
        s.rec.result = "protocol_error";
        co_await s.client->WriteAll(replies::kTooManyErrors, idle);
        co_return false;
      }
    } else if (HasForbiddenBytes(line)) {
      reply = replies::kBadBytes;
      ++invalid;
    } else {
      Command cmd = ParseCommand(line);
      switch (cmd.verb) {
        case Verb::kCapa:
          capa = CapaReply(s);
          reply = capa;
          break;
        case Verb::kUser:
          if (!s.PlaintextLoginAllowed()) {
            reply = replies::kPlaintextRefused;
          } else if (cmd.arg.empty()) {
            reply = replies::kUserMissing;
            ++invalid;
          } else {
            user = std::string(cmd.arg);
            reply = replies::kUserOk;
          }
          break;
        case Verb::kPass: {
          if (!s.PlaintextLoginAllowed()) {
            reply = replies::kPlaintextRefused;
            break;
          }
          if (user.empty()) {
            reply = replies::kPassWithoutUser;
            ++invalid;
            break;
          }
          std::string password(cmd.arg);
          PassOutcome outcome = co_await HandlePass(s, user, password);
          Wipe(password);
          user.clear();
          if (outcome == PassOutcome::kLoggedIn) co_return true;
          if (outcome != PassOutcome::kFailed) co_return false;
          continue;  // the failure reply has been sent
        }
        case Verb::kQuit:
          s.rec.result = "quit";
          co_await s.client->WriteAll(replies::kBye, idle);
          co_return false;
        case Verb::kStls:
          if (s.tls_active) {
            reply = replies::kStlsAgain;
            break;
          }
          if (s.listener().tls != ListenerTls::kStartTls) {
            reply = replies::kStlsUnavailable;
            break;
          }
          if (co_await s.client->WriteAll(replies::kStlsGo, idle) < 0) {
            s.rec.result = "client_closed";
            co_return false;
          }
          // Anything pipelined behind STLS arrived in plaintext and could
          // have been injected by a man in the middle (CVE-2011-0411): drop
          // it, and forget the USER given before TLS.
          s.reader = std::make_unique<LineReader>();
          user.clear();
          if (!co_await StartClientTls(s)) co_return false;
          continue;
        case Verb::kAuth: {
          if (!s.PlaintextLoginAllowed()) {
            reply = replies::kPlaintextRefused;
            break;
          }
          if (cmd.arg.empty()) {
            reply = kSaslMechanismList;
            break;
          }
          size_t sp = cmd.arg.find(' ');
          std::optional<SaslMechanism> mech =
              ParseSaslMechanism(cmd.arg.substr(0, sp));
          if (!mech) {
            reply = replies::kAuthUnsupported;
            ++invalid;
            break;
          }
          std::string_view initial = sp == std::string_view::npos
                                         ? std::string_view()
                                         : cmd.arg.substr(sp + 1);
          SaslCredentials creds;
          SaslStatus st = co_await SaslExchange(s, *mech, initial, creds);
          if (st == SaslStatus::kClientGone) {
            s.rec.result = "client_closed";
            co_return false;
          }
          if (st == SaslStatus::kCancelled) {
            reply = replies::kSaslCancelled;
            break;
          }
          if (st == SaslStatus::kMalformed) {
            reply = replies::kSaslMalformed;
            ++invalid;
            break;
          }
          user.clear();
          PassOutcome outcome =
              co_await HandlePass(s, creds.user, creds.password);
          Wipe(creds.password);
          if (outcome == PassOutcome::kLoggedIn) co_return true;
          if (outcome != PassOutcome::kFailed) co_return false;
          continue;
        }
        case Verb::kNoop:
        case Verb::kUnknown:
          reply = replies::kUnknownCommand;
          ++invalid;
          break;
      }
    }
    if (invalid >= kMaxInvalidCommands) {
      s.rec.result = "protocol_error";
      co_await s.client->WriteAll(replies::kTooManyErrors, idle);
      co_return false;
    }
    if (co_await s.client->WriteAll(reply, idle) < 0) {
      s.rec.result = "client_closed";
      co_return false;
    }
  }
}

// Client TLS to the kernel, so the session can be spliced: true if handed
// over, false to stay in user space (ktls_fallback says why), an error if
// the connection broke on the way (the kernel took one direction only).
// Only towards a plain backend: with TLS on both sides the copy path runs
// anyway.
absl::StatusOr<bool> HandClientTlsToKernel(SessionState& s) {
  auto& tls = static_cast<TlsStream&>(*s.client);
  if (!s.backend_stream->IsPlainSocket()) {
    tls.engine().ForgetSecrets();
    s.rec.ktls_fallback = "backend uses TLS";
    return false;
  }
  absl::Status st = tls.HandOffToKernel();
  if (st.ok()) return true;
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    s.rec.ktls_fallback = std::string(st.message());
    return false;
  }
  return st;
}

// After the backend's +OK: relay it, deliver what the client pipelined
// behind PASS (in order, before any later byte), then splice.
Task<void> Forward(SessionState& s) {
  const absl::Duration timeout = s.snap->config.server.backend_timeout;
  std::string ok = absl::StrCat(s.backend_reply, "\r\n", s.backend_leftover);
  if (co_await s.client->WriteAll(ok, timeout) < 0) {
    s.rec.result = "client_closed";
    co_return;
  }
  std::string pipelined(s.reader->Pending());
  if (!pipelined.empty()) {
    if (co_await s.backend_stream->WriteAll(pipelined, timeout) < 0) {
      s.rec.result = "backend_error";
      co_return;
    }
    s.rec.bytes_in += pipelined.size();
    Wipe(pipelined);
  }
  // An idle forwarded session should cost little: drop pre-login state.
  const absl::Duration idle = s.snap->config.server.forward_idle_timeout;
  const bool use_ktls = s.snap->use_ktls;
  s.reader.reset();
  s.snap.reset();
  std::string().swap(s.backend_reply);
  std::string().swap(s.backend_leftover);
  bool client_ktls = false;
  if (use_ktls && !s.client->IsPlainSocket()) {
    absl::StatusOr<bool> handed = HandClientTlsToKernel(s);
    if (!handed.ok()) {
      s.rec.ktls_fallback = std::string(handed.status().message());
      s.rec.result = "ktls_error";
      co_return;
    }
    client_ktls = *handed;
  }
  ForwardStats stats;
  if ((s.client->IsPlainSocket() || client_ktls) &&
      s.backend_stream->IsPlainSocket()) {
    s.rec.forwarding = client_ktls ? "ktls-splice" : "splice";
    stats =
        co_await ForwardSplice(s.ring, s.worker.pipes(), &s.worker.buffers(),
                               s.client_fd, s.backend.get(), idle, client_ktls);
  } else {
    // TLS that stays in user space (no kernel TLS here, or it could not
    // take this session): bytes are decrypted and re-encrypted here.
    s.rec.forwarding = "copy";
    stats = co_await ForwardCopy(s.ring, *s.client, *s.backend_stream, idle);
  }
  s.rec.bytes_in += stats.client_to_backend;
  s.rec.bytes_out += stats.backend_to_client;
  s.rec.result = stats.end == "closed" ? "ok" : stats.end;
}

// Closing a socket with unread input makes the kernel send a reset, which
// can destroy our last reply (say "-ERR Too many invalid commands") before
// the client reads it. So: say goodbye at the TLS level, stop writing, and
// read and drop what the client still sends, bounded in time and bytes,
// before the socket closes.
Task<void> LingerClose(SessionState& s) {
  if (!s.client->IsPlainSocket()) {
    co_await static_cast<TlsStream&>(*s.client).Close(kLingerTime);
  }
  ::shutdown(s.client_fd, SHUT_WR);
  std::unique_ptr<char[]> sink(new char[4096]);
  absl::Time deadline = absl::Now() + kLingerTime;
  size_t drained = 0;
  while (drained < kLingerBytes) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    int n = co_await Recv(s.ring, s.client_fd, sink.get(), 4096, left);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

}  // namespace

Detached RunSession(SessionEnv& worker, UniqueFd client, int listener_index) {
  auto s = std::make_unique<SessionState>(worker, client.get(), listener_index);
  s->rec.start = absl::Now();
  s->live.client_fd = client.get();
  worker.Register(&s->live);
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  if (getpeername(client.get(), reinterpret_cast<sockaddr*>(&peer),
                  &peer_len) == 0) {
    s->rec.client = SocketAddress::FromSockaddr(
                        reinterpret_cast<sockaddr*>(&peer), peer_len)
                        .ToString();
  }
  // TCP_NODELAY comes from the listening socket (OpenListener).
  s->trusted_client = peer_len > 0 && s->snap->trusted_networks.Contains(
                                          reinterpret_cast<sockaddr*>(&peer));

  bool tls_ok = true;
  if (s->listener().tls == ListenerTls::kImplicit) {
    tls_ok = co_await StartClientTls(*s);
  }
  if (tls_ok && co_await Authorize(*s)) {
    co_await Forward(*s);
  } else {
    co_await LingerClose(*s);
  }

  worker.Log(FormatSessionLog(s->rec, absl::Now()));
  worker.Unregister(&s->live);
  // `client` and the backend close here: no QUIT is ever sent for the
  // client, so a vanished client's DELE marks are discarded.
}

}  // namespace popgate
