#include "backend/backend_pick.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backend/backend_health.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "routing/routing_table.h"

namespace popgate {
namespace {

using routing::AdminState;
using routing::BackendSpec;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// A pool of `n` backends, all up, unlimited, each with its own health.
struct Pool {
  explicit Pool(int n) {
    HealthCheckConfig policy;
    policy.active = true;
    for (int i = 0; i < n; ++i) {
      const std::string address = "10.0.0." + std::to_string(i + 1) + ":110";
      specs.push_back(BackendSpec{address, 1, AdminState::kUp, 0});
      health.push_back(std::make_shared<BackendHealth>("t", address));
      health.back()->SetPolicy(policy);
    }
  }
  // Health-down through the checker's own path: `fall` failed checks.
  void MarkDown(int i) {
    HealthCheckConfig policy;
    policy.active = true;
    for (int k = 0; k < policy.fall; ++k) {
      health[i]->RecordCheck(false, "connect refused", kNow);
    }
    ASSERT_EQ(health[i]->state(kNow), HealthState::kDown);
  }
  BackendPick Pick(const std::vector<uint32_t>& ranked, Failover failover,
                   size_t first = 0) {
    return PickBackend(ranked, failover, specs, health, kNow, first);
  }
  uint32_t Sessions(int i) const { return health[i]->sessions(); }

  std::vector<BackendSpec> specs;
  std::vector<std::shared_ptr<BackendHealth>> health;
};

TEST(PickRefusalNameTest, StableNames) {
  EXPECT_EQ(PickRefusalName(PickRefusal::kNone), "none");
  EXPECT_EQ(PickRefusalName(PickRefusal::kDown), "down");
  EXPECT_EQ(PickRefusalName(PickRefusal::kDraining), "drain");
  EXPECT_EQ(PickRefusalName(PickRefusal::kForcedDown), "forced_down");
  EXPECT_EQ(PickRefusalName(PickRefusal::kFull), "full");
}

TEST(PickBackendTest, AllUpTakesTheFirstChoiceAndOneSlot) {
  Pool pool(3);
  for (Failover f : {Failover::kNone, Failover::kNext}) {
    const BackendPick pick = pool.Pick({2, 0, 1}, f);
    EXPECT_EQ(pick.index, 2);
    EXPECT_EQ(pick.skipped, 0);
    EXPECT_EQ(pick.refusal, PickRefusal::kNone);
    EXPECT_EQ(pool.Sessions(2), 1u);
    EXPECT_EQ(pool.Sessions(0), 0u);
    EXPECT_EQ(pool.Sessions(1), 0u);
    pool.health[2]->Release();
  }
}

TEST(PickBackendTest, UnknownHealthIsUsable) {
  Pool pool(2);
  ASSERT_EQ(pool.health[1]->state(kNow), HealthState::kUnknown);
  EXPECT_EQ(pool.Pick({1, 0}, Failover::kNone).index, 1);
}

TEST(PickBackendTest, NoneRefusesAtOnceWhenTheUsersBackendIsDown) {
  Pool pool(3);
  pool.MarkDown(1);
  const BackendPick pick = pool.Pick({1, 0, 2}, Failover::kNone);
  EXPECT_EQ(pick.index, -1);
  EXPECT_EQ(pick.refusal, PickRefusal::kDown);
  // Nobody else moves: the others were not even asked for a slot.
  EXPECT_EQ(pool.Sessions(0), 0u);
  EXPECT_EQ(pool.Sessions(2), 0u);
}

TEST(PickBackendTest, NoneHasNothingAfterTheFirst) {
  Pool pool(3);
  const BackendPick pick = pool.Pick({1, 0, 2}, Failover::kNone, 1);
  EXPECT_EQ(pick.index, -1);
  EXPECT_EQ(pick.refusal, PickRefusal::kNone);
  EXPECT_EQ(pool.Sessions(0) + pool.Sessions(1) + pool.Sessions(2), 0u);
}

TEST(PickBackendTest, NextTakesTheNextInTheUsersOwnOrder) {
  Pool pool(4);
  pool.MarkDown(3);
  BackendPick pick = pool.Pick({3, 1, 0, 2}, Failover::kNext);
  EXPECT_EQ(pick.index, 1);
  EXPECT_EQ(pick.skipped, 1);
  EXPECT_EQ(pool.Sessions(1), 1u);
  pool.health[1]->Release();

  pool.specs[1].state = AdminState::kDrain;
  pick = pool.Pick({3, 1, 0, 2}, Failover::kNext);
  EXPECT_EQ(pick.index, 0);
  EXPECT_EQ(pick.skipped, 2);
  EXPECT_EQ(pick.refusal, PickRefusal::kNone);
}

TEST(PickBackendTest, FirstSkipsWhatTheLoginAlreadyTried) {
  Pool pool(3);
  // ranked[0] is fine, but this login could not connect to it.
  const BackendPick pick = pool.Pick({0, 2, 1}, Failover::kNext, 1);
  EXPECT_EQ(pick.index, 2);
  EXPECT_EQ(pick.skipped, 1);
  EXPECT_EQ(pool.Sessions(0), 0u);
  EXPECT_EQ(pool.Sessions(2), 1u);
}

TEST(PickBackendTest, FirstPastTheEndIsNoCandidate) {
  Pool pool(2);
  const BackendPick pick = pool.Pick({0, 1}, Failover::kNext, 2);
  EXPECT_EQ(pick.index, -1);
  EXPECT_EQ(pick.refusal, PickRefusal::kNone);
}

TEST(PickBackendTest, EachRefusalReason) {
  struct Case {
    AdminState state;
    bool health_down;
    bool full;
    PickRefusal want;
  };
  const Case cases[] = {
      {AdminState::kDown, false, false, PickRefusal::kForcedDown},
      {AdminState::kDrain, false, false, PickRefusal::kDraining},
      {AdminState::kUp, true, false, PickRefusal::kDown},
      {AdminState::kUp, false, true, PickRefusal::kFull},
      // The operator's word first, then health, then the slot.
      {AdminState::kDown, true, true, PickRefusal::kForcedDown},
      {AdminState::kDrain, true, true, PickRefusal::kDraining},
      {AdminState::kUp, true, true, PickRefusal::kDown},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.want));
    Pool pool(2);
    pool.specs[0].state = c.state;
    if (c.health_down) pool.MarkDown(0);
    if (c.full) {
      pool.specs[0].max_connections = 1;
      ASSERT_TRUE(pool.health[0]->TryAcquire(1));
    }
    const uint32_t before = pool.Sessions(0);
    BackendPick pick = pool.Pick({0, 1}, Failover::kNone);
    EXPECT_EQ(pick.index, -1);
    EXPECT_EQ(pick.refusal, c.want);
    EXPECT_EQ(pool.Sessions(0), before);  // a refused candidate took no slot
    pick = pool.Pick({0, 1}, Failover::kNext);
    EXPECT_EQ(pick.index, 1);
    EXPECT_EQ(pick.skipped, 1);
    EXPECT_EQ(pool.Sessions(0), before);
    EXPECT_EQ(pool.Sessions(1), 1u);
  }
}

