// Who popgate runs as: `[server] user`, `group`, `allow_root`.
//
// Started as root, popgate opens every socket (privileged ports, the admin
// API's unix socket) and then becomes `user` for good: exactly the user's
// groups, its gid, its uid, no capability, no_new_privs. Started as an
// unprivileged user that holds CAP_NET_BIND_SERVICE (systemd's
// AmbientCapabilities), it binds, then drops that capability the same way.
// Root without `user` is refused unless `allow_root` says so.
#ifndef POPGATE_SERVER_PRIVILEGES_H_
#define POPGATE_SERVER_PRIVILEGES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"

namespace popgate {

// A user (and group) looked up in the system's databases (NSS: passwd,
// group; blocking, so main thread only).
struct UserIds {
  std::string user;
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
  // Every group the user is in (primary or `group` first), for setgroups.
  std::vector<gid_t> groups;
};

// `group` empty: the user's primary group. NotFound naming what is
// missing and what to do.
absl::StatusOr<UserIds> LookUpUser(absl::string_view user,
                                   absl::string_view group);

// What the process does once its sockets are open.
struct PrivilegePlan {
  // Started as root with `user`: setgroups, setgid, setuid to `ids`.
  bool switch_user = false;
  // The process does not run as root afterwards: no capability is kept.
  bool clear_capabilities = false;
  UserIds ids;
};

// Decided at start, before anything is opened: `euid` is geteuid(). Errors
// ("file:line: ..." with what to change): root without `user` and without
// `allow_root`; a user that resolves to uid 0 without `allow_root`; `user`
// or `group` other than the current ones when not started as root; a user
// or group that does not exist.
absl::StatusOr<PrivilegePlan> PlanPrivileges(const Config& config, uid_t euid);

// Carries out `plan`: chowns `owned_paths` (unix sockets the user must keep
// using) to the user, switches ids, then in every thread of the process
// sets no_new_privs and, with clear_capabilities, empties the effective,
// permitted, inheritable and ambient sets; finally checks the result in
// /proc/self/task/*/status and that setuid(0) fails. Any failure is an
// error: the caller must exit rather than run with more than planned.
absl::Status DropPrivileges(const PrivilegePlan& plan,
                            const std::vector<std::string>& owned_paths);

// The unix socket paths in `config` that the dropped user must own (the
// admin API's "unix:PATH").
std::vector<std::string> OwnedSocketPaths(const Config& config);

// A reload error made more useful once privileges are dropped: a
// "Permission denied" gains "; is it readable by user NAME?".
std::string WithReadableHint(absl::string_view message);

}  // namespace popgate

#endif  // POPGATE_SERVER_PRIVILEGES_H_
