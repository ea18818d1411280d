// Connection limits of one popgate process: connections in total, per
// client address group (open, and of those not yet logged in), new
// connections per address group per second, and logged-in sessions per
// tenant. Process-wide (a client's connections land on any worker:
// SO_REUSEPORT spreads them by 4-tuple), thread-safe, sharded by key so a
// lock is held for one small map operation; entries exist only while an
// address has connections open (or was seen in the last second), so the
// table is bounded by the connections themselves.
//
// Knows nothing of sockets or sessions: keys are address groups
// (net/address_group.h) and tenant names.
#ifndef POPGATE_AUTH_CONNECTION_LIMITS_H_
#define POPGATE_AUTH_CONNECTION_LIMITS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace popgate::auth {

struct ConnectionLimitSettings {  // 0 = no limit, for each
  int max_connections = 0;
  int max_per_address = 0;
  int max_prelogin_per_address = 0;
  int max_new_per_address_per_second = 0;
};

enum class ConnectionRefusal {
  kNone,                // admitted
  kTotal,               // max_connections
  kPerAddress,          // max_connections_per_address
  kPreloginPerAddress,  // max_prelogin_per_address
  kRate,                // max_new_connections_per_address
};

class ConnectionLimits {
 public:
  // A new connection from `group` at `now`: kNone counts it (open and
  // pre-login; pair with LoggedIn and Release); anything else counts
  // nothing but the refusal.
  ConnectionRefusal Admit(std::string_view group,
                          const ConnectionLimitSettings& s, absl::Time now);
  // The connection logged in: it leaves the pre-login count.
  void LoggedIn(std::string_view group);
  // Its backend login failed after all: it counts as pre-login again.
  void LoggedOut(std::string_view group);
  // The connection ended (`logged_in`: LoggedIn was called for it).
  void Release(std::string_view group, bool logged_in);

  // A logged-in session of `tenant`: false when `limit` (> 0) are open.
  bool AcquireTenant(std::string_view tenant, int limit);
  void ReleaseTenant(std::string_view tenant);

  int connections() const;                        // open, all addresses
  int connections(std::string_view group) const;  // open from `group`
  int prelogin(std::string_view group) const;     // of those, pre-login
  int tenant_sessions(std::string_view tenant) const;
  // Address groups in the table (open, or seen in the current second).
  size_t tracked_groups() const;

  static ConnectionLimits& Process();  // the one every worker shares

 private:
  // Per address group. The rate is counted in whole seconds (a fixed
  // window: at most twice the limit across a second boundary), and every
  // attempt counts, refused ones too: a flood stays refused while it goes
  // on.
  struct Entry {
    int open = 0;
    int prelogin = 0;
    int64_t rate_second = 0;
    int rate_count = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Entry> groups ABSL_GUARDED_BY(mu);
    // The latest `now` an Admit gave (time comes only from Admit, so
    // tests can drive it) and when the shard was last swept.
    int64_t second ABSL_GUARDED_BY(mu) = 0;
    int64_t swept_second ABSL_GUARDED_BY(mu) = 0;
  };
  struct TenantShard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, int> sessions ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 32;

  Shard& ShardFor(std::string_view group);
  const Shard& ShardFor(std::string_view group) const;
  TenantShard& TenantShardFor(std::string_view tenant);
  const TenantShard& TenantShardFor(std::string_view tenant) const;
  // Erases the entries with nothing open whose rate second is over, once
  // per second per shard: the table holds only live addresses.
  static void Sweep(Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  std::array<Shard, kShards> shards_;
  std::array<TenantShard, kShards> tenant_shards_;
  std::atomic<int> total_{0};
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_CONNECTION_LIMITS_H_
