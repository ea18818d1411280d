// Connection admission at accept and session admission before the backend
// login: the [limits] connection limits (auth/connection_limits.h, shared
// by every worker of the process), a tenant's max_sessions, and the user's
// max_sessions_per_user (the worker's limit store: shared across instances
// with Redis).
#include "session/admission.h"

#include <atomic>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "auth/connection_limits.h"
#include "net/address_group.h"
#include "pop3/pop3_replies.h"
#include "runtime/ring.h"
#include "session/session_state.h"
#include "session/snapshot.h"

namespace popgate {
namespace {

auth::ConnectionLimitSettings SettingsFor(const LimitsConfig& l) {
  auth::ConnectionLimitSettings s;
  s.max_connections = l.max_connections;
  s.max_per_address = l.max_connections_per_address;
  s.max_prelogin_per_address = l.max_prelogin_per_address;
  s.max_new_per_address_per_second = l.max_new_connections_per_address;
  return s;
}

struct Refusal {
  std::string_view reply;
  std::string_view setting;  // the session log's detail
};

Refusal RefusalFor(auth::ConnectionRefusal r) {
  switch (r) {
    case auth::ConnectionRefusal::kTotal:
      return {replies::kTooManyConnections, "max_connections"};
    case auth::ConnectionRefusal::kPerAddress:
      return {replies::kTooManyFromAddress, "max_connections_per_address"};
    case auth::ConnectionRefusal::kPreloginPerAddress:
      return {replies::kTooManyPreloginFromAddress, "max_prelogin_per_address"};
    case auth::ConnectionRefusal::kRate:
      return {replies::kConnectingTooFast, "max_new_connections_per_address"};
    case auth::ConnectionRefusal::kNone:
      break;
  }
  return {};
}

// Refused connections waiting out refusal_delay, in the whole process
// (every worker's): the bound on the descriptors they keep.
std::atomic<int> g_refusals_held{0};

// One held refusal, counted while it lives; `held()` false when the bound
// was reached (answer at once).
class HeldRefusal {
 public:
  explicit HeldRefusal(int max) {
    int n = g_refusals_held.load(std::memory_order_relaxed);
    while (n < max && !g_refusals_held.compare_exchange_weak(
                          n, n + 1, std::memory_order_relaxed)) {
    }
    held_ = n < max;
  }
  ~HeldRefusal() {
    if (held_) g_refusals_held.fetch_sub(1, std::memory_order_relaxed);
  }
  HeldRefusal(const HeldRefusal&) = delete;
  HeldRefusal& operator=(const HeldRefusal&) = delete;
  bool held() const { return held_; }

 private:
  bool held_ = false;
};

// The tenant and user slots of an earlier try in this session: a login
// that did not get through holds nothing (an attacker failing logins for
// a victim must not fill the victim's slots).
void ReleaseSessionSlots(AdmissionHold& h) {
  if (h.store != nullptr) {
    h.store->ReleaseUserSession(h.user, h.session_id);
    h.store = nullptr;
    h.user.clear();
    h.session_id.clear();
  }
  if (!h.tenant.empty()) {
    auth::ConnectionLimits::Process().ReleaseTenant(h.tenant);
    h.tenant.clear();
  }
}

}  // namespace

void AdmissionHold::Release() {
  ReleaseSessionSlots(*this);
  if (!group.empty()) {
    auth::ConnectionLimits::Process().Release(group, logged_in);
    group.clear();
    logged_in = false;
  }
}

Task<bool> AdmitConnection(SessionState& s) {
  const LimitsConfig& limits = s.snap->config.limits;
  s.address_group =
      AddressGroup(s.peer, limits.ipv4_prefix, limits.ipv6_prefix);
  // Exempt sources are neither limited nor counted: a monitoring host's
  // checks never take a slot a client could use. A balancer's LOCAL check
  // is no client at all.
  s.limits_exempt =
      s.front_local || s.snap->limits_exempt.Contains(s.peer.get());
  if (s.limits_exempt) co_return true;

  const auth::ConnectionRefusal r = auth::ConnectionLimits::Process().Admit(
      s.address_group, SettingsFor(limits), absl::Now());
  if (r == auth::ConnectionRefusal::kNone) {
    s.admission.group = s.address_group;
    co_return true;
  }
  const Refusal refusal = RefusalFor(r);
  s.rec.result = SessionResult::kLimited;
  s.rec.detail = std::string(refusal.setting);
  // Answered after refusal_delay (a timer: the worker goes on): a flood's
  // connections wait instead of coming back as fast as we refuse them,
  // which would cost us an accept, a line and a close each.
  if (limits.refusal_delay > absl::ZeroDuration()) {
    HeldRefusal hold(limits.max_refusals_held);
    if (hold.held()) co_await Sleep(s.ring, limits.refusal_delay);
  }
  // The session line is the log: nothing else is written per refusal (a
  // flood must not turn into a flood of log lines).
  if (s.listener().tls != ListenerTls::kImplicit) {
    co_await s.client->WriteAll(refusal.reply, s.ClientTimeout());
  }
  co_return false;
}

int RefusalsHeldForTests() {
  return g_refusals_held.load(std::memory_order_relaxed);
}

void LoginFailed(SessionState& s) {
  AdmissionHold& h = s.admission;
  ReleaseSessionSlots(h);
  if (h.logged_in && !h.group.empty()) {
    auth::ConnectionLimits::Process().LoggedOut(h.group);
  }
  h.logged_in = false;
}

Task<SessionRefusal> AdmitSession(SessionState& s, size_t tenant_index,
                                  std::string_view user) {
  AdmissionHold& h = s.admission;
  // Another try in the same session (after [IN-USE], or a failed backend
  // login): only its own slots count.
  ReleaseSessionSlots(h);

  const Config& config = s.snap->config;
  const TenantConfig& tenant = config.tenants[tenant_index];
  // Every tenant's sessions are counted (0 = no limit), exempt sources
  // too: max_sessions protects the tenant's backends, not one source.
  if (!auth::ConnectionLimits::Process().AcquireTenant(tenant.spec.name,
                                                       tenant.max_sessions)) {
    s.rec.detail = "max_sessions";
    co_return SessionRefusal{SessionResult::kTenantFull, replies::kTenantFull};
  }
  h.tenant = tenant.spec.name;

  const int per_user = config.limits.max_sessions_per_user;
  if (per_user > 0 && !s.limits_exempt) {
    store::LimitStore& store = s.worker.limit_store();
    // Named locals only: GCC 12 frees temporaries in a co_await's
    // arguments too early.
    const std::string user_key(user);
    const std::string session_id = s.rec.session_id;
    absl::StatusOr<bool> got =
        co_await store.AcquireUserSession(user_key, session_id, per_user);
    if (!got.ok()) {
      // redis_down = "fail_closed" and the store cannot answer.
      ReleaseSessionSlots(h);
      s.rec.detail = "limit store unavailable";
      co_return SessionRefusal{SessionResult::kStoreUnavailable,
                               replies::kLoginServiceUnavailable};
    }
    if (!*got) {
      ReleaseSessionSlots(h);
      s.rec.detail = "max_sessions_per_user";
      co_return SessionRefusal{SessionResult::kUserSessionsFull,
                               replies::kUserSessionsFull};
    }
    h.store = &store;
    h.user = user_key;
    h.session_id = session_id;
  }

  if (!h.logged_in && !h.group.empty()) {
    auth::ConnectionLimits::Process().LoggedIn(h.group);
  }
  h.logged_in = true;
  co_return SessionRefusal{};
}

}  // namespace popgate
