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

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "auth/password_scheme.h"
#include "backend/backend_login.h"
#include "backend/backend_pick.h"
#include "backend/maildrop_guard.h"
#include "base/wipe.h"
#include "forward/forward_copy.h"
#include "forward/forwarder.h"
#include "forward/read_line.h"
#include "forward/tls_stream.h"
#include "pop3/line_reader.h"
#include "pop3/line_safety.h"
#include "pop3/pop3_command.h"
#include "pop3/pop3_replies.h"
#include "pop3/sasl.h"
#include "runtime/pool_await.h"
#include "runtime/stream.h"
#include "session/admission.h"
#include "session/backend_reply.h"
#include "session/front_proxy.h"
#include "session/login_cache.h"
#include "session/login_guard.h"
#include "session/login_timing.h"
#include "session/sasl_exchange.h"
#include "session/session_env.h"
#include "session/session_log.h"
#include "session/session_metrics.h"
#include "session/session_state.h"
#include "tls/tls_engine.h"

namespace popgate {
namespace {

// Closing before login: how long, and how much, to drain from the client.
constexpr absl::Duration kLingerTime = absl::Seconds(2);
constexpr size_t kLingerBytes = 256 * 1024;
// Longest username kept for the log when it did not even canonicalise.
constexpr size_t kMaxLoggedUser = 64;

// XPOPGATE-LOOP's answers (pop3/pop3_replies.h has the POP3 replies).
constexpr std::string_view kLoopChainOk = "+OK\r\n";
constexpr std::string_view kLoopChainBad = "-ERR Malformed XPOPGATE-LOOP\r\n";

// Our CAPA's IMPLEMENTATION line names this process's loop token (see
// LoopGuard in backend_login.h), so that a popgate logging in to us can
// tell.
const std::string& ImplementationLine() {
  static const std::string line =
      absl::StrCat("IMPLEMENTATION popgate ", std::string(kLoopTokenTag),
                   ProcessLoopToken(), "\r\n");
  return line;
}

const std::string& LoopReplyLine() {
  static const std::string line = absl::StrCat(std::string(kLoopReply), "\r\n");
  return line;
}

// Replaces the session's client stream with TLS over the same socket and
// runs the handshake. False (with rec.result set) if it failed.
Task<bool> StartClientTls(SessionState& s) {
  const std::shared_ptr<const tls::ServerContext>& ctx =
      s.snap->listener_tls[s.listener_index];
  absl::StatusOr<std::unique_ptr<tls::TlsEngine>> engine =
      tls::TlsEngine::NewServer(ctx);
  if (!engine.ok()) {
    s.rec.result = SessionResult::kTlsError;
    s.rec.detail = std::string(engine.status().message());
    co_return false;
  }
  auto stream = std::make_unique<TlsStream>(s.ring, s.worker.buffers(),
                                            s.client_fd, *std::move(engine));
  // The handshake is part of the login: the deadline bounds it too.
  int rc = co_await stream->Handshake(
      PreLoginTimeout(s.snap->config.tls.handshake_timeout, s.login_deadline));
  if (rc < 0) {
    if (rc == -EPROTO) {
      s.rec.result = SessionResult::kTlsHandshakeFailed;
      s.rec.detail = stream->engine().error();
    } else if (rc == -ECANCELED) {
      s.rec.result = s.PastLoginDeadline()
                         ? SessionResult::kLoginTimeout
                         : SessionResult::kTlsHandshakeTimeout;
    } else {
      s.rec.result = SessionResult::kClientClosed;
    }
    co_return false;
  }
  tls::TlsEngine& e = stream->engine();
  s.rec.tls = std::string(e.version());
  s.tls_cipher = e.cipher();
  s.rec.tls_resumed = e.resumed();
  s.rec.sni = std::string(e.sni());
  s.sni_tenant = std::string(e.sni_tenant());
  s.client = std::move(stream);
  s.tls_active = true;
  co_return true;
}

// Before login the tenant is known only from the TLS name or the
// listener's default: its `capabilities`, else the defaults.
std::string CapaReply(const SessionState& s) {
  static const TenantConfig kDefaults;
  std::string capa(replies::kCapaHead);
  if (s.PlaintextLoginAllowed()) {
    capa += replies::kCapaUser;
    capa += kSaslCapa;
  }
  if (s.listener().tls == ListenerTls::kStartTls && !s.tls_active) {
    capa += replies::kCapaStls;
  }
  std::string_view tenant_name = s.sni_tenant;
  if (tenant_name.empty()) {
    tenant_name = s.snap->listener_default_tenant[s.listener_index];
  }
  const int tenant =
      tenant_name.empty() ? -1 : s.snap->table.FindTenant(tenant_name);
  const std::vector<std::string>& caps =
      tenant >= 0 ? s.snap->config.tenants[tenant].capabilities
                  : kDefaults.capabilities;
  for (const std::string& c : caps) absl::StrAppend(&capa, c, "\r\n");
  capa += ImplementationLine();
  capa += ".\r\n";
  return capa;
}

enum class PassOutcome {
  kLoggedIn,
  kFailed,     // a failed login; the reply went out at the failure deadline
  kRetryable,  // a refusal that is not a failed login ([IN-USE]...), relayed
  kEnded,      // the session ends; its last reply has been sent
  kClientGone,
};

// What LogInThroughPool decided: the login is over (`done`), or it failed
// as a wrong password does, answered with `failure_reply` at the failure
// deadline.
struct PoolLogin {
  std::optional<PassOutcome> done;
  std::string failure_reply;
};

// Ends the login attempt with `reply` and `result` (the caller has set
// s.rec.detail); the session ends unless the refusal is one the client may
// retry in this session. Callers pass only named values: GCC 12 mishandles
// temporaries in a co_await's arguments (a use after free was seen with a
// conditional expression building a std::string argument).
Task<PoolLogin> EndLogin(SessionState& s, SessionResult result,
                         std::string_view reply, bool retryable) {
  s.rec.result = result;
  PoolLogin out;
  const int rc = co_await s.client->WriteAll(reply, s.ClientTimeout());
  if (retryable) {
    s.temp_refusal = result;
    out.done = rc < 0 ? PassOutcome::kClientGone : PassOutcome::kRetryable;
  } else {
    out.done = PassOutcome::kEnded;
  }
  co_return out;
}

// For the session log: how the backend learned who the client is.
std::string IdentityName(ClientIdentity mode, const BackendLoginResult& r) {
  if (!r.identity_sent) return "";
  switch (mode) {
    case ClientIdentity::kProxyV2:
      return "proxy-v2";
    case ClientIdentity::kXclient:
      return "xclient";
    case ClientIdentity::kNone:
      break;
  }
  return "";
}

// What the backend is told about the client (the tenant's
// client_identity): the client's address (the socket's peer, or what the
// front balancer's PROXY header said) and what it connected to.
BackendIdentity IdentityFor(const SessionState& s, const TenantConfig& t) {
  BackendIdentity id;
  id.mode = t.client_identity;
  if (id.mode == ClientIdentity::kNone) return id;
  id.client = s.peer;
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (s.front_dst) {
    id.local = *s.front_dst;
  } else if (getsockname(s.client_fd, reinterpret_cast<sockaddr*>(&local),
                         &len) == 0) {
    id.local =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&local), len);
  }
  id.session_id = s.rec.session_id;
  id.tls_version = s.rec.tls;
  id.tls_cipher = std::string(s.tls_cipher);
  id.sni = s.rec.sni;
  id.hops = 1 + static_cast<int>(s.loop_upstream.size());
  return id;
}

