#include "auth/login_counters.h"

#include <openssl/rand.h>
#include <openssl/siphash.h>

#include <algorithm>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"

namespace popgate::auth {
namespace {

// How often a shard drops expired entries when it is not full (when full:
// at most once a second before it evicts a live one).
constexpr absl::Duration kSweepEvery = absl::Seconds(60);
constexpr absl::Duration kFullSweepEvery = absl::Seconds(1);
// Entries looked at to pick one to evict from a full shard. The map's
// order is its hash order, which is random with respect to age.
constexpr int kEvictionSample = 8;

int64_t WindowSeconds(const ThrottleSettings& s) {
  return std::max<int64_t>(1, absl::ToInt64Seconds(s.window));
}

// Where `now` falls in the two-bucket window.
struct WindowPos {
  int64_t w;        // window length, seconds
  int64_t bucket;   // floor(t / w)
  int64_t elapsed;  // t - bucket * w
  int64_t t;        // unix seconds
};

WindowPos PosOf(absl::Time now, const ThrottleSettings& s) {
  WindowPos p;
  p.w = WindowSeconds(s);
  p.t = absl::ToUnixSeconds(now);
  // Floor division (a time before 1970 would round the wrong way).
  p.bucket = p.t / p.w - ((p.t % p.w) < 0 ? 1 : 0);
  p.elapsed = p.t - p.bucket * p.w;
  return p;
}

// Failures in two fixed buckets: `cur` in bucket `bucket`, `prev` in the
// one before. Counted with the window length they were counted under (a
// reload that changes failure_window starts them again).
struct Window {
  int64_t w = 0;
  int64_t bucket = 0;
  uint32_t cur = 0;
  uint32_t prev = 0;

  int Count(const WindowPos& p) const {
    uint64_t c = 0;
    uint64_t pr = 0;
    if (w != p.w) return 0;
    if (p.bucket == bucket) {
      c = cur;
      pr = prev;
    } else if (p.bucket == bucket + 1) {
      pr = cur;
    }
    const uint64_t weighted = pr * static_cast<uint64_t>(p.w - p.elapsed) /
                              static_cast<uint64_t>(p.w);
    return static_cast<int>(std::min<uint64_t>(c + weighted, INT32_MAX));
  }
  void Add(const WindowPos& p) {
    if (w != p.w || p.bucket < bucket || p.bucket > bucket + 1) {
      prev = 0;
      cur = 0;
    } else if (p.bucket == bucket + 1) {
      prev = cur;
      cur = 0;
    }
    w = p.w;
    bucket = p.bucket;
    if (cur < UINT32_MAX) ++cur;
  }
};

struct UserMark {
  uint64_t user;
  int64_t last;  // unix seconds of its last failure from the address
};

struct AddressEntry {
  Window failures;
  absl::InlinedVector<UserMark, 4> users;
  absl::Time block_until = absl::InfinitePast();
  absl::Time expire_at = absl::InfinitePast();

