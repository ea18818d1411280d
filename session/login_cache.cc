// PLACEHOLDER (issue 10 contract): no cache yet.
#include "session/login_cache.h"

#include "session/snapshot.h"

namespace popgate {

std::optional<bool> CachedVerdict(const Snapshot&, size_t, std::string_view,
                                  std::string_view) {
  return std::nullopt;
}

void RememberVerdict(const Snapshot&, size_t, std::string_view,
                     std::string_view, bool) {}

}  // namespace popgate
