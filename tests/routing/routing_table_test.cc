#include "routing/routing_table.h"

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace popgate::routing {
namespace {

TenantSpec Tenant(std::string name, std::vector<std::string> domains,
                  std::vector<std::string> backends,
                  UsernameMode mode = UsernameMode::kFull) {
  TenantSpec spec;
  spec.name = std::move(name);
  spec.domains = std::move(domains);
  spec.username_mode = mode;
  for (std::string& b : backends) spec.backends.push_back({std::move(b), 1});
  return spec;
}

RoutingTable TwoTenants() {
  absl::StatusOr<RoutingTable> table = RoutingTable::Build({
      Tenant("example-com", {"example.com", "example.net"},
             {"10.0.1.1:110", "10.0.1.2:110", "10.0.1.3:110"}),
      Tenant("example-org", {"example.org"}, {"10.0.2.1:110"},
             UsernameMode::kStripDomain),
  });
  EXPECT_TRUE(table.ok()) << table.status();
  return *std::move(table);
}

TEST(RoutingTableTest, DomainMatchIsCaseInsensitive) {
  const RoutingTable table = TwoTenants();
  absl::StatusOr<Route> route = table.Resolve("Bob@EXAMPLE.Com", "");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->tenant_index, 0u);
  EXPECT_EQ(route->user.full, "bob@example.com");
  EXPECT_EQ(route->backend_user, "bob@example.com");
  EXPECT_LT(route->backend_index, 3u);

  route = table.Resolve("bob@example.net", "");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->tenant_index, 0u);
}

TEST(RoutingTableTest, BackendIsTheRendezvousPickOfTheCanonicalName) {
  const RoutingTable table = TwoTenants();
  const TenantSpec& spec = table.tenants()[0];
  std::vector<WeightedNode> nodes;
  for (const BackendSpec& b : spec.backends) {
    nodes.push_back({b.address, b.weight});
  }
  for (std::string user : {"a@example.com", "b@example.com", "c@example.com",
                           "d@example.com", "e@example.com"}) {
    absl::StatusOr<Route> route = table.Resolve(user, "");
    ASSERT_TRUE(route.ok()) << route.status();
    EXPECT_EQ(route->backend_index, PickRendezvous(user, nodes)) << user;
    // Case must not change the backend, or one mailbox would be served by
    // two backends at once.
    for (char& c : user) c = static_cast<char>(std::toupper(c));
    absl::StatusOr<Route> upper = table.Resolve(user, "");
    ASSERT_TRUE(upper.ok());
    EXPECT_EQ(upper->backend_index, route->backend_index);
  }
}

TEST(RoutingTableTest, DefaultTenantWhenNoDomain) {
  const RoutingTable table = TwoTenants();
  absl::StatusOr<Route> route = table.Resolve("Bob", "example-org");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->tenant_index, 1u);
  EXPECT_EQ(route->user.full, "bob");
  EXPECT_EQ(route->user.domain, "");
  EXPECT_EQ(route->backend_user, "bob");
  EXPECT_EQ(route->backend_index, 0u);
}

TEST(RoutingTableTest, DomainWinsOverDefaultTenant) {
  const RoutingTable table = TwoTenants();
  absl::StatusOr<Route> route = table.Resolve("bob@example.com", "example-org");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->tenant_index, 0u);
}

