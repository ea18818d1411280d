#include "routing/rendezvous.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace popgate::routing {
namespace {

// Constants are part of the routing contract: changing any of them moves
// users between backends on upgrade. Do not touch without a migration plan.
constexpr uint64_t kSeed = 0x706f70676174652dULL;  // "popgate-"
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// SplitMix64 finaliser: a bijection with full avalanche, so every input bit
// affects every output bit.
constexpr uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Explicit little-endian assembly so the result does not depend on the
// host's byte order or alignment rules.
uint64_t Load(const char* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    w |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return w;
}

uint64_t Absorb(uint64_t h, std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8)
    h = Mix(h ^ Load(s.data() + i, 8)) + kGolden;
  if (i < s.size()) h = Mix(h ^ Load(s.data() + i, s.size() - i)) + kGolden;
  // The length closes the field, so ("ab", "c") and ("a", "bc") differ and
  // zero padding of the last word is unambiguous.
  return Mix(h ^ (static_cast<uint64_t>(s.size()) * kGolden));
}

}  // namespace

uint64_t StableHash64(std::string_view a, std::string_view b) {
  uint64_t h = Mix(kSeed);
  h = Absorb(h, a);
  h = Absorb(h, b);
  return Mix(h ^ kSeed);
}

namespace {

// The node's score for `key`: the highest wins.
double Score(std::string_view key, const WeightedNode& node) {
  const uint64_t h = StableHash64(node.id, key);
  // Top 53 bits, offset by half a step: u is strictly inside (0,1), so
  // log(u) is finite and negative.
  const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
  return -static_cast<double>(node.weight) / std::log(u);
}

}  // namespace

size_t PickRendezvous(std::string_view key,
                      std::span<const WeightedNode> nodes) {
  size_t best = 0;
  double best_score = -1.0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const double score = Score(key, nodes[i]);
    // Ties (only for duplicate ids in practice) go to the smaller id so the
    // result does not depend on the order nodes are listed in.
    if (score > best_score ||
        (score == best_score && nodes[i].id < nodes[best].id)) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

void RankRendezvous(std::string_view key, std::span<const WeightedNode> nodes,
                    std::span<uint32_t> order) {
  // Pools are small (a handful of backends): score each once, then sort.
  absl::InlinedVector<double, 8> score(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    score[i] = Score(key, nodes[i]);
    order[i] = static_cast<uint32_t>(i);
  }
  // The same tie rule as PickRendezvous, so order[0] is always its winner.
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (score[a] != score[b]) return score[a] > score[b];
    return nodes[a].id < nodes[b].id;
  });
}

}  // namespace popgate::routing
