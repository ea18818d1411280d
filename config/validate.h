// Validation: the value checks section parsing uses (names, domains,
// addresses) and the cross-checks run once every section is read
// (reachability of tenants, the routing table, backends that are our own
// listeners).
#ifndef POPGATE_CONFIG_VALIDATE_H_
#define POPGATE_CONFIG_VALIDATE_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "config/config.h"
#include "config/toml_fields.h"

namespace popgate::config_internal {

inline constexpr size_t kMaxTenantName = 128;

// [a-z0-9._-], 1..kMaxTenantName.
bool IsValidTenantName(std::string_view name);
// Lowercase DNS-style name; '_' tolerated because internal mail domains use
// it, and Canonicalize() accepts it in a username's domain.
bool IsValidDomain(std::string_view domain);

// Checks that need the whole config: every tenant reachable, the routing
// table builds, no backend given as a numeric address is one of our own
// listeners (names are checked after resolution, in Snapshot::Build).
absl::Status CrossCheck(const Fields& fields, const Config& config);

}  // namespace popgate::config_internal

#endif  // POPGATE_CONFIG_VALIDATE_H_