TEST(RoutingTableTest, UnknownDomainRefusedEvenWithDefault) {
  const RoutingTable table = TwoTenants();
  EXPECT_EQ(table.Resolve("bob@other.org", "example-com").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(table.Resolve("bob@other.org", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  // Subdomains are not owned implicitly.
  EXPECT_EQ(table.Resolve("bob@mail.example.com", "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(RoutingTableTest, NoDomainAndNoDefaultRefused) {
  const RoutingTable table = TwoTenants();
  EXPECT_EQ(table.Resolve("bob", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(table.Resolve("bob", "no-such-tenant").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(RoutingTableTest, MalformedUsernameIsInvalidArgument) {
  const RoutingTable table = TwoTenants();
  for (const char* user : {"", "a@example.com@example.org", " a@example.com",
                           "a@example.com.", "a@@example.com"}) {
    EXPECT_EQ(table.Resolve(user, "example-com").status().code(),
              absl::StatusCode::kInvalidArgument)
        << user;
  }
}

TEST(RoutingTableTest, UsernameModes) {
  const RoutingTable table = TwoTenants();
  absl::StatusOr<Route> full = table.Resolve("Bob@Example.Com", "");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->backend_user, "bob@example.com");
  absl::StatusOr<Route> stripped = table.Resolve("Bob@Example.Org", "");
  ASSERT_TRUE(stripped.ok());
  EXPECT_EQ(stripped->backend_user, "bob");
  EXPECT_EQ(stripped->user.full, "bob@example.org");
  EXPECT_EQ(stripped->user.domain, "example.org");
}

TEST(RoutingTableTest, FindTenant) {
  const RoutingTable table = TwoTenants();
  EXPECT_EQ(table.FindTenant("example-com"), 0);
  EXPECT_EQ(table.FindTenant("example-org"), 1);
  EXPECT_EQ(table.FindTenant("Example-Org"), -1);
  EXPECT_EQ(table.FindTenant(""), -1);
}

TEST(RoutingTableTest, Deterministic) {
  const RoutingTable a = TwoTenants();
  const RoutingTable b = TwoTenants();
  for (int i = 0; i < 200; ++i) {
    const std::string user = "u" + std::to_string(i) + "@example.com";
    absl::StatusOr<Route> ra = a.Resolve(user, "");
    absl::StatusOr<Route> rb = b.Resolve(user, "");
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(ra->backend_index, rb->backend_index);
    EXPECT_EQ(ra->backend_index, a.Resolve(user, "").value().backend_index);
  }
}

TEST(RoutingTableTest, BuildLowercasesDomains) {
  absl::StatusOr<RoutingTable> table =
      RoutingTable::Build({Tenant("t", {"Example.COM"}, {"h:1"})});
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->tenants()[0].domains[0], "example.com");
  EXPECT_TRUE(table->Resolve("a@example.com", "").ok());
}

TEST(RoutingTableTest, BuildAcceptsTenantWithoutDomains) {
  absl::StatusOr<RoutingTable> table =
      RoutingTable::Build({Tenant("t", {}, {"h:1"})});
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->Resolve("a", "t").ok());
}

TEST(RoutingTableTest, BuildRefusesDuplicateDomain) {
  EXPECT_EQ(RoutingTable::Build({Tenant("a", {"x.com"}, {"h:1"}),
                                 Tenant("b", {"y.com", "X.com"}, {"h:1"})})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      RoutingTable::Build({Tenant("a", {"x.com", "x.com"}, {"h:1"})}).ok());
}

TEST(RoutingTableTest, BuildRefusesDuplicateName) {
  EXPECT_EQ(RoutingTable::Build({Tenant("a", {"x.com"}, {"h:1"}),
                                 Tenant("a", {"y.com"}, {"h:1"})})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RoutingTableTest, BuildRefusesEmptyName) {
  EXPECT_FALSE(RoutingTable::Build({Tenant("", {"x.com"}, {"h:1"})}).ok());
}

TEST(RoutingTableTest, BuildRefusesEmptyPool) {
  EXPECT_EQ(RoutingTable::Build({Tenant("a", {"x.com"}, {})}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RoutingTableTest, BuildRefusesZeroWeight) {
  TenantSpec spec = Tenant("a", {"x.com"}, {"h:1", "h:2"});
  spec.backends[1].weight = 0;
  EXPECT_EQ(RoutingTable::Build({spec}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RoutingTableTest, BuildRefusesDuplicateBackend) {
  EXPECT_FALSE(
      RoutingTable::Build({Tenant("a", {"x.com"}, {"h:1", "h:1"})}).ok());
  // The same backend in two tenants is fine (shared mail servers).
  EXPECT_TRUE(RoutingTable::Build({Tenant("a", {"x.com"}, {"h:1"}),
                                   Tenant("b", {"y.com"}, {"h:1"})})
                  .ok());
}

TEST(RoutingTableTest, EmptyTableRefusesEveryone) {
  absl::StatusOr<RoutingTable> table = RoutingTable::Build({});
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->Resolve("a@x.com", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(table->Resolve("a", "x").status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace popgate::routing
