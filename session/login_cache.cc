#include "session/login_cache.h"

#include "absl/time/clock.h"
#include "auth/auth_cache.h"
#include "session/snapshot.h"

namespace popgate {

namespace {

auth::AuthCache* CacheOf(const Snapshot& snap, size_t t) {
  return t < snap.auth_cache.size() ? snap.auth_cache[t].get() : nullptr;
}

}  // namespace

std::optional<bool> CachedVerdict(const Snapshot& snap, size_t t,
                                  std::string_view user,
                                  std::string_view password) {
  auth::AuthCache* cache = CacheOf(snap, t);
  if (cache == nullptr) return std::nullopt;
  switch (cache->Find(user, password, absl::Now())) {
    case auth::AuthCache::Hit::kGood:
      return true;
    case auth::AuthCache::Hit::kBad:
      return false;
    case auth::AuthCache::Hit::kMiss:
      break;
  }
  return std::nullopt;
}

void RememberVerdict(const Snapshot& snap, size_t t, std::string_view user,
                     std::string_view password, bool good) {
  if (auth::AuthCache* cache = CacheOf(snap, t); cache != nullptr) {
    cache->Insert(user, password, good, absl::Now());
  }
}

}  // namespace popgate
