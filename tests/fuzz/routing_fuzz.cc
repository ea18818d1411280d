// Tenant resolution (routing/routing_table): a table built from fuzzed
// tenant specs, then Resolve() on a fuzzed username and default tenant.
//
// Properties: a resolved route's tenant owns the user's domain (or, for a
// user without a domain, is the listener's default tenant); the backend
// index is in range; the backend user is the full or the local name as the
// tenant's username mode says; resolution is deterministic; a domain that
// no tenant owns is never resolved, even with a default tenant.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/routing_table.h"
#include "routing/username.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::routing::BackendSpec;
using popgate::routing::Route;
using popgate::routing::RoutingTable;
using popgate::routing::TenantSpec;
using popgate::routing::UsernameMode;

// Short strings from a small alphabet, so that names and domains collide
// (duplicates, prefixes, case variants) often enough to matter.
std::string Name(FuzzedDataProvider& in) {
  static constexpr char kAlphabet[] = "abAB.-x1@";
  std::string s;
  const size_t len = in.ConsumeIntegralInRange<size_t>(0, 6);
  for (size_t i = 0; i < len; ++i) {
    s += kAlphabet[in.ConsumeIntegralInRange<size_t>(0, sizeof(kAlphabet) - 2)];
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<TenantSpec> specs(in.ConsumeIntegralInRange<size_t>(1, 4));
  for (TenantSpec& t : specs) {
    t.name = Name(in);
    const size_t domains = in.ConsumeIntegralInRange<size_t>(0, 3);
    for (size_t i = 0; i < domains; ++i) t.domains.push_back(Name(in));
    t.username_mode =
        in.ConsumeBool() ? UsernameMode::kFull : UsernameMode::kStripDomain;
    const size_t backends = in.ConsumeIntegralInRange<size_t>(0, 3);
    for (size_t i = 0; i < backends; ++i) {
      t.backends.push_back(
          BackendSpec{"10.0.0." + Name(in) + ":110",
                      in.ConsumeIntegralInRange<uint32_t>(0, 3)});
    }
  }
  absl::StatusOr<RoutingTable> table = RoutingTable::Build(specs);
  if (!table.ok()) return 0;
  FUZZ_CHECK(table->tenants().size() == specs.size());

  const std::string default_tenant =
      in.ConsumeBool()
          ? specs[in.ConsumeIntegralInRange<size_t>(0, specs.size() - 1)].name
          : Name(in);
  const std::string raw_user = in.ConsumeRemainingBytesAsString();

  absl::StatusOr<Route> route = table->Resolve(raw_user, default_tenant);
  absl::StatusOr<popgate::routing::CanonicalUser> user =
      popgate::routing::Canonicalize(raw_user);
  if (!user.ok()) {
    FUZZ_CHECK(!route.ok());
    return 0;
  }
  // Who owns the user's domain, by a linear search of the built table.
  int owner = -1;
  for (size_t t = 0; t < table->tenants().size(); ++t) {
    const std::vector<std::string>& d = table->tenants()[t].domains;
    if (std::find(d.begin(), d.end(), user->domain) != d.end()) {
      owner = static_cast<int>(t);
    }
  }
  if (!route.ok()) {
    // Refused only when nobody owns the domain or there is no usable
    // default tenant.
    if (!user->domain.empty()) {
      FUZZ_CHECK(owner < 0);
    } else {
      FUZZ_CHECK(table->FindTenant(default_tenant) < 0);
    }
    return 0;
  }
  FUZZ_CHECK(route->tenant_index < table->tenants().size());
  const TenantSpec& tenant = table->tenants()[route->tenant_index];
  if (user->domain.empty()) {
    FUZZ_CHECK(tenant.name == default_tenant);
  } else {
    FUZZ_CHECK(static_cast<int>(route->tenant_index) == owner);
    FUZZ_CHECK(std::find(tenant.domains.begin(), tenant.domains.end(),
                         route->user.domain) != tenant.domains.end());
  }
  FUZZ_CHECK(route->backend_index < tenant.backends.size());
  FUZZ_CHECK(route->user.full == user->full);
  FUZZ_CHECK(
      route->backend_user ==
      (tenant.username_mode == UsernameMode::kFull ? user->full : user->local));
  absl::StatusOr<Route> again = table->Resolve(raw_user, default_tenant);
  FUZZ_CHECK(again.ok() && again->tenant_index == route->tenant_index &&
             again->backend_index == route->backend_index);
  return 0;
}
