// The fail-over properties the docs promise (docs/failover.md), over the
// real routing table and PickBackend: 10,000 users, five backends. Pure:
// no sockets, no clocks (a fixed `now`).
//
// The "[failover]" lines this test prints are stable; docs/failover.md
// quotes them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "backend/backend_health.h"
#include "backend/backend_pick.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "routing/routing_table.h"

namespace popgate {
namespace {

using routing::AdminState;
using routing::BackendSpec;
using routing::RoutingTable;
using routing::TenantSpec;

constexpr int kUsers = 10000;
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

const std::vector<std::string>& Users() {
  static const std::vector<std::string>* users = [] {
    auto* v = new std::vector<std::string>;
    for (int i = 0; i < kUsers; ++i) {
      v->push_back("user" + std::to_string(i) + "@example.org");
    }
    return v;
  }();
  return *users;
}

std::string Address(int i) {
  return "10.0.0." + std::to_string(i + 1) + ":110";
}

struct PoolOptions {
  std::vector<uint32_t> weights = {1, 1, 1, 1, 1};
  // The order backends are listed in the config (indices into weights).
  std::vector<int> order = {0, 1, 2, 3, 4};
  absl::flat_hash_map<int, AdminState> states;  // default kUp
  absl::flat_hash_map<int, uint32_t> max_connections;
  bool other_tenant_first = false;
};

RoutingTable MakeTable(const PoolOptions& options) {
  TenantSpec org;
  org.name = "example-org";
  org.domains = {"example.org"};
  for (int i : options.order) {
    BackendSpec spec;
    spec.address = Address(i);
    spec.weight = options.weights[i];
    if (auto it = options.states.find(i); it != options.states.end()) {
      spec.state = it->second;
    }
    if (auto it = options.max_connections.find(i);
        it != options.max_connections.end()) {
      spec.max_connections = it->second;
    }
    org.backends.push_back(std::move(spec));
  }
  TenantSpec other;
  other.name = "other";
  other.domains = {"example.net"};
  other.backends = {BackendSpec{"10.9.0.1:110"}, BackendSpec{"10.9.0.2:110"}};
  std::vector<TenantSpec> tenants;
  if (options.other_tenant_first) tenants.push_back(other);
  tenants.push_back(std::move(org));
  if (!options.other_tenant_first) tenants.push_back(other);
  absl::StatusOr<RoutingTable> table = RoutingTable::Build(std::move(tenants));
  EXPECT_TRUE(table.ok()) << table.status();
  return *std::move(table);
}

// One popgate instance's view: its routing table and its own health state
// per backend (instances share nothing).
class Instance {
 public:
  Instance(const PoolOptions& options, Failover failover)
      : table_(MakeTable(options)), failover_(failover) {
    tenant_ = static_cast<size_t>(table_.FindTenant("example-org"));
    HealthCheckConfig policy;
    policy.active = true;
    for (const BackendSpec& spec : table_.tenants()[tenant_].backends) {
      health_.push_back(
          std::make_shared<BackendHealth>("example-org", spec.address));
      health_.back()->SetPolicy(policy);
    }
  }

  BackendHealth& Health(int backend) { return *health_[IndexOf(backend)]; }

  // What the checker does when a backend stops answering: `fall` failures.
  void CheckFails(int backend) {
    for (int k = 0; k < HealthCheckConfig().fall; ++k) {
      Health(backend).RecordCheck(false, "connect: refused", kNow);
    }
    ASSERT_EQ(Health(backend).state(kNow), HealthState::kDown);
  }
  void CheckPasses(int backend) {
    for (int k = 0; k < HealthCheckConfig().rise; ++k) {
      Health(backend).RecordCheck(true, "ok", kNow);
    }
    ASSERT_EQ(Health(backend).state(kNow), HealthState::kUp);
  }

  // The address a new session of `user` goes to, "" if refused. Gives
  // the slot back at once: these tests ask about new sessions only.
  std::string Pick(const std::string& user) {
    absl::StatusOr<routing::Route> route = table_.Resolve(user, "");
    EXPECT_TRUE(route.ok()) << route.status();
    if (!route.ok()) return "?";
    const std::vector<BackendSpec>& specs =
        table_.tenants()[route->tenant_index].backends;
    const BackendPick pick =
        PickBackend(route->ranked, failover_, specs, health_, kNow);
    if (pick.index < 0) return "";
    health_[pick.index]->Release();
    return specs[pick.index].address;
  }
  // The user's rendezvous order as addresses.
  std::vector<std::string> Ranked(const std::string& user) const {
    absl::StatusOr<routing::Route> route = table_.Resolve(user, "");
    std::vector<std::string> out;
    if (!route.ok()) return out;
    for (uint32_t i : route->ranked) {
      out.push_back(table_.tenants()[route->tenant_index].backends[i].address);
    }
    return out;
  }
  std::vector<std::string> PickAll() {
    std::vector<std::string> out;
    out.reserve(kUsers);
    for (const std::string& user : Users()) out.push_back(Pick(user));
    return out;
  }

