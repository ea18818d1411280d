#include "auth/connection_limits.h"

#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/time/time.h"

namespace popgate::auth {
namespace {

// Debian's abseil has its own string_view: the maps look keys up by it.
absl::string_view Key(std::string_view s) { return {s.data(), s.size()}; }

size_t ShardIndex(std::string_view key, size_t shards) {
  return absl::Hash<absl::string_view>{}(Key(key)) % shards;
}

}  // namespace

ConnectionLimits::Shard& ConnectionLimits::ShardFor(std::string_view group) {
  return shards_[ShardIndex(group, kShards)];
}
const ConnectionLimits::Shard& ConnectionLimits::ShardFor(
    std::string_view group) const {
  return shards_[ShardIndex(group, kShards)];
}
ConnectionLimits::TenantShard& ConnectionLimits::TenantShardFor(
    std::string_view tenant) {
  return tenant_shards_[ShardIndex(tenant, kShards)];
}
const ConnectionLimits::TenantShard& ConnectionLimits::TenantShardFor(
    std::string_view tenant) const {
  return tenant_shards_[ShardIndex(tenant, kShards)];
}

void ConnectionLimits::Sweep(Shard& shard) {
  if (shard.swept_second == shard.second) return;
  shard.swept_second = shard.second;
  const int64_t second = shard.second;
  absl::erase_if(shard.groups, [second](const auto& kv) {
    return kv.second.open == 0 && kv.second.rate_second != second;
  });
}

ConnectionRefusal ConnectionLimits::Admit(std::string_view group,
                                          const ConnectionLimitSettings& s,
                                          absl::Time now) {
  Shard& shard = ShardFor(group);
  const int64_t second = absl::ToUnixSeconds(now);
  std::lock_guard<std::mutex> lock(shard.mu);
  // A clock that steps back must not revive old windows.
  if (second > shard.second) shard.second = second;
  Sweep(shard);
  auto it = shard.groups.find(Key(group));
  if (it == shard.groups.end()) {
    it = shard.groups.emplace(std::string(group), Entry{}).first;
  }
  Entry& e = it->second;
  if (e.rate_second != shard.second) {
    e.rate_second = shard.second;
    e.rate_count = 0;
  }
  ++e.rate_count;
  // Most specific first: the reply tells the client what it did.
  if (s.max_new_per_address_per_second > 0 &&
      e.rate_count > s.max_new_per_address_per_second) {
    return ConnectionRefusal::kRate;
  }
  if (s.max_per_address > 0 && e.open >= s.max_per_address) {
    return ConnectionRefusal::kPerAddress;
  }
  if (s.max_prelogin_per_address > 0 &&
      e.prelogin >= s.max_prelogin_per_address) {
    return ConnectionRefusal::kPreloginPerAddress;
  }
  if (s.max_connections > 0) {
    int total = total_.load(std::memory_order_relaxed);
    do {
      if (total >= s.max_connections) return ConnectionRefusal::kTotal;
    } while (!total_.compare_exchange_weak(total, total + 1,
                                           std::memory_order_relaxed));
  } else {
    total_.fetch_add(1, std::memory_order_relaxed);
  }
  ++e.open;
  ++e.prelogin;
  return ConnectionRefusal::kNone;
}

void ConnectionLimits::LoggedIn(std::string_view group) {
  Shard& shard = ShardFor(group);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.groups.find(Key(group));
  if (it != shard.groups.end() && it->second.prelogin > 0) {
    --it->second.prelogin;
  }
}

void ConnectionLimits::LoggedOut(std::string_view group) {
  Shard& shard = ShardFor(group);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.groups.find(Key(group));
  if (it != shard.groups.end() && it->second.prelogin < it->second.open) {
    ++it->second.prelogin;
  }
}

void ConnectionLimits::Release(std::string_view group, bool logged_in) {
  Shard& shard = ShardFor(group);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.groups.find(Key(group));
  if (it == shard.groups.end() || it->second.open == 0) return;  // unpaired
  Entry& e = it->second;
  --e.open;
  if (!logged_in && e.prelogin > 0) --e.prelogin;
  total_.fetch_sub(1, std::memory_order_relaxed);
  if (e.open == 0 && e.rate_second != shard.second) shard.groups.erase(it);
}

bool ConnectionLimits::AcquireTenant(std::string_view tenant, int limit) {
  TenantShard& shard = TenantShardFor(tenant);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(Key(tenant));
  const int open = it == shard.sessions.end() ? 0 : it->second;
  if (limit > 0 && open >= limit) return false;
  if (it == shard.sessions.end()) {
    shard.sessions.emplace(std::string(tenant), 1);
  } else {
    ++it->second;
  }
  return true;
}

void ConnectionLimits::ReleaseTenant(std::string_view tenant) {
  TenantShard& shard = TenantShardFor(tenant);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(Key(tenant));
  if (it == shard.sessions.end()) return;
  if (--it->second <= 0) shard.sessions.erase(it);
}

int ConnectionLimits::connections() const {
  return total_.load(std::memory_order_relaxed);
}

int ConnectionLimits::connections(std::string_view group) const {
  const Shard& shard = ShardFor(group);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.groups.find(Key(group));
  return it == shard.groups.end() ? 0 : it->second.open;
}

int ConnectionLimits::prelogin(std::string_view group) const {
  const Shard& shard = ShardFor(group);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.groups.find(Key(group));
  return it == shard.groups.end() ? 0 : it->second.prelogin;
}

int ConnectionLimits::tenant_sessions(std::string_view tenant) const {
  const TenantShard& shard = TenantShardFor(tenant);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(Key(tenant));
  return it == shard.sessions.end() ? 0 : it->second;
}

size_t ConnectionLimits::tracked_groups() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    n += shard.groups.size();
  }
  return n;
}

ConnectionLimits& ConnectionLimits::Process() {
  static ConnectionLimits* const limits = new ConnectionLimits();
  return *limits;
}

}  // namespace popgate::auth