// Chooses the user's backend in their rendezvous order (health, operator
// state, max_connections, the maildrop guard; backend/backend_pick.h) and
// logs in there. Under failover = "next" a backend that cannot be reached
// is passed over for the next one at once, as long as no credentials went
// to it (after PASS it may have opened the maildrop).
// `user_key`: the user's ThrottleUserKey, which the session limits count
// under too.
Task<PoolLogin> LogInThroughPool(SessionState& s, const routing::Route& route,
                                 std::string_view user_key,
                                 std::string& password) {
  const Snapshot& snap = *s.snap;
  const ServerConfig& cfg = snap.config.server;
  const size_t t = route.tenant_index;
  const TenantConfig& tenant = snap.config.tenants[t];
  const std::vector<routing::BackendSpec>& specs = tenant.spec.backends;
  const std::vector<std::shared_ptr<BackendHealth>>& health = snap.health[t];

  // The tenant's and the user's session limits (admission.h), before any
  // backend sees the login.
  const SessionRefusal refusal = co_await AdmitSession(s, t, user_key);
  if (refusal.result != SessionResult::kOk) {
    const SessionResult result = refusal.result;
    const std::string_view reply = refusal.reply;
    // [IN-USE] may be retried in this session; the others end it.
    const bool retryable = result == SessionResult::kUserSessionsFull;
    co_return co_await EndLogin(s, result, reply, retryable);
  }

  // Under "next" one user's sessions could land on two backends; the guard
  // pins a user with open sessions to the backend they are on.
  absl::InlinedVector<uint32_t, 8> ranked = route.ranked;
  Failover failover = tenant.failover;
  std::string guard_user;
  if (failover == Failover::kNext) {
    guard_user = tenant.spec.name;
    guard_user.push_back('\0');  // tenant names cannot hold a NUL
    guard_user += route.user.full;
    const std::string current = MaildropGuard::Process().Current(guard_user);
    if (!current.empty()) {
      auto on =
          std::find_if(route.ranked.begin(), route.ranked.end(),
                       [&](uint32_t i) { return specs[i].address == current; });
      if (on == route.ranked.end()) {
        // A reload removed the backend the user's sessions are on.
        s.rec.detail =
            absl::StrCat("open on ", current, ", no longer configured");
        co_return co_await EndLogin(s, SessionResult::kInUse,
                                    replies::kMaildropInUse, true);
      }
      ranked.assign(1, *on);
      failover = Failover::kNone;  // only there
    }
  }
  const bool pinned = ranked.size() == 1 && route.ranked.size() > 1;

  BackendTlsParams tls;
  tls.mode = tenant.backend_tls.mode;
  tls.ctx = snap.backend_tls[t];
  tls.buffers = &s.worker.buffers();
  tls.handshake_timeout = snap.config.tls.handshake_timeout;
  const BackendIdentity identity = IdentityFor(s, tenant);
  std::string passed_over;  // backends that failed this login, for the log
  size_t first = 0;
  while (true) {
    const BackendPick pick =
        PickBackend(ranked, failover, specs, health, absl::Now(), first);
    if (pick.index < 0) {
      if (pinned) {
        s.rec.detail =
            absl::StrCat("open on ", specs[ranked[0]].address, ", which is ",
                         std::string(PickRefusalName(pick.refusal)));
        co_return co_await EndLogin(s, SessionResult::kInUse,
                                    replies::kMaildropInUse, true);
      }
      if (first > 0) {
        // Every usable backend was tried and failed.
        s.rec.detail = std::move(passed_over);
        co_return co_await EndLogin(s, SessionResult::kBackendUnavailable,
                                    replies::kBackendUnavailable, false);
      }
      s.rec.backend = specs[ranked[0]].address;
      s.rec.detail = absl::StrCat(
          "backend ", specs[ranked[0]].address, " ",
          std::string(PickRefusalName(pick.refusal)),
          failover == Failover::kNext ? ", and no other usable" : "");
      const SessionResult result = pick.refusal == PickRefusal::kFull
                                       ? SessionResult::kBackendFull
                                       : SessionResult::kNoBackend;
      co_return co_await EndLogin(s, result, replies::kBackendUnavailable,
                                  false);
    }
    const uint32_t b = static_cast<uint32_t>(pick.index);
    // Its place in the user's order (counting those tried before).
    const size_t position = static_cast<size_t>(pick.skipped);
    s.hold.health = health[b];
    if (!guard_user.empty()) {
      if (!MaildropGuard::Process().Claim(guard_user, specs[b].address)) {
        // Another session of the user won a race for another backend.
        s.hold.Release();
        s.rec.detail = "open on another backend";
        co_return co_await EndLogin(s, SessionResult::kInUse,
                                    replies::kMaildropInUse, true);
      }
      s.hold.guard_user = guard_user;
      s.hold.guard_backend = specs[b].address;
    }
    s.rec.backend = specs[b].address;
    s.rec.failovers = static_cast<int>(position);
    tls.name = snap.backend_tls_names[t][b];

    BackendLoginParams lp;
    lp.addr = &snap.backend_addrs[t][b];
    lp.creds.mode = tenant.backend_login;
    lp.creds.user = route.backend_user;
    lp.creds.password = password;
    lp.creds.method = tenant.master_login;
    lp.creds.master_user = tenant.master_user;
    lp.creds.separator = tenant.master_separator;
    if (tenant.backend_login == BackendLoginMode::kMaster) {
      lp.creds.password = snap.master_password[t]->value();
    }
    lp.connect_timeout = cfg.backend_timeout;
    lp.auth_timeout = cfg.backend_auth_timeout;
    lp.tls = &tls;
    lp.loop = LoopGuard{ProcessLoopToken(), s.loop_upstream};
    lp.identity = identity;
    lp.fd_slot = &s.live.backend_fd;
    if (cfg.backend_pipelining) lp.capa_memo = &health[b]->capa_memo();
    BackendLoginResult login = co_await LoginToBackend(s.ring, lp);
    // Anything but a failed connect or greeting says the backend serves.
    if (std::optional<std::string> line = health[b]->RecordLogin(
            !login.health_failure, login.error, absl::Now())) {
      s.worker.Log(*std::move(line));
    }
    if (login.outcome != BackendLoginResult::Outcome::kOk) {
      s.live.backend_fd = -1;
      login.fd.Reset();
      s.hold.Release();
    }
    switch (login.outcome) {
      case BackendLoginResult::Outcome::kOk: {
        s.backend = std::move(login.fd);
        s.backend_stream = std::move(login.stream);
        s.rec.backend_tls = std::string(s.backend_stream->TlsVersion());
        s.rec.identity = IdentityName(tenant.client_identity, login);
        s.backend_reply = std::move(login.reply);
        s.backend_leftover = std::move(login.leftover);
        s.rec.detail.clear();
        s.live.backend = health[b].get();
        PoolLogin out;
        out.done = PassOutcome::kLoggedIn;
        co_return out;
      }
      case BackendLoginResult::Outcome::kUnavailable:
        if (failover == Failover::kNext && !login.credentials_sent) {
          absl::StrAppend(&passed_over, passed_over.empty() ? "" : "; ",
                          specs[b].address, ": ", login.error);
          first = position + 1;
          continue;  // the next backend in the user's order
        }
        // `backend` names the one tried last; the detail says why (after
        // those passed over before it, if any).
        if (passed_over.empty()) {
          s.rec.detail = std::move(login.error);
        } else {
          s.rec.detail = absl::StrCat(passed_over, "; ", specs[b].address, ": ",
                                      login.error);
        }
        co_return co_await EndLogin(s, SessionResult::kBackendUnavailable,
                                    replies::kBackendUnavailable, false);
      case BackendLoginResult::Outcome::kLoop:
        // A configuration error, not the client's: at once, not counted.
        s.rec.detail = std::move(login.error);
        co_return co_await EndLogin(s, SessionResult::kLoop, LoopReplyLine(),
                                    false);
      case BackendLoginResult::Outcome::kRefused: {
        // Closed without QUIT: nothing was opened on the backend.
        std::string relayed = RefusalReply(login.reply);
        if (IsTemporaryRefusal(login.reply)) {
          // The mailbox is busy or the backend is: nothing to do with the
          // credentials. Relay at once; it is no failed login.
          s.rec.detail = LoggableReply(login.reply);
          co_return co_await EndLogin(s, SessionResult::kBackendRefused,
                                      relayed, true);
        }
        if (!login.error.empty()) s.rec.detail = std::move(login.error);
        PoolLogin out;
        out.failure_reply = std::move(relayed);
        co_return out;
      }
    }
  }
}

