// Choosing the backend for one login from the user's rendezvous order
// (routing::Route::ranked), the operator's states, health and
// max_connections. Pure logic over the snapshot's tables: unit-tested
// without sockets.
#ifndef POPGATE_BACKEND_BACKEND_PICK_H_
#define POPGATE_BACKEND_BACKEND_PICK_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/time/time.h"
#include "backend/backend_health.h"
#include "config/config.h"
#include "routing/routing_table.h"

namespace popgate {

// Why a backend was passed over (the last one decides the refusal).
enum class PickRefusal : uint8_t {
  kNone,
  kDown,      // health: down
  kDraining,  // state = "drain"
  kForcedDown,  // state = "down"
  kFull,      // max_connections reached
};
// "down", "drain", "forced_down", "full": for the session log's detail.
std::string_view PickRefusalName(PickRefusal r);

struct BackendPick {
  int index = -1;  // into the tenant's backends; -1: none (see `refusal`)
  PickRefusal refusal = PickRefusal::kNone;  // of ranked[0] when index==-1
  // How many candidates were passed over before `index` (0: the user's
  // first choice): fail-overs, for the log and the figures.
  int skipped = 0;
};

// Walks `ranked` (best first) and takes the first backend that is
// operator-up, not health-down and, under its max_connections, acquires
// its session slot (the caller Releases it when the session ends). With
// Failover::kNone only ranked[0] is considered. `health` and `specs` are
// per tenant backend (same indexing as `ranked`'s values). `first` skips
// the first entries of `ranked` (already tried by this login).
BackendPick PickBackend(std::span<const uint32_t> ranked, Failover failover,
                        std::span<const routing::BackendSpec> specs,
                        std::span<const std::shared_ptr<BackendHealth>> health,
                        absl::Time now, size_t first = 0);

}  // namespace popgate

#endif  // POPGATE_BACKEND_BACKEND_PICK_H_
