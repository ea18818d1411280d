// A session reads like the protocol: greet, answer AUTHORIZATION-state
// commands until a USER/PASS pair authenticates, log in to the user's
// backend, relay its +OK, hand over whatever the client pipelined, then
// splice both ways until both sides are done.
#include "proxy/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "auth/password_scheme.h"
#include "proxy/backend_login.h"
#include "proxy/forwarder.h"
#include "proxy/line_reader.h"
#include "proxy/pool_await.h"
#include "proxy/pop3_command.h"
#include "proxy/pop3_replies.h"
#include "proxy/read_line.h"
#include "proxy/session_log.h"
#include "proxy/stream.h"
#include "proxy/worker.h"

namespace popgate {
namespace {

// A client sending garbage is closed after this many invalid commands, or
// after this many overlong lines (RFC 2449: "if it keeps coming").
constexpr int kMaxInvalidCommands = 20;
constexpr int kMaxOverlongLines = 3;
// Backends delay failed logins on purpose (Dovecot: 2 s), so their USER and
// PASS replies get longer than the connect/greeting timeout.
constexpr absl::Duration kBackendAuthTimeout = absl::Seconds(30);
// Longest username kept for the log when it did not even canonicalise.
constexpr size_t kMaxLoggedUser = 64;

struct SessionState {
  SessionState(Worker& w, int fd, int listener)
      : worker(w),
        ring(w.ring()),
        snap(w.snapshot()),
        listener_index(listener),
        client(w.ring(), fd),
        reader(std::make_unique<LineReader>()) {}

