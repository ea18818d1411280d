// routing_bench: the cost of picking a backend at login. Rendezvous hashing
// scores every backend of the tenant (one hash and one log per backend), so
// it is linear in the pool size; this shows how much that matters, and what
// a whole RoutingTable::Resolve (canonicalise the name, find the tenant by
// domain, pick the backend, build the backend user name) costs.
//
// Run: routing_bench [--benchmark_min_time=0.1]
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "routing/rendezvous.h"
#include "routing/routing_table.h"

namespace popgate::routing {
namespace {

// Distinct user names, so that the lookups do not all hit one hash value
// (the hash itself has no cache, but branch predictors do).
constexpr int kUsers = 1024;

std::vector<std::string> UserKeys(int tenants) {
  std::vector<std::string> users;
  users.reserve(kUsers);
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(
        absl::StrCat("user", i, "@tenant", i % tenants, ".example"));
  }
  return users;
}

// Weights 1..4 so that the weighted score is exercised, as in a pool that
// mixes machine sizes.
std::vector<WeightedNode> Pool(int backends) {
  std::vector<WeightedNode> nodes;
  for (int i = 0; i < backends; ++i) {
    nodes.push_back(
        WeightedNode{absl::StrCat("10.0.", i / 250, ".", i % 250 + 1, ":110"),
                     static_cast<uint32_t>(1 + i % 4)});
  }
  return nodes;
}

void BM_PickRendezvous(benchmark::State& state) {
  const std::vector<WeightedNode> nodes =
      Pool(static_cast<int>(state.range(0)));
  const std::vector<std::string> users = UserKeys(1);
  size_t i = 0;
  for (auto _ : state) {
    size_t pick = PickRendezvous(users[i], nodes);
    benchmark::DoNotOptimize(pick);
    i = (i + 1) % users.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PickRendezvous)->Arg(2)->Arg(8)->Arg(64);

// `state.range(0)` tenants, each with one domain and 4 weighted backends;
// half of them strip the domain for the backend login.
void BM_Resolve(benchmark::State& state) {
  const int tenants = static_cast<int>(state.range(0));
  std::vector<TenantSpec> specs;
  for (int t = 0; t < tenants; ++t) {
    TenantSpec spec;
    spec.name = absl::StrCat("tenant", t);
    spec.domains = {absl::StrCat("tenant", t, ".example")};
    spec.username_mode =
        t % 2 == 0 ? UsernameMode::kFull : UsernameMode::kStripDomain;
    for (int b = 0; b < 4; ++b) {
      spec.backends.push_back(BackendSpec{
          absl::StrCat("10.", t / 250, ".", t % 250, ".", b + 1, ":110"),
          static_cast<uint32_t>(1 + b % 2)});
    }
    specs.push_back(std::move(spec));
  }
  absl::StatusOr<RoutingTable> table = RoutingTable::Build(std::move(specs));
  if (!table.ok()) {
    state.SkipWithError("RoutingTable::Build failed");
    return;
  }
  // Mixed case as clients type it: canonicalisation has work to do.
  std::vector<std::string> users = UserKeys(tenants);
  for (std::string& u : users) u[0] = 'U';
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<Route> route = table->Resolve(users[i], "");
    if (!route.ok()) {
      state.SkipWithError("Resolve failed");
      break;
    }
    benchmark::DoNotOptimize(route->backend_index);
    i = (i + 1) % users.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Resolve)->Arg(1)->Arg(100)->Arg(10000);

}  // namespace
}  // namespace popgate::routing

BENCHMARK_MAIN();