// USER/PASS pair (or decoded SASL credentials): resolve the tenant, check
// the password (on the hash pool for file tenants), log in to the backend.
//
// Timing (session/login_timing.h): every failed login is answered at one
// deadline fixed when the credentials arrived. The delay is a timer on the
// ring: it holds no thread and slows no other session.
Task<PassOutcome> HandlePass(SessionState& s, std::string_view raw_user,
                             std::string& password) {
  const Snapshot& snap = *s.snap;
  const ServerConfig& cfg = snap.config.server;
  const absl::Time pass_at = absl::Now();
  // The login's answer time for the metrics, whichever way it ends.
  struct AnsweredAt {
    SessionRecord& rec;
    ~AnsweredAt() { rec.login_answered = absl::Now(); }
  } answered{s.rec};
  s.rec.login_at = pass_at;
  s.rec.login_failure = LoginFailure::kNone;
  // No domain in the username: the TLS name picks the tenant, else the
  // listener's default.
  std::string_view default_tenant = s.sni_tenant;
  if (default_tenant.empty()) {
    default_tenant = snap.listener_default_tenant[s.listener_index];
  }
  s.rec.user = std::string(raw_user.substr(0, kMaxLoggedUser));

  std::string_view failure_reply = replies::kAuthFailed;
  std::string failure_reply_storage;  // a backend's refusal, rewritten
  bool ok = false;
  // Decoded SASL credentials may hold CR, LF or NUL, and would go into our
  // USER/PASS lines to the backend: such credentials are a failed login,
  // and are never sent anywhere.
  const bool usable = CheckLineArgument("USER", raw_user).ok() &&
                      CheckLineArgument("PASS", password).ok();
  absl::StatusOr<routing::Route> route =
      usable ? snap.table.Resolve(raw_user, default_tenant)
             : absl::StatusOr<routing::Route>(
                   absl::InvalidArgumentError("unusable credentials"));
  if (!usable) {
    failure_reply = replies::kUnusableCredentials;
    s.rec.detail = "username or password with CR, LF or NUL, or too long";
    s.rec.login_failure = LoginFailure::kBadCredentials;
  }
  // Brute-force defence (login_guard.h): a blocked address or user is
  // refused before any hash runs; the failure delay grows with the
  // failures already counted.
  const std::string throttle_user =
      route.ok()
          ? ThrottleUserKey(snap.config.tenants[route->tenant_index].spec.name,
                            route->user.full)
          : std::string();
  const LoginGate gate = co_await CheckLogin(s, throttle_user);
  if (gate.refusal != SessionResult::kOk) {
    s.rec.result = gate.refusal;
    // A blocked login is answered no sooner than a failed one would be
    // (and never sooner than refusal_delay): no hash runs, but the
    // attacker's connection waits all the same, and the answer's timing
    // does not tell a block from a wrong password.
    if (gate.refusal == SessionResult::kBlocked) {
      const absl::Duration wait =
          std::max(gate.failure_delay, snap.config.limits.refusal_delay) -
          (absl::Now() - pass_at);
      if (wait > absl::ZeroDuration()) co_await Sleep(s.ring, wait);
    }
    co_await s.client->WriteAll(gate.reply, s.ClientTimeout());
    co_return PassOutcome::kEnded;
  }
  FailureDeadline fail_at(pass_at, gate.failure_delay);
  if (gate.failure_delay > cfg.auth_failure_delay) s.rec.throttled = true;
  if (usable && !route.ok()) s.rec.login_failure = LoginFailure::kUnknownUser;
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
      // A verdict cached for this very user and password (an HMAC of them;
      // login_cache.h) costs no hash; either way the reply goes out when an
      // uncached one would.
      std::optional<bool> cached =
          entry == nullptr ? std::nullopt
                           : CachedVerdict(snap, route->tenant_index,
                                           route->user.full, password);
      std::optional<Verification> v;
      if (cached) {
        s.rec.auth_cache_hit = true;
        v = Verification{*cached, absl::ZeroDuration()};
      } else {
        v = co_await TryRunOnPool(
            s.worker.hash_pool(), s.ring,
            static_cast<size_t>(std::max(cfg.auth_queue_limit, 0)),
            [entry, &password]() -> Verification {
              const absl::Time t0 = absl::Now();
              bool good = false;
              if (entry == nullptr) {
                auth::BurnVerificationTime();
              } else {
                good =
                    auth::VerifyPassword(entry->scheme, entry->hash, password);
              }
              return Verification{good, absl::Now() - t0};
            });
      }
      if (!v) {
        // The pool's queue is full: a flood. Say so at once and close; this
        // is no failed login (HashPool::rejected() counts it).
        s.rec.result = SessionResult::kOverloaded;
        s.rec.detail = "hash pool queue full";
        co_await s.client->WriteAll(replies::kOverloaded, s.ClientTimeout());
        co_return PassOutcome::kEnded;
      }
      if (entry == nullptr) {
        s.rec.login_failure = LoginFailure::kUnknownUser;
      } else if (!v->ok) {
        s.rec.login_failure = LoginFailure::kBadPassword;
      }
      if (entry != nullptr && cached) {
        ok = v->ok;
        fail_at.NoSoonerThan(
            ProcessVerificationTimes().Typical(tenant.spec.name));
      } else if (entry != nullptr) {
        ok = v->ok;
        RememberVerdict(snap, route->tenant_index, route->user.full, password,
                        ok);
        if (ProcessVerificationTimes().Record(tenant.spec.name, v->took,
                                              cfg.auth_failure_delay)) {
          s.worker.Log(SlowVerificationWarning(
              tenant.spec.name, v->took, cfg.auth_failure_delay, absl::Now()));
        }
      } else {
        fail_at.NoSoonerThan(
            ProcessVerificationTimes().Typical(tenant.spec.name));
      }
    } else {
      ok = true;  // the backend's answer to PASS is the verdict
    }
    if (ok) {
      PoolLogin login =
          co_await LogInThroughPool(s, *route, throttle_user, password);
      // Not logged in: the session slots AdmitSession took go again.
      if (login.done != PassOutcome::kLoggedIn) LoginFailed(s);
      if (login.done) co_return *login.done;
      failure_reply_storage = std::move(login.failure_reply);
      failure_reply = failure_reply_storage;
      s.rec.login_failure = LoginFailure::kBackendRejected;
      ok = false;
    }
  }
  ++s.rec.auth_failures;
  co_await RecordFailedLogin(s, throttle_user);
  const absl::Duration wait = fail_at.at() - absl::Now();
  if (wait > absl::ZeroDuration()) co_await Sleep(s.ring, wait);
  if (s.rec.auth_failures >= cfg.max_auth_failures) {
    s.rec.result = SessionResult::kTooManyAuthFailures;
    co_await s.client->WriteAll(replies::kTooManyFailures, s.ClientTimeout());
    co_return PassOutcome::kClientGone;
  }
  s.rec.result = SessionResult::kAuthFailed;
  if (co_await s.client->WriteAll(failure_reply, s.ClientTimeout()) < 0) {
    co_return PassOutcome::kClientGone;
  }
  co_return PassOutcome::kFailed;
}

