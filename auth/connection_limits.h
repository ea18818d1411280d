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

#include <string_view>

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
  // The connection ended (`logged_in`: LoggedIn was called for it).
  void Release(std::string_view group, bool logged_in);

  // A logged-in session of `tenant`: false when `limit` (> 0) are open.
  bool AcquireTenant(std::string_view tenant, int limit);
  void ReleaseTenant(std::string_view tenant);

  int connections() const;                          // open, all addresses
  int connections(std::string_view group) const;    // open from `group`
  int prelogin(std::string_view group) const;       // of those, pre-login
  int tenant_sessions(std::string_view tenant) const;

  static ConnectionLimits& Process();  // the one every worker shares
};

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_CONNECTION_LIMITS_H_
