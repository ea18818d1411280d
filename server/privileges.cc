#include "server/privileges.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace popgate {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// "file:line: " for errors about [server]'s identity settings.
std::string Where(const Config& config) {
  if (config.server.user_line == 0) return absl::StrCat(config.path, ": ");
  return absl::StrCat(config.path, ":", config.server.user_line, ": ");
}

absl::StatusOr<std::string> GroupName(gid_t gid) {
  std::vector<char> buf(4096);
  group gr{};
  group* found = nullptr;
  int rc;
  while ((rc = getgrgid_r(gid, &gr, buf.data(), buf.size(), &found)) ==
         ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (rc != 0 || found == nullptr) return std::to_string(gid);
  return std::string(gr.gr_name);
}

// --- every thread of the process -------------------------------------
// no_new_privs and the capability sets belong to each thread, not to the
// process (glibc broadcasts setuid/setgid/setgroups to every thread, but
// not prctl or capset). Threads started before the switch (the signing
// pool, the log writer, the health checker, the admin API) get a signal
// whose handler makes the same two calls, raw system calls that are
// async-signal-safe. Threads started later inherit the state.

std::atomic<int> g_pending{0};
std::atomic<int> g_error{0};
std::atomic<bool> g_clear_caps{false};

int ApplyInThisThread(bool clear_caps) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (!clear_caps) return 0;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return errno;
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

void OnCredsSignal(int) {
  const int saved = errno;
  if (int err = ApplyInThisThread(g_clear_caps.load()); err != 0) {
    g_error.store(err);
  }
  g_pending.fetch_sub(1);
  errno = saved;
}

// io_uring's kernel workers ("iou-wrk-N", "iou-sqp-N") are tasks of the
// process too, but take no signals; each request they run carries the
// credentials of the thread that submitted it.
bool IsKernelWorker(const std::string& comm) {
  return absl::StartsWith(comm, "iou-");
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The process's threads (tid, comm), from /proc/self/task.
std::vector<std::pair<pid_t, std::string>> ListThreads() {
  std::vector<std::pair<pid_t, std::string>> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    int tid = 0;
    if (!absl::SimpleAtoi(e->d_name, &tid)) continue;
    std::string comm =
        ReadSmallFile(absl::StrCat("/proc/self/task/", tid, "/comm"));
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out.emplace_back(tid, std::move(comm));
  }
  closedir(dir);
  return out;
}

absl::Status ApplyInEveryThread(bool clear_caps) {
  const int sig = SIGRTMIN + 3;
  struct sigaction action {};
  struct sigaction previous {};
  action.sa_handler = OnCredsSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(sig, &action, &previous) != 0) {
    return absl::InternalError(absl::StrCat("sigaction: ", ErrnoText(errno)));
  }
  g_clear_caps.store(clear_caps);
  g_error.store(0);
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  std::set<pid_t> done{self};
  absl::Status status;
  // Again until a listing finds no thread left to do (none should start
  // meanwhile: only this thread starts threads).
  for (bool more = true; more && status.ok();) {
    more = false;
    for (const auto& [tid, comm] : ListThreads()) {
      if (done.count(tid) != 0 || IsKernelWorker(comm)) continue;
      done.insert(tid);
      more = true;
      g_pending.fetch_add(1);
      if (syscall(SYS_tgkill, getpid(), tid, sig) != 0) {
        g_pending.fetch_sub(1);  // ended meanwhile (ESRCH)
        if (errno != ESRCH) {
          status = absl::InternalError(
              absl::StrCat("tgkill ", tid, ": ", ErrnoText(errno)));
        }
      }
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (g_pending.load() > 0 && absl::Now() < deadline) {
      const timespec ms{0, 1000000};
      nanosleep(&ms, nullptr);
    }
    if (g_pending.load() > 0 && status.ok()) {
      status = absl::DeadlineExceededError(
          "a thread did not drop its capabilities within 5 s");
    }
  }
  if (int err = ApplyInThisThread(clear_caps); err != 0) g_error.store(err);
  sigaction(sig, &previous, nullptr);
  if (!status.ok()) return status;
  if (int err = g_error.load(); err != 0) {
    return absl::InternalError(absl::StrCat(
        "setting no_new_privs / clearing capabilities: ", ErrnoText(err)));
  }
  return absl::OkStatus();
}

// Every field of a "Key:\tv1\tv2..." line of /proc/.../status.
std::vector<std::string> StatusFields(const std::string& status,
                                      absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) {
      continue;
    }
    return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  }
  return {};
}