// XPOPGATE-LOOP's argument: the tokens of the popgates a client came
// through (see LoopGuard in backend_login.h). False if malformed.
bool ParseLoopChain(std::string_view arg, std::vector<std::string>& out) {
  std::vector<std::string> chain;
  while (!arg.empty()) {
    size_t sp = arg.find(' ');
    std::string_view t = arg.substr(0, sp);
    arg =
        sp == std::string_view::npos ? std::string_view() : arg.substr(sp + 1);
    if (t.empty()) continue;
    if (!IsLoopToken(t) || chain.size() >= kMaxPopgateHops) return false;
    chain.emplace_back(t);
  }
  if (chain.empty()) return false;
  out = std::move(chain);
  return true;
}

// The AUTHORIZATION state. True once logged in to the backend.
Task<bool> Authorize(SessionState& s) {
  const ServerConfig& cfg = s.snap->config.server;
  const absl::Duration idle = cfg.preauth_idle_timeout;
  std::string greeting = absl::StrCat("+OK ", cfg.greeting, "\r\n");
  if (co_await s.client->WriteAll(greeting, s.ClientTimeout()) < 0) {
    co_return false;
  }

  std::string user;
  int invalid = 0;
  int overlong = 0;
  int commands = 0;
  std::string_view line;
  // Sends the last reply of a session that ends here.
  auto end_with = [&s](SessionResult result,
                       std::string_view reply) -> Task<bool> {
    s.rec.result = result;
    co_await s.client->WriteAll(reply, s.ClientTimeout());
    co_return false;
  };
  while (true) {
    LineStatus st =
        co_await ReadLine(*s.client, *s.reader, line, idle, s.login_deadline);
    if (st == LineStatus::kTimeout) {
      if (s.PastLoginDeadline()) {
        co_return co_await end_with(SessionResult::kLoginTimeout,
                                    replies::kLoginTimeout);
      }
      co_return co_await end_with(SessionResult::kIdleTimeout,
                                  replies::kIdleTimeout);
    }
    if (st == LineStatus::kEof || st == LineStatus::kError) {
      s.rec.result = s.rec.auth_failures > 0 ? SessionResult::kAuthFailed
                     : s.temp_refusal        ? *s.temp_refusal
                                             : SessionResult::kClientClosed;
      co_return false;
    }
    if (st == LineStatus::kEndless) {
      co_return co_await end_with(SessionResult::kLineTooLong,
                                  replies::kEndlessLine);
    }
    // Every line counts, valid or not, CAPA and USER included: a client
    // that never logs in is bounded in what it can make us do.
    if (++commands > cfg.max_preauth_commands) {
      co_return co_await end_with(SessionResult::kTooManyCommands,
                                  replies::kTooManyCommands);
    }
    std::string_view reply;
    std::string capa;
    if (st == LineStatus::kTooLong) {
      reply = replies::kLineTooLong;
      if (++overlong >= kMaxOverlongLines) {
        co_return co_await end_with(SessionResult::kProtocolError,
                                    replies::kTooManyErrors);
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
          s.rec.mechanism = "USER";
          PassOutcome outcome = co_await HandlePass(s, user, password);
          Wipe(password);
          user.clear();
          if (outcome == PassOutcome::kLoggedIn) co_return true;
          if (outcome == PassOutcome::kFailed ||
              outcome == PassOutcome::kRetryable) {
            continue;  // the reply has been sent
          }
          co_return false;
        }
        case Verb::kQuit:
          co_return co_await end_with(SessionResult::kQuit, replies::kBye);
        case Verb::kStls:
          if (s.tls_active) {
            reply = replies::kStlsAgain;
            break;
          }
          if (s.listener().tls != ListenerTls::kStartTls) {
            reply = replies::kStlsUnavailable;
            break;
          }
          if (co_await s.client->WriteAll(replies::kStlsGo, s.ClientTimeout()) <
              0) {
            s.rec.result = SessionResult::kClientClosed;
            co_return false;
          }
          // Anything pipelined behind STLS arrived in plaintext and could
          // have been injected by a man in the middle (CVE-2011-0411): drop
          // it, and forget the USER (and any XPOPGATE-LOOP) given before TLS.
          s.reader = SessionState::NewClientReader();
          user.clear();
          s.loop_upstream.clear();
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
          const PreLoginClient client{*s.client, *s.reader, idle,
                                      s.login_deadline};
          SaslStatus st = co_await SaslExchange(client, *mech, initial, creds,
                                                s.rec.result);
          if (st == SaslStatus::kEnded) co_return false;
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
          s.rec.mechanism = *mech == SaslMechanism::kPlain ? "PLAIN" : "LOGIN";
          PassOutcome outcome =
              co_await HandlePass(s, creds.user, creds.password);
          Wipe(creds.password);
          if (outcome == PassOutcome::kLoggedIn) co_return true;
          if (outcome == PassOutcome::kFailed ||
              outcome == PassOutcome::kRetryable) {
            continue;
          }
          co_return false;
        }
        case Verb::kNoop:
        case Verb::kUnknown:
          if (cmd.verb == Verb::kUnknown &&
              cmd.keyword.size() == kLoopCommand.size() &&
              StartsWithIgnoreCase(cmd.keyword, kLoopCommand)) {
            // Another popgate tells us who it is and who came before it.
            if (ParseLoopChain(cmd.arg, s.loop_upstream)) {
              reply = kLoopChainOk;
            } else {
              reply = kLoopChainBad;
              ++invalid;
            }
            break;
          }
          reply = replies::kUnknownCommand;
          ++invalid;
          break;
      }
    }
    if (invalid >= kMaxInvalidCommands) {
      co_return co_await end_with(SessionResult::kProtocolError,
                                  replies::kTooManyErrors);
    }
    if (co_await s.client->WriteAll(reply, s.ClientTimeout()) < 0) {
      s.rec.result = SessionResult::kClientClosed;
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
  if (!s.backend_stream->IsPlainSocket()) {
    s.client->ForgetSecrets();
    s.rec.ktls_fallback = "backend uses TLS";
    return false;
  }
  absl::Status st = s.client->HandOffToKernel();
  if (st.ok()) return true;
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    s.rec.ktls_fallback = std::string(st.message());
    return false;
  }
  return st;
}

