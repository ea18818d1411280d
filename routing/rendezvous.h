// Weighted rendezvous (highest random weight) hashing: every popgate
// instance maps a user to the same backend without coordination, and
// changing the pool moves only the users that must move.
#ifndef POPGATE_ROUTING_RENDEZVOUS_H_
#define POPGATE_ROUTING_RENDEZVOUS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace popgate::routing {

struct WeightedNode {
  std::string id;       // stable identity, e.g. "10.0.0.5:110"
  uint32_t weight = 1;  // > 0
};

// Index into `nodes` of the winner for `key`; nodes must be non-empty.
// Uses score = -weight / ln(u), u = hash(id, key) mapped to (0,1).
size_t PickRendezvous(std::string_view key, std::span<const WeightedNode> nodes);

// Every node's index, best first: order[0] == PickRendezvous(key, nodes).
// The order of the others is what fail-over follows: removing the winner
// makes order[1] the winner, and so on (rendezvous hashing's property), so
// only the removed node's keys move, spread by weight over the rest.
// `order.size()` must equal `nodes.size()`.
void RankRendezvous(std::string_view key, std::span<const WeightedNode> nodes,
                    std::span<uint32_t> order);

// A stable 64-bit hash (not std::hash: it must be the same across builds
// and instances).
uint64_t StableHash64(std::string_view a, std::string_view b);

}  // namespace popgate::routing

#endif  // POPGATE_ROUTING_RENDEZVOUS_H_