 private:
  size_t IndexOf(int backend) const {
    const auto& specs = table_.tenants()[tenant_].backends;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].address == Address(backend)) return i;
    }
    ADD_FAILURE() << "no backend " << backend;
    return 0;
  }

  RoutingTable table_;
  Failover failover_;
  size_t tenant_ = 0;
  std::vector<std::shared_ptr<BackendHealth>> health_;
};

// Checks movement with backends `out` unusable: a user keeps their backend
// unless it is in `out`, and then goes to the first of their own order
// that is not. Returns how many moved, per destination.
absl::flat_hash_map<std::string, int> CheckMovement(
    const Instance& instance, const std::vector<std::string>& before,
    const std::vector<std::string>& after,
    const absl::flat_hash_set<std::string>& out) {
  absl::flat_hash_map<std::string, int> moved_to;
  for (int u = 0; u < kUsers; ++u) {
    const std::vector<std::string> ranked = instance.Ranked(Users()[u]);
    EXPECT_EQ(before[u], ranked[0]) << Users()[u];
    if (!out.contains(ranked[0])) {
      EXPECT_EQ(after[u], before[u]) << Users()[u] << " moved needlessly";
      continue;
    }
    auto next =
        std::find_if(ranked.begin(), ranked.end(),
                     [&](const std::string& a) { return !out.contains(a); });
    if (next == ranked.end()) {
      ADD_FAILURE() << Users()[u] << ": no backend left";
      continue;
    }
    EXPECT_EQ(after[u], *next) << Users()[u];
    ++moved_to[after[u]];
  }
  return moved_to;
}

int Total(const absl::flat_hash_map<std::string, int>& m) {
  int n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

// Each destination within +-15% of its weight's share of `moved`.
void CheckSpread(const absl::flat_hash_map<std::string, int>& moved_to,
                 const std::vector<uint32_t>& weights,
                 const absl::flat_hash_set<int>& out) {
  const int moved = Total(moved_to);
  uint32_t weight_left = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!out.contains(static_cast<int>(i))) weight_left += weights[i];
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    if (out.contains(static_cast<int>(i))) continue;
    const double want = static_cast<double>(moved) * weights[i] / weight_left;
    auto it = moved_to.find(Address(static_cast<int>(i)));
    const int got = it == moved_to.end() ? 0 : it->second;
    EXPECT_GE(got, 0.85 * want) << Address(static_cast<int>(i));
    EXPECT_LE(got, 1.15 * want) << Address(static_cast<int>(i));
  }
}

TEST(FailoverPropertiesTest, OneBackendDownMovesOnlyItsUsersEvenly) {
  const PoolOptions options;
  for (int k = 0; k < 5; ++k) {
    SCOPED_TRACE(k);
    Instance instance(options, Failover::kNext);
    const std::vector<std::string> before = instance.PickAll();
    instance.CheckFails(k);
    const std::vector<std::string> after = instance.PickAll();
    auto moved_to = CheckMovement(instance, before, after, {Address(k)});
    const int moved = Total(moved_to);
    // The spread of the users themselves: one fifth each, +-15%.
    EXPECT_GE(moved, 0.85 * kUsers / 5);
    EXPECT_LE(moved, 1.15 * kUsers / 5);
    CheckSpread(moved_to, options.weights, {k});
    std::cout << "[failover] next, 5 backends, " << Address(k)
              << " down: moved " << moved << " of " << kUsers << " (to";
    for (int i = 0; i < 5; ++i) {
      if (i != k) std::cout << " " << Address(i) << " " << moved_to[Address(i)];
    }
    std::cout << ")\n";
  }
}

TEST(FailoverPropertiesTest, NoneRefusesOnlyTheDownBackendsUsers) {
  const PoolOptions options;
  Instance instance(options, Failover::kNone);
  const std::vector<std::string> before = instance.PickAll();
  instance.CheckFails(2);
  const std::vector<std::string> after = instance.PickAll();
  int refused = 0;
  for (int u = 0; u < kUsers; ++u) {
    if (before[u] == Address(2)) {
      EXPECT_EQ(after[u], "") << Users()[u];
      ++refused;
    } else {
      EXPECT_EQ(after[u], before[u]) << Users()[u];
    }
  }
  EXPECT_GT(refused, 0);
  std::cout << "[failover] none, 5 backends, " << Address(2)
            << " down: refused " << refused << " of " << kUsers
            << ", moved 0\n";
}