// After the backend's +OK: relays it, delivers what the client pipelined
// behind PASS (in order, before any later byte), fills `fwd`, drops the
// pre-login state and hands the client's TLS to the kernel where it can.
// Whether forwarding may start (else s.rec.result says why not); `ktls`:
// the client's TLS is now the kernel's. A coroutine of its own so that
// its buffers and awaiters are not in Forward's frame, which every idle
// session holds.
Task<bool> HandOver(SessionState& s, ForwardOptions& fwd, bool& ktls) {
  const absl::Duration timeout = s.snap->config.server.backend_timeout;
  std::string ok = absl::StrCat(s.backend_reply, "\r\n", s.backend_leftover);
  if (co_await s.client->WriteAll(ok, timeout) < 0) {
    s.rec.result = SessionResult::kClientClosed;
    co_return false;
  }
  std::string pipelined(s.reader->Pending());
  fwd.client_lines.Feed(pipelined);  // a QUIT among them counts
  if (!pipelined.empty()) {
    if (co_await s.backend_stream->WriteAll(pipelined, timeout) < 0) {
      s.rec.result = SessionResult::kBackendError;
      co_return false;
    }
    s.rec.bytes_in += pipelined.size();
    Wipe(pipelined);
  }
  // An idle forwarded session should cost little: drop pre-login state.
  fwd.idle_timeout = s.snap->config.server.forward_idle_timeout;
  fwd.client_drain_timeout = s.snap->config.server.client_drain_timeout;
  fwd.socket_buffer = s.snap->config.server.forward_socket_buffer;
  const bool use_ktls = s.snap->use_ktls;
  s.reader.reset();
  s.snap.reset();
  std::string().swap(s.backend_reply);
  std::string().swap(s.backend_leftover);
  ktls = false;
  if (use_ktls && !s.client->IsPlainSocket()) {
    absl::StatusOr<bool> handed = HandClientTlsToKernel(s);
    if (!handed.ok()) {
      s.rec.ktls_fallback = std::string(handed.status().message());
      s.rec.result = SessionResult::kKtlsError;
      co_return false;
    }
    ktls = *handed;
  }
  co_return true;
}