// What the kernel says each thread ended up with.
absl::Status VerifyEveryThread(const PrivilegePlan& plan) {
  for (const auto& [tid, comm] : ListThreads()) {
    if (IsKernelWorker(comm)) continue;
    const std::string status =
        ReadSmallFile(absl::StrCat("/proc/self/task/", tid, "/status"));
    if (status.empty()) continue;  // ended meanwhile
    auto fail = [&](absl::string_view what) {
      return absl::InternalError(
          absl::StrCat("thread ", tid, " (", comm, ") still has ", what));
    };
    if (StatusFields(status, "NoNewPrivs") != std::vector<std::string>{"1"}) {
      return fail("no_new_privs unset");
    }
    if (plan.clear_capabilities) {
      for (const char* key : {"CapEff", "CapPrm", "CapInh", "CapAmb"}) {
        std::vector<std::string> v = StatusFields(status, key);
        if (v.size() != 1 || v[0].find_first_not_of('0') != std::string::npos) {
          return fail(absl::StrCat(key, " ", v.empty() ? "?" : v[0]));
        }
      }
    }
    if (plan.switch_user) {
      for (const std::string& id : StatusFields(status, "Uid")) {
        if (id != std::to_string(plan.ids.uid)) return fail("uid " + id);
      }
      for (const std::string& id : StatusFields(status, "Gid")) {
        if (id != std::to_string(plan.ids.gid)) return fail("gid " + id);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UserIds> LookUpUser(absl::string_view user,
                                   absl::string_view group_name) {
  UserIds ids;
  ids.user = std::string(user);
  std::vector<char> buf(16384);
  {
    passwd pw{};
    passwd* found = nullptr;
    int rc;
    while ((rc = getpwnam_r(ids.user.c_str(), &pw, buf.data(), buf.size(),
                            &found)) == ERANGE) {
      buf.resize(buf.size() * 2);
    }
    if (rc != 0) {
      return absl::UnavailableError(
          absl::StrCat("looking up user \"", ids.user, "\": ", ErrnoText(rc),
                       " (check the passwd database and /etc/nsswitch.conf)"));
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "no such user \"", ids.user,
          "\": create it (adduser --system "
          "--group --no-create-home ",
          ids.user, ") or name an existing user in [server] user"));
    }
    ids.uid = pw.pw_uid;
    ids.gid = pw.pw_gid;
  }
  if (group_name.empty()) {
    absl::StatusOr<std::string> name = GroupName(ids.gid);
    ids.group = name.ok() ? *name : std::to_string(ids.gid);
  } else {
    ids.group = std::string(group_name);
    group gr{};
    group* found = nullptr;
    int rc;
    while ((rc = getgrnam_r(ids.group.c_str(), &gr, buf.data(), buf.size(),
                            &found)) == ERANGE) {
      buf.resize(buf.size() * 2);
    }
    if (rc != 0) {
      return absl::UnavailableError(
          absl::StrCat("looking up group \"", ids.group, "\": ", ErrnoText(rc),
                       " (check the group database and /etc/nsswitch.conf)"));
    }
    if (found == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("no such group \"", ids.group,
                       "\": create it (addgroup --system ", ids.group,
                       "), name an existing group in [server] group, or "
                       "remove group to use user \"",
                       ids.user, "\"'s primary group"));
    }
    ids.gid = gr.gr_gid;
  }
  // The user's groups with `gid` first: exactly those, nothing inherited
  // from whoever started popgate.
  int n = 16;
  std::vector<gid_t> groups(n);
  while (getgrouplist(ids.user.c_str(), ids.gid, groups.data(), &n) < 0) {
    groups.resize(std::max<size_t>(static_cast<size_t>(n), groups.size() * 2));
    n = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(n));
  ids.groups.push_back(ids.gid);
  for (gid_t g : groups) {
    if (g != ids.gid) ids.groups.push_back(g);
  }
  return ids;
}

absl::StatusOr<PrivilegePlan> PlanPrivileges(const Config& config, uid_t euid) {
  const ServerConfig& server = config.server;
  PrivilegePlan plan;
  if (server.user.empty()) {
    if (euid == 0 && !server.allow_root) {
      return absl::FailedPreconditionError(absl::StrCat(
          Where(config),
          "popgate was started as root and [server] user is not set: set "
          "user = \"popgate\" (popgate opens its sockets as root, then runs "
          "as that user), or start it as an unprivileged user with "
          "CAP_NET_BIND_SERVICE (systemd: User= and AmbientCapabilities=), "
          "or set allow_root = true to run everything as root"));
    }
    plan.clear_capabilities = euid != 0;
    return plan;
  }
  absl::StatusOr<UserIds> ids = LookUpUser(server.user, server.group);
  if (!ids.ok()) {
    return absl::Status(ids.status().code(),
                        absl::StrCat(Where(config), ids.status().message()));
  }
  plan.ids = *std::move(ids);
  if (plan.ids.uid == 0 && !server.allow_root) {
    return absl::FailedPreconditionError(absl::StrCat(
        Where(config), "[server] user \"", plan.ids.user,
        "\" is uid 0 (root): name an unprivileged user, or set allow_root = "
        "true to run everything as root"));
  }
  if (euid == 0) {
    plan.switch_user = true;
    plan.clear_capabilities = plan.ids.uid != 0;
    return plan;
  }
  // Not root: nothing to switch to, but the settings must say who we are
  // (a config written for a root start would otherwise run as someone
  // else without a word).
  if (plan.ids.uid != euid || getuid() != euid) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(config), "[server] user = \"", plan.ids.user,
                     "\" (uid ", plan.ids.uid,
                     ") needs popgate started as root to switch to it, but "
                     "it runs as uid ",
                     euid, ": start it as root, or as ", plan.ids.user,
                     " (systemd: User=", plan.ids.user, "), or remove user"));
  }
  if (!server.group.empty() &&
      (plan.ids.gid != getegid() || getgid() != getegid())) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(config), "[server] group = \"", plan.ids.group,
                     "\" (gid ", plan.ids.gid,
                     ") needs popgate started as root to switch to it, but "
                     "it runs with gid ",
                     getegid(),
                     ": start it as root or with that "
                     "group (systemd: Group=",
                     plan.ids.group, "), or remove group"));
  }
  plan.clear_capabilities = true;
  return plan;
}