TEST(FailoverPropertiesTest, WeightsAreRespectedBeforeAndAfter) {
  PoolOptions options;
  options.weights = {1, 1, 2, 2, 4};
  Instance instance(options, Failover::kNext);
  const std::vector<std::string> before = instance.PickAll();
  absl::flat_hash_map<std::string, int> count;
  for (const std::string& a : before) ++count[a];
  for (int i = 0; i < 5; ++i) {
    const double want = kUsers * options.weights[i] / 10.0;
    EXPECT_GE(count[Address(i)], 0.85 * want) << Address(i);
    EXPECT_LE(count[Address(i)], 1.15 * want) << Address(i);
  }
  for (int k : {0, 3, 4}) {
    SCOPED_TRACE(k);
    Instance down(options, Failover::kNext);
    down.CheckFails(k);
    const auto moved_to =
        CheckMovement(down, before, down.PickAll(), {Address(k)});
    EXPECT_EQ(Total(moved_to), count[Address(k)]);
    CheckSpread(moved_to, options.weights, {k});
    std::cout << "[failover] next, weights 1,1,2,2,4, " << Address(k)
              << " down: moved " << Total(moved_to) << " of " << kUsers << "\n";
  }
}

TEST(FailoverPropertiesTest, ForcedDownInTheConfigMovesTheSameUsers) {
  PoolOptions options;
  Instance health_down(options, Failover::kNext);
  health_down.CheckFails(1);
  options.states[1] = AdminState::kDown;
  Instance forced(options, Failover::kNext);
  EXPECT_EQ(forced.PickAll(), health_down.PickAll());
}

TEST(FailoverPropertiesTest, TwoInstancesAgreeWithoutTalking) {
  PoolOptions a;
  PoolOptions b;
  b.order = {3, 0, 4, 2, 1};  // listed in another order
  b.other_tenant_first = true;
  Instance first(a, Failover::kNext);
  Instance second(b, Failover::kNext);
  int differ = 0;
  const std::vector<std::string> all_up = first.PickAll();
  EXPECT_EQ(all_up, second.PickAll());
  for (int k = 0; k < 5; ++k) {
    Instance x(a, Failover::kNext);
    Instance y(b, Failover::kNext);
    x.CheckFails(k);
    y.CheckFails(k);
    const std::vector<std::string> px = x.PickAll();
    const std::vector<std::string> py = y.PickAll();
    for (int u = 0; u < kUsers; ++u) differ += px[u] != py[u];
    // And with the backend forced down in one config, health-down in the
    // other: still the same decisions.
    PoolOptions forced = b;
    forced.states[k] = AdminState::kDown;
    Instance z(forced, Failover::kNext);
    EXPECT_EQ(z.PickAll(), px) << k;
  }
  EXPECT_EQ(differ, 0);
  std::cout << "[failover] two instances, backends listed in other orders: "
            << differ << " of " << 5 * kUsers << " decisions differ\n";
}

TEST(FailoverPropertiesTest, UsersReturnWhenTheBackendComesBack) {
  Instance instance(PoolOptions(), Failover::kNext);
  const std::vector<std::string> before = instance.PickAll();
  instance.CheckFails(4);
  EXPECT_NE(instance.PickAll(), before);
  instance.CheckPasses(4);
  EXPECT_EQ(instance.PickAll(), before);
}

TEST(FailoverPropertiesTest, TwoDown) {
  const PoolOptions options;
  Instance instance(options, Failover::kNext);
  const std::vector<std::string> before = instance.PickAll();
  instance.CheckFails(0);
  instance.CheckFails(3);
  const auto moved_to = CheckMovement(instance, before, instance.PickAll(),
                                      {Address(0), Address(3)});
  EXPECT_FALSE(moved_to.contains(Address(0)));
  EXPECT_FALSE(moved_to.contains(Address(3)));
  CheckSpread(moved_to, options.weights, {0, 3});
  std::cout << "[failover] next, 5 backends, " << Address(0) << " and "
            << Address(3) << " down: moved " << Total(moved_to) << " of "
            << kUsers << "\n";
}

TEST(FailoverPropertiesTest, DrainAndFullBehaveLikeDownForNewSessions) {
  PoolOptions options;
  Instance reference(options, Failover::kNext);
  const std::vector<std::string> before = reference.PickAll();
  reference.CheckFails(2);
  const std::vector<std::string> down = reference.PickAll();

  PoolOptions drain = options;
  drain.states[2] = AdminState::kDrain;
  Instance drained(drain, Failover::kNext);
  EXPECT_EQ(drained.PickAll(), down);
  CheckMovement(drained, before, down, {Address(2)});

  PoolOptions limited = options;
  limited.max_connections[2] = 1;
  Instance full(limited, Failover::kNext);
  EXPECT_EQ(full.PickAll(), before);          // one slot, given back each time
  ASSERT_TRUE(full.Health(2).TryAcquire(1));  // a running session
  EXPECT_EQ(full.PickAll(), down);
  EXPECT_EQ(full.Health(2).sessions(), 1u);  // no slot taken by a refusal
  full.Health(2).Release();
  EXPECT_EQ(full.PickAll(), before);

  // Under failover = "none" the same users are refused instead.
  Instance none(drain, Failover::kNone);
  const std::vector<std::string> refused = none.PickAll();
  for (int u = 0; u < kUsers; ++u) {
    EXPECT_EQ(refused[u], before[u] == Address(2) ? "" : before[u]);
  }
}

}  // namespace
}  // namespace popgate