  Worker& worker;
  Ring& ring;
  std::shared_ptr<const Snapshot> snap;
  int listener_index;
  PlainStream client;
  std::unique_ptr<LineReader> reader;  // freed once forwarding starts
  SessionRecord rec;
  LiveSession live;
  UniqueFd backend;
  std::string backend_reply;     // the backend's +OK to PASS
  std::string backend_leftover;  // anything it sent after that
};

void Wipe(std::string& s) {
  explicit_bzero(s.data(), s.size());
  s.clear();
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
  std::string_view default_tenant;
  if (s.listener_index >= 0 &&
      static_cast<size_t>(s.listener_index) <
          snap.listener_default_tenant.size()) {
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
      ok = co_await RunOnPool(s.worker.hash_pool(), s.ring,
                              [entry, &password]() -> bool {
                                if (entry == nullptr) {
                                  auth::BurnVerificationTime();
                                  return false;
                                }
                                return auth::VerifyPassword(
                                    entry->scheme, entry->hash, password);
                              });
    } else {
      ok = true;  // the backend's answer to PASS is the verdict
    }
    if (ok) {
      const SocketAddress& addr =
          snap.backend_addrs[route->tenant_index][route->backend_index];
      s.rec.backend = tenant.spec.backends[route->backend_index].address;
      BackendLoginResult login = co_await LoginToBackend(
          s.ring, addr, route->backend_user, password, cfg.backend_timeout,
          kBackendAuthTimeout, &s.live.backend_fd);
      switch (login.outcome) {
        case BackendLoginResult::Outcome::kOk:
          s.backend = std::move(login.fd);
          s.backend_reply = std::move(login.reply);
          s.backend_leftover = std::move(login.leftover);
          co_return PassOutcome::kLoggedIn;
        case BackendLoginResult::Outcome::kUnavailable: {
          s.live.backend_fd = -1;
          login.fd.Reset();
          s.rec.result = absl::StrCat("backend_unavailable: ", login.error);
          co_await s.client.WriteAll(replies::kBackendUnavailable,
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
    co_await s.client.WriteAll(replies::kTooManyFailures,
                               cfg.preauth_idle_timeout);
    co_return PassOutcome::kClientGone;
  }
  s.rec.result = "auth_failed";
  if (co_await s.client.WriteAll(failure_reply, cfg.preauth_idle_timeout) <
      0) {
    co_return PassOutcome::kClientGone;
  }
  co_return PassOutcome::kFailed;
}

// The AUTHORIZATION state. True once logged in to the backend.
Task<bool> Authorize(SessionState& s) {
  const ServerConfig& cfg = s.snap->config.server;
  const absl::Duration idle = cfg.preauth_idle_timeout;
  std::string greeting = absl::StrCat("+OK ", cfg.greeting, "\r\n");
  if (co_await s.client.WriteAll(greeting, idle) < 0) co_return false;

  std::string user;
  int invalid = 0;
  int overlong = 0;
  std::string_view line;
  while (true) {
    LineStatus st = co_await ReadLine(s.client, *s.reader, line, idle);
    if (st == LineStatus::kTimeout) {
      s.rec.result = "idle_timeout";
      co_await s.client.WriteAll(replies::kIdleTimeout, idle);
      co_return false;
    }
    if (st == LineStatus::kEof || st == LineStatus::kError) {
      s.rec.result = s.rec.auth_failures > 0 ? "auth_failed" : "client_closed";
      co_return false;
    }
    std::string_view reply;
    if (st == LineStatus::kTooLong) {
      reply = replies::kLineTooLong;
      if (++overlong >= kMaxOverlongLines) {
        s.rec.result = "protocol_error";
        co_await s.client.WriteAll(replies::kTooManyErrors, idle);
        co_return false;
      }
    } else if (HasForbiddenBytes(line)) {
      reply = replies::kBadBytes;
      ++invalid;
    } else {
      Command cmd = ParseCommand(line);
      switch (cmd.verb) {
        case Verb::kCapa:
          reply = replies::kCapa;
          break;
        case Verb::kUser:
          if (cmd.arg.empty()) {
            reply = replies::kUserMissing;
            ++invalid;
          } else {
            user = std::string(cmd.arg);
            reply = replies::kUserOk;
          }
          break;
        case Verb::kPass: {
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
          co_await s.client.WriteAll(replies::kBye, idle);
          co_return false;
        case Verb::kStls:
          reply = replies::kStlsUnavailable;
          break;
        case Verb::kAuth:
          reply = replies::kAuthUnsupported;
          break;
        case Verb::kNoop:
        case Verb::kUnknown:
          reply = replies::kUnknownCommand;
          ++invalid;
          break;
      }
    }
    if (invalid >= kMaxInvalidCommands) {
      s.rec.result = "protocol_error";
      co_await s.client.WriteAll(replies::kTooManyErrors, idle);
      co_return false;
    }
    if (co_await s.client.WriteAll(reply, idle) < 0) {
      s.rec.result = "client_closed";
      co_return false;
    }
  }
}

// After the backend's +OK: relay it, deliver what the client pipelined
// behind PASS (in order, before any later byte), then splice.
Task<void> Forward(SessionState& s) {
  const absl::Duration timeout = s.snap->config.server.backend_timeout;
  std::string ok = absl::StrCat(s.backend_reply, "\r\n", s.backend_leftover);
  if (co_await s.client.WriteAll(ok, timeout) < 0) {
    s.rec.result = "client_closed";
    co_return;
  }
  std::string pipelined(s.reader->Pending());
  if (!pipelined.empty()) {
    PlainStream backend(s.ring, s.backend.get());
    if (co_await backend.WriteAll(pipelined, timeout) < 0) {
      s.rec.result = "backend_error";
      co_return;
    }
    s.rec.bytes_in += pipelined.size();
    Wipe(pipelined);
  }
  // An idle forwarded session should cost little: drop pre-login state.
  const absl::Duration idle = s.snap->config.server.forward_idle_timeout;
  s.reader.reset();
  s.snap.reset();
  std::string().swap(s.backend_reply);
  std::string().swap(s.backend_leftover);
  s.rec.forwarding = "splice";
  ForwardStats stats =
      co_await ForwardSplice(s.ring, s.worker.pipes(), s.client.fd(),
                             s.backend.get(), idle);
  s.rec.bytes_in += stats.client_to_backend;
  s.rec.bytes_out += stats.backend_to_client;
  s.rec.result = stats.end == "closed" ? "ok" : stats.end;
}

}  // namespace

Detached RunSession(Worker& worker, UniqueFd client, int listener_index) {
  auto s = std::make_unique<SessionState>(worker, client.get(), listener_index);
  s->rec.start = absl::Now();
  s->live.client_fd = client.get();
  worker.Register(&s->live);
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  if (getpeername(client.get(), reinterpret_cast<sockaddr*>(&peer),
                  &peer_len) == 0) {
    s->rec.client =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer),
                                    peer_len)
            .ToString();
  }
  int one = 1;
  setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  if (co_await Authorize(*s)) co_await Forward(*s);

  worker.Log(FormatSessionLog(s->rec, absl::Now()));
  worker.Unregister(&s->live);
  // `client` and the backend close here: no QUIT is ever sent for the
  // client, so a vanished client's DELE marks are discarded.
}

}  // namespace popgate
