// Everything a session needs to authenticate and route, built from one
// config: immutable once built. A reload builds a new Snapshot and swaps it
// in atomically; running sessions keep the shared_ptr they started with.
#ifndef POPGATE_SESSION_SNAPSHOT_H_
#define POPGATE_SESSION_SNAPSHOT_H_

#include <atomic>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "auth/auth_cache.h"
#include "auth/master_password.h"
#include "auth/passwd_file.h"
#include "backend/backend_health.h"
#include "config/config.h"
#include "net/cidr_set.h"
#include "net/socket_address.h"
#include "routing/routing_table.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"

namespace popgate {

// Long-lived things a snapshot's TLS contexts use, owned by main.
struct SnapshotDeps {
  auth::HashPool* sign_pool = nullptr;           // RSA signing for handshakes
  std::shared_ptr<tls::TicketKeys> ticket_keys;  // null: no tickets
  bool kernel_tls = false;  // the kernel has the "tls" TCP ULP
  // Keeps backends' health across reloads; null (--check-config, tests):
  // every snapshot gets fresh state.
  HealthRegistry* health = nullptr;
};

struct Snapshot {
  Config config;
  routing::RoutingTable table;
  // Per tenant (same order as table.tenants()); null for auth = "backend".
  std::vector<std::shared_ptr<const auth::PasswdFile>> passwd;
  // Per tenant: its auth cache (login_cache.h), empty in every new
  // snapshot so that a reload forgets verdicts of the old passwd-file;
  // null for auth = "backend" or auth_cache_size = 0. Mutable behind the
  // const snapshot: it is thread-safe.
  std::vector<std::shared_ptr<auth::AuthCache>> auth_cache;
  // Per tenant: the master password for backend_login = "master" (read
  // and permission-checked at build), else null.
  std::vector<std::shared_ptr<const auth::MasterPassword>> master_password;
  // Per tenant, per backend: resolved at build time so workers never do DNS.
  std::vector<std::vector<SocketAddress>> backend_addrs;
  // Per tenant, per backend: its health and session count, shared with
  // the snapshots before and after this one (deps.health). Policies are
  // applied by ApplyHealthPolicies once this snapshot is in force.
  std::vector<std::vector<std::shared_ptr<BackendHealth>>> health;
  // Per listener: its address, resolved (main opens the sockets).
  std::vector<SocketAddress> listener_addrs;
  // Per listener: the default tenant's name ("" = none).
  std::vector<std::string> listener_default_tenant;
  // Per listener: what it serves over TLS (null for tls = "none").
  std::vector<std::shared_ptr<const tls::ServerContext>> listener_tls;
  // Per tenant: the context for TLS to its backends (null for none), and
  // the name to verify per backend.
  std::vector<std::shared_ptr<const tls::ClientContext>> backend_tls;
  std::vector<std::vector<std::string>> backend_tls_names;
  CidrSet trusted_networks;
  // Per listener: the load balancers a PROXY header is accepted from
  // (proxy_trusted_networks); empty when proxy_protocol is off.
  std::vector<CidrSet> listener_proxy_trusted;
  // [limits] exempt_networks: no connection limit or login throttle
  // applies to these sources.
  CidrSet limits_exempt;
  // Backends whose state is "down": a reload into this snapshot cuts the
  // sessions running on them.
  std::vector<const BackendHealth*> forced_down;
  // Hand client TLS sessions to the kernel after login (config allows it
  // and the kernel can).
  bool use_ktls = false;

  // Loads passwd-files, certificates and keys, resolves addresses
  // (blocking: main thread only). Errors are "file:line: ..." at the config
  // line that names the failing path or address; a backend that resolves
  // to one of our own listeners is refused. Without deps.ticket_keys
  // (--check-config) a ticket_key_file is read to check it.
  static absl::StatusOr<std::shared_ptr<const Snapshot>> Build(
      Config config, const SnapshotDeps& deps);
};

// Gives every backend of `snap` its tenant's health policy: call when
// `snap` goes into force (start, successful reload), not when a reload is
// only being tried.
void ApplyHealthPolicies(const Snapshot& snap);

class SnapshotStore {
 public:
  explicit SnapshotStore(std::shared_ptr<const Snapshot> s)
      : current_(std::move(s)) {}
  std::shared_ptr<const Snapshot> Get() const { return current_.load(); }
  void Set(std::shared_ptr<const Snapshot> s) {
    current_.store(std::move(s));
    generation_.fetch_add(1, std::memory_order_release);
  }
  // Changes with every Set: a worker compares it each turn (one relaxed
  // load) to act on a reload (cutting sessions of a backend set "down").
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace popgate

#endif  // POPGATE_SESSION_SNAPSHOT_H_
