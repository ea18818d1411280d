// auth = "file": the tenant's auth cache (auth/auth_cache.h) in front of
// the hash pool.
#ifndef POPGATE_SESSION_LOGIN_CACHE_H_
#define POPGATE_SESSION_LOGIN_CACHE_H_

#include <cstddef>
#include <optional>
#include <string_view>

namespace popgate {

struct Snapshot;

// The cached verdict for (user, password) of tenant `t`, nullopt on a
// miss or when the tenant has no cache.
std::optional<bool> CachedVerdict(const Snapshot& snap, size_t t,
                                  std::string_view user,
                                  std::string_view password);
// Remembers a verdict the hash pool gave (only for users that exist: an
// unknown user's "no" is cheap to repeat and must not fill the cache).
void RememberVerdict(const Snapshot& snap, size_t t, std::string_view user,
                     std::string_view password, bool good);

}  // namespace popgate

#endif  // POPGATE_SESSION_LOGIN_CACHE_H_
