#include "routing/rendezvous.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace popgate::routing {
namespace {

// Shared by the property tests; built once because these tests must stay
// fast under sanitizers.
const std::vector<std::string>& Users(size_t n) {
  static const std::vector<std::string>* users = [] {
    auto* v = new std::vector<std::string>;
    v->reserve(100000);
    for (size_t i = 0; i < 100000; ++i) {
      v->push_back("user" + std::to_string(i) + "@example.com");
    }
    return v;
  }();
  EXPECT_LE(n, users->size());
  return *users;
}

std::vector<WeightedNode> Nodes(const std::vector<uint32_t>& weights) {
  std::vector<WeightedNode> nodes;
  for (size_t i = 0; i < weights.size(); ++i) {
    nodes.push_back({"10.0.0." + std::to_string(i + 1) + ":110", weights[i]});
  }
  return nodes;
}

// The hash is part of the routing contract between instances and versions:
// if these change, users move between backends on upgrade.
TEST(StableHash64Test, GoldenValues) {
  EXPECT_EQ(StableHash64("", ""), 0x519e7852cb6650b7ULL);
  EXPECT_EQ(StableHash64("10.0.0.1:110", "alice@example.com"),
            0x35c3fb63949ddb31ULL);
  EXPECT_EQ(StableHash64("10.0.0.2:110", "alice@example.com"),
            0xed1942d4aa09e76bULL);
  EXPECT_EQ(StableHash64("a", "bc"), 0xce539994efd4b79eULL);
  EXPECT_EQ(StableHash64("ab", "c"), 0xf16d5e79f4ecb59aULL);
}

TEST(StableHash64Test, FieldBoundaryMatters) {
  EXPECT_NE(StableHash64("a", "bc"), StableHash64("ab", "c"));
  EXPECT_NE(StableHash64("", "ab"), StableHash64("ab", ""));
  EXPECT_NE(StableHash64(std::string("a\0", 2), ""), StableHash64("a", ""));
}

TEST(PickRendezvousTest, GoldenPicks) {
  const std::vector<WeightedNode> nodes = Nodes({1, 1, 2, 1});
  EXPECT_EQ(PickRendezvous("alice@example.com", nodes), 1u);
  EXPECT_EQ(PickRendezvous("bob@example.com", nodes), 1u);
  EXPECT_EQ(PickRendezvous("carol@example.org", nodes), 3u);
  EXPECT_EQ(PickRendezvous("dave", nodes), 3u);
  EXPECT_EQ(PickRendezvous("eve@x.y", nodes), 1u);
}

TEST(PickRendezvousTest, SingleNode) {
  const std::vector<WeightedNode> nodes = Nodes({7});
  EXPECT_EQ(PickRendezvous("anyone", nodes), 0u);
}

TEST(PickRendezvousTest, DeterministicAndOrderIndependent) {
  std::vector<WeightedNode> nodes = Nodes({1, 2, 3, 4, 5});
  std::vector<WeightedNode> reversed(nodes.rbegin(), nodes.rend());
  for (size_t i = 0; i < 2000; ++i) {
    const std::string& user = Users(2000)[i];
    const size_t a = PickRendezvous(user, nodes);
    EXPECT_EQ(PickRendezvous(user, nodes), a);
    EXPECT_EQ(reversed[PickRendezvous(user, reversed)].id, nodes[a].id);
  }
}

void ExpectBalanced(const std::vector<uint32_t>& weights) {
  const std::vector<WeightedNode> nodes = Nodes(weights);
  const std::vector<std::string>& users = Users(100000);
  std::vector<size_t> count(nodes.size());
  for (const std::string& user : users) ++count[PickRendezvous(user, nodes)];
  double total_weight = 0;
  for (uint32_t w : weights) total_weight += w;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const double expected = users.size() * weights[i] / total_weight;
    EXPECT_NEAR(count[i], expected, 0.10 * expected)
        << "backend " << i << " weight " << weights[i];
  }
}

TEST(PickRendezvousTest, BalancedEqualWeights) {
  ExpectBalanced({1, 1, 1, 1, 1});
}

TEST(PickRendezvousTest, BalancedUnequalWeights) {
  ExpectBalanced({1, 2, 3, 4});
}

TEST(PickRendezvousTest, BalancedLargeWeights) {
  ExpectBalanced({100, 1000, 500});
}

constexpr size_t kMovementUsers = 20000;

// Adding a backend to N moves ~1/(N+1) of the users, all of them to the
// new backend: nobody moves between the old ones.
TEST(PickRendezvousTest, AddingABackendMovesOnlyToIt) {
  const std::vector<std::string>& users = Users(kMovementUsers);
  for (size_t n = 4; n <= 8; ++n) {
    std::vector<WeightedNode> before = Nodes(std::vector<uint32_t>(n, 1));
    std::vector<WeightedNode> after = Nodes(std::vector<uint32_t>(n + 1, 1));
    size_t moved = 0;
    for (size_t i = 0; i < kMovementUsers; ++i) {
      const size_t a = PickRendezvous(users[i], before);
      const size_t b = PickRendezvous(users[i], after);
      if (after[b].id != before[a].id) {
        ++moved;
        EXPECT_EQ(b, n) << users[i] << " moved between old backends";
      }
    }
    const double expected = static_cast<double>(kMovementUsers) / (n + 1);
    EXPECT_NEAR(moved, expected, 0.10 * expected) << "n=" << n;
  }
}

// Removing a backend moves exactly its users and nobody else.
TEST(PickRendezvousTest, RemovingABackendMovesOnlyItsUsers) {
  const std::vector<std::string>& users = Users(kMovementUsers);
  for (size_t n = 4; n <= 8; ++n) {
    const std::vector<WeightedNode> before = Nodes(std::vector<uint32_t>(n, 1));
    const size_t removed = n / 2;  // not the last: order must not matter
    std::vector<WeightedNode> after = before;
    after.erase(after.begin() + removed);
    size_t moved = 0;
    for (size_t i = 0; i < kMovementUsers; ++i) {
      const size_t a = PickRendezvous(users[i], before);
      const size_t b = PickRendezvous(users[i], after);
      if (a == removed) {
        ++moved;
      } else {
        EXPECT_EQ(after[b].id, before[a].id) << users[i];
      }
    }
    const double expected = static_cast<double>(kMovementUsers) / n;
    EXPECT_NEAR(moved, expected, 0.10 * expected) << "n=" << n;
  }
}

// Raising one backend's weight only pulls users towards it.
TEST(PickRendezvousTest, RaisingAWeightMovesOnlyToThatBackend) {
  const std::vector<std::string>& users = Users(kMovementUsers);
  const std::vector<WeightedNode> before = Nodes({1, 1, 1, 1});
  const std::vector<WeightedNode> after = Nodes({1, 3, 1, 1});
  for (size_t i = 0; i < kMovementUsers; ++i) {
    const size_t a = PickRendezvous(users[i], before);
    const size_t b = PickRendezvous(users[i], after);
    if (a != b) {
      EXPECT_EQ(b, 1u) << users[i];
    }
  }
}

}  // namespace
}  // namespace popgate::routing
