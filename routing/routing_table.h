// The routing snapshot: tenants, their domains and backend pools. Immutable
// once built; a reload builds a new one and swaps it in, running sessions
// keep the one they started with.
#ifndef POPGATE_ROUTING_ROUTING_TABLE_H_
#define POPGATE_ROUTING_ROUTING_TABLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "routing/rendezvous.h"
#include "routing/username.h"

namespace popgate::routing {

enum class UsernameMode { kFull, kStripDomain };

// Set by the operator (config, SIGHUP; the admin API later).
enum class AdminState {
  kUp,     // takes sessions while healthy
  kDrain,  // no new sessions; running ones go on
  kDown,   // out, whatever its health
};

struct BackendSpec {
  std::string address;  // "host:port", "[v6]:port"; also the hash identity
  uint32_t weight = 1;
  AdminState state = AdminState::kUp;
  uint32_t max_connections =
      0;  // sessions at once from this process; 0 = no limit
};

struct TenantSpec {
  std::string name;
  std::vector<std::string> domains;  // lowercase
  UsernameMode username_mode = UsernameMode::kFull;
  std::vector<BackendSpec> backends;  // non-empty
};

struct Route {
  size_t tenant_index = 0;   // into RoutingTable::tenants()
  size_t backend_index = 0;  // into that tenant's backends; == ranked[0]
  // Every backend of the tenant in this user's rendezvous order, best
  // first: fail-over walks it (the same order on every instance).
  absl::InlinedVector<uint32_t, 8> ranked;
  CanonicalUser user;
  std::string backend_user;  // what to send as USER to the backend
};

class RoutingTable {
 public:
  // Fails on an empty or duplicate tenant name, a domain listed twice (in
  // one tenant or two), a tenant without backends, a zero weight, or a
  // backend address listed twice in one tenant. Domains are lowercased.
  static absl::StatusOr<RoutingTable> Build(std::vector<TenantSpec> tenants);

  // Tenant = the user's domain (exact, case-insensitive), else
  // `default_tenant` (a tenant name; empty = none). A domain nobody owns is
  // an error even when a default tenant exists. Errors are
  // PermissionDenied (unknown domain / no tenant) or InvalidArgument
  // (malformed username).
  absl::StatusOr<Route> Resolve(std::string_view raw_user,
                                std::string_view default_tenant) const;

  const std::vector<TenantSpec>& tenants() const { return tenants_; }
  // Index of the tenant called `name`, or -1.
  int FindTenant(std::string_view name) const;

 private:
  std::vector<TenantSpec> tenants_;
  std::vector<std::vector<WeightedNode>> nodes_;  // per tenant
  absl::flat_hash_map<std::string, size_t> by_domain_;
  absl::flat_hash_map<std::string, size_t> by_name_;
};

}  // namespace popgate::routing

#endif  // POPGATE_ROUTING_ROUTING_TABLE_H_
