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
  kDown,        // health: down
  kDraining,    // state = "drain"
  kForcedDown,  // state = "down"
  kFull,        // max_connections reached
};
// "down", "drain", "forced_down", "full": for the session log's detail.
std::string_view PickRefusalName(PickRefusal r);

struct BackendPick {
  int index = -1;  // into the tenant's backends; -1: none (see `refusal`)
  // When index == -1: why ranked[first] (the user's own choice when first
  // is 0) was passed over; kNone when nothing was considered (first past
  // the end, or first > 0 under Failover::kNone).
  PickRefusal refusal = PickRefusal::kNone;
  // Position in `ranked` of `index` (0: the user's first choice), i.e. how
  // many of the user's backends were passed over, counting the `first`
  // already tried: fail-overs, for the log and the figures. When index is
  // -1: how far the walk got.
  int skipped = 0;
};

// Walks `ranked` (best first) and takes the first backend that is
// operator-up, not health-down and, under its max_connections, acquires
// its session slot (the caller Releases it when the session ends). With
// Failover::kNone only ranked[0] is considered. `health` and `specs` are
// per tenant backend (same indexing as `ranked`'s values); a null (or
// missing) health entry counts as usable and takes no slot. `first` skips
// the first entries of `ranked` (already tried by this login).
// Per candidate, in this order: state "down" -> kForcedDown, "drain" ->
// kDraining, health down -> kDown, TryAcquire(max_connections) fails ->
// kFull; the slot is tried last, so a refused candidate holds none.
BackendPick PickBackend(std::span<const uint32_t> ranked, Failover failover,
                        std::span<const routing::BackendSpec> specs,
                        std::span<const std::shared_ptr<BackendHealth>> health,
                        absl::Time now, size_t first = 0);

}  // namespace popgate

#endif  // POPGATE_BACKEND_BACKEND_PICK_H_