  int Users(const WindowPos& p) const {
    int n = 0;
    for (const UserMark& m : users) n += p.t - m.last < p.w ? 1 : 0;
    return n;
  }
  // The user among the address's failing users: refreshed if known, else
  // added, replacing the stalest when `cap` are held.
  void AddUser(uint64_t user, const WindowPos& p, size_t cap) {
    users.erase(
        std::remove_if(users.begin(), users.end(),
                       [&](const UserMark& m) { return p.t - m.last >= p.w; }),
        users.end());
    for (UserMark& m : users) {
      if (m.user == user) {
        m.last = p.t;
        return;
      }
    }
    if (users.size() < cap) {
      users.push_back(UserMark{user, p.t});
      return;
    }
    auto stalest = std::min_element(
        users.begin(), users.end(),
        [](const UserMark& a, const UserMark& b) { return a.last < b.last; });
    *stalest = UserMark{user, p.t};
  }
};

struct UserEntry {
  Window failures;
  absl::Time block_until = absl::InfinitePast();
  absl::Time expire_at = absl::InfinitePast();
};

// A failure's entry lives for two windows (the previous bucket still
// counts) or until its block ends, whichever is later.
absl::Time ExpiryAfterFailure(absl::Time now, absl::Time block_until,
                              const ThrottleSettings& s) {
  return std::max(now + 2 * absl::Seconds(WindowSeconds(s)), block_until);
}

template <typename Map>
void DropExpired(Map& m, absl::Time now) {
  for (auto it = m.begin(); it != m.end();) {
    if (it->second.expire_at <= now) {
      m.erase(it++);
    } else {
      ++it;
    }
  }
}

// The entry of `h`, made if new: a full map first drops what expired,
// then the entry that expires first among a few.
template <typename Map>
typename Map::mapped_type& FindOrMake(Map& m, uint64_t h, size_t cap,
                                      absl::Time now, absl::Time& last_sweep) {
  auto it = m.find(h);
  if (it != m.end()) return it->second;
  if (now - last_sweep >= kSweepEvery ||
      (m.size() >= cap && now - last_sweep >= kFullSweepEvery)) {
    last_sweep = now;
    DropExpired(m, now);
  }
  if (m.size() >= cap && !m.empty()) {
    auto victim = m.begin();
    int seen = 0;
    for (auto c = m.begin(); c != m.end() && seen < kEvictionSample;
         ++c, ++seen) {
      if (c->second.expire_at < victim->second.expire_at) victim = c;
    }
    m.erase(victim);
  }
  return m.try_emplace(h).first->second;
}

}  // namespace

struct LoginCounters::Shard {
  mutable std::mutex mu;
  absl::flat_hash_map<uint64_t, AddressEntry> addresses;
  absl::flat_hash_map<uint64_t, UserEntry> users;
  absl::flat_hash_map<uint64_t, int> sessions;  // only while > 0
  absl::Time addresses_swept = absl::InfinitePast();
  absl::Time users_swept = absl::InfinitePast();
};

LoginCounters::LoginCounters(Bounds bounds)
    : bounds_(bounds),
      address_cap_per_shard_(
          std::max<size_t>(1, (bounds.max_addresses + kShards - 1) / kShards)),
      user_cap_per_shard_(
          std::max<size_t>(1, (bounds.max_users + kShards - 1) / kShards)),
      shards_(new Shard[kShards]) {
  RAND_bytes(reinterpret_cast<uint8_t*>(key_), sizeof(key_));
}

LoginCounters::~LoginCounters() = default;

LoginCounters& LoginCounters::Process() {
  static LoginCounters* const counters = new LoginCounters();
  return *counters;
}

uint64_t LoginCounters::Hash(std::string_view key) const {
  return SIPHASH_24(key_, reinterpret_cast<const uint8_t*>(key.data()),
                    key.size());
}

LoginCounters::Shard& LoginCounters::ShardOf(uint64_t h) const {
  // The map hashes the key again: the top bits pick the shard.
  return shards_[h >> 58 & (kShards - 1)];
}

LoginCounts LoginCounters::Look(std::string_view address, std::string_view user,
                                const ThrottleSettings& s, absl::Time now) {
  LoginCounts c;
  const WindowPos p = PosOf(now, s);
  if (!address.empty()) {
    const uint64_t h = Hash(address);
    Shard& sh = ShardOf(h);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.addresses.find(h);
    if (it != sh.addresses.end() && it->second.expire_at <= now) {
      sh.addresses.erase(it);
    } else if (it != sh.addresses.end()) {
      c.address_failures = it->second.failures.Count(p);
      c.address_users = it->second.Users(p);
      c.address_blocked = it->second.block_until > now;
    }
  }
  if (!user.empty()) {
    const uint64_t h = Hash(user);
    Shard& sh = ShardOf(h);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.users.find(h);
    if (it != sh.users.end() && it->second.expire_at <= now) {
      sh.users.erase(it);
    } else if (it != sh.users.end()) {
      c.user_failures = it->second.failures.Count(p);
      c.user_blocked = it->second.block_until > now;
    }
  }
  return c;
}

LoginCounts LoginCounters::RecordFailure(std::string_view address,
                                         std::string_view user,
                                         const ThrottleSettings& s,
                                         absl::Time now) {
  LoginCounts c;
  const WindowPos p = PosOf(now, s);
  const uint64_t ah = address.empty() ? 0 : Hash(address);
  const uint64_t uh = user.empty() ? 0 : Hash(user);
  // The set only has to reach the threshold to block: no bigger.
  const size_t user_cap =
      s.address_users_to_block > 0
          ? std::min(kMaxUsersPerAddress, s.address_users_to_block)
          : kMaxUsersPerAddress;
  if (!address.empty()) {
    Shard& sh = ShardOf(ah);
    std::lock_guard<std::mutex> lock(sh.mu);
    AddressEntry& e = FindOrMake(sh.addresses, ah, address_cap_per_shard_, now,
                                 sh.addresses_swept);
    if (e.expire_at <= now) e = AddressEntry{};  // an old one: start again
    e.failures.Add(p);
    if (!user.empty()) e.AddUser(uh, p, user_cap);
    e.expire_at = ExpiryAfterFailure(now, e.block_until, s);
    c.address_failures = e.failures.Count(p);
    c.address_users = e.Users(p);
    c.address_blocked = e.block_until > now;
  }
  if (!user.empty()) {
    Shard& sh = ShardOf(uh);
    std::lock_guard<std::mutex> lock(sh.mu);
    UserEntry& e =
        FindOrMake(sh.users, uh, user_cap_per_shard_, now, sh.users_swept);
    if (e.expire_at <= now) e = UserEntry{};
    e.failures.Add(p);
    e.expire_at = ExpiryAfterFailure(now, e.block_until, s);
    c.user_failures = e.failures.Count(p);
    c.user_blocked = e.block_until > now;
  }

  // Blocks: set only where none runs yet, so one caller sees it new.
  const FailureEffect effect = AfterFailure(c, s);
  const absl::Time until = now + s.block_time;
  if (effect.block_address && !address.empty() && until > now) {
    Shard& sh = ShardOf(ah);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.addresses.find(ah);
    if (it != sh.addresses.end() && it->second.block_until <= now) {
      it->second.block_until = until;
      it->second.expire_at = std::max(it->second.expire_at, until);
      c.address_block_new = true;
    }
    c.address_blocked = it != sh.addresses.end();
  }
  if (effect.block_user && !user.empty() && until > now) {
    Shard& sh = ShardOf(uh);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.users.find(uh);
    if (it != sh.users.end() && it->second.block_until <= now) {
      it->second.block_until = until;
      it->second.expire_at = std::max(it->second.expire_at, until);
      c.user_block_new = true;
    }
    c.user_blocked = it != sh.users.end();
  }
  return c;
}

bool LoginCounters::AcquireUserSession(std::string_view user, int limit) {
  const uint64_t h = Hash(user);
  Shard& sh = ShardOf(h);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.sessions.find(h);
  const int open = it == sh.sessions.end() ? 0 : it->second;
  if (limit > 0 && open >= limit) return false;
  if (it == sh.sessions.end()) {
    sh.sessions.emplace(h, 1);
  } else {
    ++it->second;
  }
  return true;
}

void LoginCounters::ReleaseUserSession(std::string_view user) {
  const uint64_t h = Hash(user);
  Shard& sh = ShardOf(h);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.sessions.find(h);
  if (it == sh.sessions.end()) return;
  if (--it->second <= 0) sh.sessions.erase(it);
}

int LoginCounters::user_sessions(std::string_view user) const {
  const uint64_t h = Hash(user);
  Shard& sh = ShardOf(h);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.sessions.find(h);
  return it == sh.sessions.end() ? 0 : it->second;
}

size_t LoginCounters::address_entries() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    n += shards_[i].addresses.size();
  }
  return n;
}

size_t LoginCounters::user_entries() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    n += shards_[i].users.size();
  }
  return n;
}

}  // namespace popgate::auth
