#include "backend/backend_pick.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace popgate {
namespace {

// Why `spec`/`health` cannot take a new session now, or kNone when it can
// (and then its slot is taken). The operator's word comes first: a drained
// or forced-down backend is refused whatever its health, and the slot is
// tried last so that a candidate refused for any other reason holds none.
PickRefusal TryCandidate(const routing::BackendSpec& spec,
                         BackendHealth* health, absl::Time now) {
  // The admin API's drain/up/down, where set, stands in for the config's.
  const routing::AdminState state =
      health != nullptr ? health->EffectiveState(spec.state) : spec.state;
  switch (state) {
    case routing::AdminState::kDown:
      return PickRefusal::kForcedDown;
    case routing::AdminState::kDrain:
      return PickRefusal::kDraining;
    case routing::AdminState::kUp:
      break;
  }
  // No health object (a table built without a registry, e.g. in tools):
  // nothing known against it and nothing to count on.
  if (health == nullptr) return PickRefusal::kNone;
  if (!health->usable(now)) return PickRefusal::kDown;
  if (!health->TryAcquire(spec.max_connections)) return PickRefusal::kFull;
  return PickRefusal::kNone;
}

}  // namespace

std::string_view PickRefusalName(PickRefusal r) {
  switch (r) {
    case PickRefusal::kNone:
      return "none";
    case PickRefusal::kDown:
      return "down";
    case PickRefusal::kDraining:
      return "drain";
    case PickRefusal::kForcedDown:
      return "forced_down";
    case PickRefusal::kFull:
      return "full";
  }
  return "unknown";
}

BackendPick PickBackend(std::span<const uint32_t> ranked, Failover failover,
                        std::span<const routing::BackendSpec> specs,
                        std::span<const std::shared_ptr<BackendHealth>> health,
                        absl::Time now, size_t first) {
  BackendPick pick;
  // Sharded storage: the user's mail is on ranked[0] and nowhere else, so a
  // login that already tried it (first > 0) has nowhere left to go.
  const size_t end =
      failover == Failover::kNone ? (ranked.empty() ? 0 : 1) : ranked.size();
  for (size_t pos = first; pos < end; ++pos) {
    const uint32_t index = ranked[pos];
    // A ranked list from another snapshot than the specs would be a caller
    // bug; refusing it beats indexing out of bounds.
    if (index >= specs.size()) break;
    BackendHealth* h = index < health.size() ? health[index].get() : nullptr;
    const PickRefusal refusal = TryCandidate(specs[index], h, now);
    if (refusal == PickRefusal::kNone) {
      pick.index = static_cast<int>(index);
      pick.refusal = PickRefusal::kNone;
      pick.skipped = static_cast<int>(pos);
      return pick;
    }
    // The user's own choice explains the refusal: "your backend is
    // draining" says more than why the last fallback was full.
    if (pos == first) pick.refusal = refusal;
    pick.skipped = static_cast<int>(pos + 1);
  }
  return pick;
}

}  // namespace popgate