// Forwards the session until either side ends it.
Task<void> Forward(SessionState& s) {
  ForwardOptions fwd;
  bool client_ktls = false;
  if (!co_await HandOver(s, fwd, client_ktls)) co_return;
  ForwardStats stats;
  if ((s.client->IsPlainSocket() || client_ktls) &&
      s.backend_stream->IsPlainSocket()) {
    s.rec.forwarding = client_ktls ? "ktls-splice" : "splice";
    stats =
        co_await ForwardSplice(s.ring, s.worker.pipes(), &s.worker.buffers(),
                               s.client_fd, s.backend.get(), fwd, client_ktls);
  } else {
    // TLS that stays in user space (no kernel TLS here, or it could not
    // take this session): bytes are decrypted and re-encrypted here.
    s.rec.forwarding = "copy";
    stats = co_await ForwardCopy(s.ring, *s.client, *s.backend_stream, fwd);
  }
  s.rec.bytes_in += stats.client_to_backend;
  s.rec.bytes_out += stats.backend_to_client;
  s.rec.result = ResultOfForwardEnd(stats.end);
}

// Closing a socket with unread input makes the kernel send a reset, which
// can destroy our last reply (say "-ERR Too many invalid commands") before
// the client reads it. So: say goodbye at the TLS level, stop writing, and
// read and drop what the client still sends, bounded in time and bytes,
// before the socket closes.
Task<void> LingerClose(SessionState& s) {
  co_await s.client->Close(kLingerTime);
  s.client->ShutdownWrite();
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

// The client's address, from the socket (a PROXY header may replace it
// later), and whether it is trusted. Not in RunSession's body: the
// sockaddr would sit in its frame for the whole session.
void NotePeer(SessionState& s) {
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  if (getpeername(s.client_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) ==
      0) {
    s.peer = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer),
                                         peer_len);
    s.rec.client = s.peer.ToString();
  }
  // TCP_NODELAY comes from the listening socket (OpenListener).
  s.trusted_client = peer_len > 0 && s.snap->trusted_networks.Contains(
                                         reinterpret_cast<sockaddr*>(&peer));
}

}  // namespace