absl::Status DropPrivileges(const PrivilegePlan& plan,
                            const std::vector<std::string>& owned_paths) {
  if (plan.switch_user) {
    const UserIds& ids = plan.ids;
    for (const std::string& path : owned_paths) {
      if (chown(path.c_str(), ids.uid, ids.gid) != 0) {
        return absl::PermissionDeniedError(
            absl::StrCat("chown ", path, " to ", ids.user, ":", ids.group, ": ",
                         ErrnoText(errno),
                         " (put the socket on a file system root may "
                         "change)"));
      }
    }
    // glibc makes these three in every thread of the process.
    if (setgroups(ids.groups.size(), ids.groups.data()) != 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "setgroups for user ", ids.user, ": ", ErrnoText(errno)));
    }
    if (setresgid(ids.gid, ids.gid, ids.gid) != 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "setgid ", ids.gid, " (", ids.group, "): ", ErrnoText(errno)));
    }
    if (setresuid(ids.uid, ids.uid, ids.uid) != 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "setuid ", ids.uid, " (", ids.user, "): ", ErrnoText(errno)));
    }
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) != 0 || r != ids.uid || e != ids.uid ||
        s != ids.uid || getresgid(&rg, &eg, &sg) != 0 || rg != ids.gid ||
        eg != ids.gid || sg != ids.gid) {
      return absl::InternalError("the user switch did not take effect");
    }
    // A raw call (this thread only): if it worked we are root again and
    // the caller exits at once.
    if (ids.uid != 0 && syscall(SYS_setuid, 0) == 0) {
      return absl::InternalError(
          "setuid(0) still succeeds after the switch: refusing to run");
    }
  }
  if (absl::Status s = ApplyInEveryThread(plan.clear_capabilities); !s.ok()) {
    return s;
  }
  return VerifyEveryThread(plan);
}

std::vector<std::string> OwnedSocketPaths(const Config& config) {
  std::vector<std::string> out;
  absl::string_view listen = config.admin.listen;
  if (absl::ConsumePrefix(&listen, "unix:")) out.emplace_back(listen);
  return out;
}

std::string WithReadableHint(absl::string_view message) {
  std::string out(message);
  if (geteuid() == 0 || !absl::StrContains(message, "Permission denied")) {
    return out;
  }
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  std::string name = std::to_string(geteuid());
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &found) == 0 &&
      found != nullptr) {
    name = pw.pw_name;
  }
  absl::StrAppend(&out, " (popgate runs as user ", name,
                  " since start-up: is the file readable by ", name,
                  " and its directories searchable?)");
  return out;
}

}  // namespace popgate