TEST(PickBackendTest, RefusalIsTheUsersOwnChoices) {
  Pool pool(3);
  pool.specs[2].state = AdminState::kDrain;
  pool.specs[0].max_connections = 1;
  ASSERT_TRUE(pool.health[0]->TryAcquire(1));
  pool.MarkDown(1);
  const BackendPick pick = pool.Pick({2, 0, 1}, Failover::kNext);
  EXPECT_EQ(pick.index, -1);
  EXPECT_EQ(pick.refusal, PickRefusal::kDraining);
  EXPECT_EQ(pick.skipped, 3);
  EXPECT_EQ(pool.Sessions(0), 1u);  // only the test's own slot
  EXPECT_EQ(pool.Sessions(1), 0u);
  EXPECT_EQ(pool.Sessions(2), 0u);

  // With `first`, the refusal is that of ranked[first].
  EXPECT_EQ(pool.Pick({2, 0, 1}, Failover::kNext, 1).refusal,
            PickRefusal::kFull);
}

TEST(PickBackendTest, MaxConnectionsCountsAndFrees) {
  Pool pool(2);
  pool.specs[0].max_connections = 2;
  EXPECT_EQ(pool.Pick({0, 1}, Failover::kNone).index, 0);
  EXPECT_EQ(pool.Pick({0, 1}, Failover::kNone).index, 0);
  EXPECT_EQ(pool.Sessions(0), 2u);
  BackendPick pick = pool.Pick({0, 1}, Failover::kNone);
  EXPECT_EQ(pick.index, -1);
  EXPECT_EQ(pick.refusal, PickRefusal::kFull);
  EXPECT_EQ(pool.Sessions(0), 2u);
  pick = pool.Pick({0, 1}, Failover::kNext);
  EXPECT_EQ(pick.index, 1);
  EXPECT_EQ(pool.Sessions(1), 1u);  // 0 = no limit, still counted
  pool.health[0]->Release();
  EXPECT_EQ(pool.Pick({0, 1}, Failover::kNone).index, 0);
  EXPECT_EQ(pool.Sessions(0), 2u);
}

TEST(PickBackendTest, RepeatedRefusalsLeakNoSlot) {
  Pool pool(3);
  pool.specs[0].max_connections = 1;
  pool.specs[1].max_connections = 1;
  ASSERT_TRUE(pool.health[0]->TryAcquire(1));
  ASSERT_TRUE(pool.health[1]->TryAcquire(1));
  pool.specs[2].state = AdminState::kDrain;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(pool.Pick({0, 1, 2}, Failover::kNext).index, -1);
  }
  EXPECT_EQ(pool.Sessions(0), 1u);
  EXPECT_EQ(pool.Sessions(1), 1u);
  EXPECT_EQ(pool.Sessions(2), 0u);
  pool.health[1]->Release();
  EXPECT_EQ(pool.Pick({0, 1, 2}, Failover::kNext).index, 1);
}

TEST(PickBackendTest, MissingHealthCountsAsUsable) {
  Pool pool(2);
  std::vector<std::shared_ptr<BackendHealth>> none(2);
  const std::vector<uint32_t> ranked = {1, 0};
  BackendPick pick =
      PickBackend(ranked, Failover::kNone, pool.specs, none, kNow);
  EXPECT_EQ(pick.index, 1);
  // The operator's state still applies.
  pool.specs[1].state = AdminState::kDrain;
  pick = PickBackend(ranked, Failover::kNext, pool.specs, none, kNow);
  EXPECT_EQ(pick.index, 0);
}

TEST(PickBackendTest, RankedOutOfRangeIsRefused) {
  Pool pool(2);
  EXPECT_EQ(pool.Pick({5, 0}, Failover::kNext).index, -1);
  EXPECT_EQ(pool.Pick({}, Failover::kNext).index, -1);
  EXPECT_EQ(pool.Pick({}, Failover::kNone).index, -1);
}

}  // namespace
}  // namespace popgate