Detached RunSession(SessionEnv& worker, UniqueFd client, int listener_index) {
  auto s = std::make_unique<SessionState>(worker, client.get(), listener_index);
  s->rec.start = absl::Now();
  s->rec.session_id = worker.NewSessionId();
  s->rec.listener = s->listener().address;
  s->live.client_fd = client.get();
  s->live.record = &s->rec;  // the admin API's view (GET /sessions)
  worker.Register(&s->live);
  NotePeer(*s);

  // The front balancer's PROXY header comes before anything else (the TLS
  // handshake included); then the limits for the address it names.
  bool admitted = true;
  if (s->listener().proxy_protocol) admitted = co_await ReadFrontProxy(*s);
  // After the PROXY header, so that the line names the real client.
  if (s->snap->config.log.session_start) {
    worker.AppendLog([&](std::string* out) {
      AppendSessionStartLog(out, s->rec, absl::Now());
    });
  }
  if (admitted) admitted = co_await AdmitConnection(*s);

  bool tls_ok = admitted;
  if (tls_ok && s->listener().tls == ListenerTls::kImplicit) {
    tls_ok = co_await StartClientTls(*s);
  }
  if (tls_ok && co_await Authorize(*s)) {
    co_await Forward(*s);
  } else if (admitted) {
    co_await LingerClose(*s);
  }
  // A refused connection closes at once: lingering would let a flood hold
  // its sockets longer.

  if (s->live.cut_backend_down) {
    s->rec.result = SessionResult::kBackendCut;
    s->rec.detail = "the backend's state was set to \"down\"";
  }
  const absl::Time end = absl::Now();
  worker.AppendLog(
      [&](std::string* out) { AppendSessionLog(out, s->rec, end); });
  // The metrics from the same record (session_metrics.h); the snapshot
  // may be gone (dropped when forwarding started): the record keeps the
  // listener's address.
  worker.RecordSessionEnd(SessionEndFrom(s->rec, s->rec.listener, end));
  worker.Unregister(&s->live);
  // `client` and the backend close here: no QUIT is ever sent for the
  // client, so a vanished client's DELE marks are discarded.
}

}  // namespace popgate
