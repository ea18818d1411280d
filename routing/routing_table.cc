#include "routing/routing_table.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace popgate::routing {

absl::StatusOr<RoutingTable> RoutingTable::Build(
    std::vector<TenantSpec> tenants) {
  RoutingTable table;
  table.nodes_.reserve(tenants.size());
  for (size_t t = 0; t < tenants.size(); ++t) {
    TenantSpec& spec = tenants[t];
    if (spec.name.empty()) {
      return absl::InvalidArgumentError("tenant with an empty name");
    }
    if (!table.by_name_.emplace(spec.name, t).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate tenant name '", spec.name, "'"));
    }
    for (std::string& domain : spec.domains) {
      // Resolve() looks up canonical (lowercase) domains; normalise here so
      // a caller that forgot cannot create an unreachable tenant.
      absl::AsciiStrToLower(&domain);
      auto [it, inserted] = table.by_domain_.emplace(domain, t);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "domain '", domain, "' of tenant '", spec.name,
            "' already belongs to tenant '", tenants[it->second].name, "'"));
      }
    }
    if (spec.backends.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant '", spec.name, "' has no backends"));
    }
    std::vector<WeightedNode> nodes;
    nodes.reserve(spec.backends.size());
    absl::flat_hash_set<std::string_view> seen;
    for (const BackendSpec& backend : spec.backends) {
      if (backend.weight == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("backend '", backend.address, "' of tenant '",
                         spec.name, "' has weight 0"));
      }
      // The address is the hash identity: listing it twice would give it
      // two identical scores, i.e. silently double its weight at best.
      if (!seen.insert(backend.address).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("backend '", backend.address,
                         "' listed twice in tenant '", spec.name, "'"));
      }
      nodes.push_back(WeightedNode{backend.address, backend.weight});
    }
    table.nodes_.push_back(std::move(nodes));
  }
  table.tenants_ = std::move(tenants);
  return table;
}

absl::StatusOr<Route> RoutingTable::Resolve(
    std::string_view raw_user, std::string_view default_tenant) const {
  absl::StatusOr<CanonicalUser> user = Canonicalize(raw_user);
  if (!user.ok()) return user.status();

  size_t tenant = 0;
  if (!user->domain.empty()) {
    // No fallback to the default tenant here: "bob@other.org" must not be
    // authenticated as the default tenant's "bob".
    auto it = by_domain_.find(user->domain);
    if (it == by_domain_.end()) {
      return absl::PermissionDeniedError("unknown domain");
    }
    tenant = it->second;
  } else {
    if (default_tenant.empty()) {
      return absl::PermissionDeniedError("username needs a domain");
    }
    const int index = FindTenant(default_tenant);
    if (index < 0) return absl::PermissionDeniedError("unknown tenant");
    tenant = static_cast<size_t>(index);
  }

  Route route;
  route.tenant_index = tenant;
  // The key is the canonical full name whatever the username mode, so the
  // choice stays the same if an operator later switches modes.
  route.ranked.resize(nodes_[tenant].size());
  RankRendezvous(user->full, nodes_[tenant], route.ranked);
  route.backend_index = route.ranked[0];
  route.backend_user =
      tenants_[tenant].username_mode == UsernameMode::kStripDomain ? user->local
                                                                   : user->full;
  route.user = *std::move(user);
  return route;
}

int RoutingTable::FindTenant(std::string_view name) const {
  // Debian's abseil has its own string_view type, not std::string_view.
  auto it = by_name_.find(absl::string_view(name.data(), name.size()));
  return it == by_name_.end() ? -1 : static_cast<int>(it->second);
}

}  // namespace popgate::routing
