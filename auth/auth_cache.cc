#include "auth/auth_cache.h"

#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace popgate::auth {

namespace {

// Enough shards that workers (and the pool's completions resuming on
// them) rarely meet on one lock; each lock is held for one table probe.
constexpr size_t kMaxShards = 16;
// Expired entries at the front of each of a shard's queues dropped per
// Insert, before anything live is evicted: memory goes back without
// waiting for the shard to fill.
constexpr size_t kTrimPerInsert = 2;

constexpr size_t kSecretSize = 32;

// Made once per process and never written anywhere: a key can be matched
// to a guess only by a process holding it, so a dump of the table (a core
// file) gives nothing to attack offline.
const std::array<uint8_t, kSecretSize>& Secret() {
  static const std::array<uint8_t, kSecretSize> secret = [] {
    std::array<uint8_t, kSecretSize> s;
    // BoringSSL's RAND_bytes cannot fail (it aborts instead).
    RAND_bytes(s.data(), s.size());
    return s;
  }();
  return secret;
}

struct Entry {
  int64_t expires_ns;  // absl::ToUnixNanos
  bool good;
};

}  // namespace

// Good and failed verdicts queue apart, each oldest first. Within a queue
// every entry had the same TTL, so its front is the one expiring soonest
// (an entry refreshed in place keeps its place and goes a little early).
// Failed verdicts may hold at most half of the shard: a stuffing attacker
// sending a new wrong password every time fills that half and no more,
// and the good users' entries keep the other half.
struct alignas(64) AuthCache::Shard {
  mutable std::mutex mu;
  size_t capacity = 0;
  size_t bad_capacity = 0;
  absl::flat_hash_map<Key, Entry> map;
  std::deque<Key> good_order;  // map == good_order + bad_order
  std::deque<Key> bad_order;

  void DropFront(std::deque<Key>& q) {
    map.erase(q.front());
    q.pop_front();
  }
  void TrimExpired(std::deque<Key>& q, int64_t now_ns) {
    for (size_t i = 0; i < kTrimPerInsert && !q.empty(); ++i) {
      if (map.find(q.front())->second.expires_ns > now_ns) break;
      DropFront(q);
    }
  }
};

AuthCache::AuthCache(size_t max_entries, absl::Duration ttl,
                     absl::Duration negative_ttl)
    : max_entries_(max_entries), ttl_(ttl), negative_ttl_(negative_ttl) {
  num_shards_ = std::clamp<size_t>(max_entries, 1, kMaxShards);
  shards_ = std::make_unique<Shard[]>(num_shards_);
  // The capacities add up to max_entries exactly (every one >= 1 unless
  // the cache is off).
  for (size_t i = 0; i < num_shards_; ++i) {
    Shard& s = shards_[i];
    s.capacity =
        max_entries / num_shards_ + (i < max_entries % num_shards_ ? 1 : 0);
    s.bad_capacity = std::max<size_t>(s.capacity / 2, 1);
  }
  Secret();  // the first login should not pay for it
}

AuthCache::~AuthCache() = default;

AuthCache::Key AuthCache::KeyOf(std::string_view user,
                                std::string_view password) {
  const std::array<uint8_t, kSecretSize>& secret = Secret();
  bssl::ScopedHMAC_CTX ctx;
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  const uint8_t zero = 0;
  // One-shot HMAC() would need user, NUL and password in one buffer: a
  // copy of the password. The context is wiped by its destructor.
  HMAC_Init_ex(ctx.get(), secret.data(), secret.size(), EVP_sha256(), nullptr);
  HMAC_Update(ctx.get(), reinterpret_cast<const uint8_t*>(user.data()),
              user.size());
  HMAC_Update(ctx.get(), &zero, 1);
  HMAC_Update(ctx.get(), reinterpret_cast<const uint8_t*>(password.data()),
              password.size());
  HMAC_Final(ctx.get(), mac, &mac_len);
  Key k;
  std::memcpy(&k.a, mac, sizeof(k.a));
  std::memcpy(&k.b, mac + sizeof(k.a), sizeof(k.b));
  OPENSSL_cleanse(mac, sizeof(mac));
  return k;
}

AuthCache::Shard& AuthCache::ShardOf(const Key& k) const {
  // `b` picks the shard, `a` the slot in it: independent bits.
  return shards_[k.b % num_shards_];
}

AuthCache::Hit AuthCache::Find(std::string_view user, std::string_view password,
                               absl::Time now) const {
  if (max_entries_ == 0 || user.find('\0') != std::string_view::npos) {
    return Hit::kMiss;
  }
  const Key k = KeyOf(user, password);
  const int64_t now_ns = absl::ToUnixNanos(now);
  Shard& s = ShardOf(k);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(k);
  if (it == s.map.end() || it->second.expires_ns <= now_ns) return Hit::kMiss;
  return it->second.good ? Hit::kGood : Hit::kBad;
}

void AuthCache::Insert(std::string_view user, std::string_view password,
                       bool good, absl::Time now) {
  const absl::Duration life = good ? ttl_ : negative_ttl_;
  if (max_entries_ == 0 || life <= absl::ZeroDuration() ||
      user.find('\0') != std::string_view::npos) {
    return;
  }
  const Key k = KeyOf(user, password);
  const int64_t now_ns = absl::ToUnixNanos(now);
  const Entry e{absl::ToUnixNanos(now + life), good};
  Shard& s = ShardOf(k);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(k);
  if (it != s.map.end()) {
    // Keeps its place in its queue (the bounds count queues): a key
    // logged in with again and again is evicted at its first insertion's
    // turn, and costs one hash then.
    it->second = e;
    return;
  }
  s.TrimExpired(s.good_order, now_ns);
  s.TrimExpired(s.bad_order, now_ns);
  if (!good && s.bad_order.size() >= s.bad_capacity) {
    s.DropFront(s.bad_order);
  } else if (s.map.size() >= s.capacity) {
    // Failed verdicts are within their half here: a good one goes (or,
    // in a one-entry shard, the failed one).
    s.DropFront(s.good_order.empty() ? s.bad_order : s.good_order);
  }
  s.map.emplace(k, e);
  (good ? s.good_order : s.bad_order).push_back(k);
}

size_t AuthCache::size() const {
  size_t n = 0;
  for (size_t i = 0; i < num_shards_; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    n += shards_[i].map.size();
  }
  return n;
}

}  // namespace popgate::auth
