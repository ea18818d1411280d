// [server] user/group look-ups, the start-up decision, and the drop itself
// (in a forked child, since it cannot be undone).
#include "server/privileges.h"

#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

using ::testing::HasSubstr;

Config ConfigWith(std::string user, std::string group, bool allow_root) {
  Config c;
  c.path = "/etc/popgate/popgate.toml";
  c.server.user = std::move(user);
  c.server.group = std::move(group);
  c.server.allow_root = allow_root;
  c.server.user_line = 3;
  return c;
}

TEST(LookUpUserTest, NobodyWithPrimaryGroup) {
  absl::StatusOr<UserIds> ids = LookUpUser("nobody", "");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->uid, 65534u);
  EXPECT_EQ(ids->gid, 65534u);
  EXPECT_EQ(ids->group, "nogroup");
  ASSERT_FALSE(ids->groups.empty());
  EXPECT_EQ(ids->groups[0], ids->gid);
}

TEST(LookUpUserTest, GroupOverride) {
  absl::StatusOr<UserIds> ids = LookUpUser("nobody", "daemon");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->uid, 65534u);
  EXPECT_EQ(ids->gid, 1u);  // Debian's daemon group
  EXPECT_EQ(ids->group, "daemon");
  EXPECT_EQ(ids->groups[0], 1u);
}

TEST(LookUpUserTest, UnknownUserSaysWhatToDo) {
  absl::StatusOr<UserIds> ids = LookUpUser("popgate-no-such-user", "");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ids.status().message(),
              HasSubstr("no such user \"popgate-no-such-user\""));
  EXPECT_THAT(ids.status().message(), HasSubstr("adduser --system"));
}

TEST(LookUpUserTest, UnknownGroupSaysWhatToDo) {
  absl::StatusOr<UserIds> ids = LookUpUser("nobody", "popgate-no-such-group");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ids.status().message(),
              HasSubstr("no such group \"popgate-no-such-group\""));
  EXPECT_THAT(ids.status().message(), HasSubstr("primary group"));
}

TEST(PlanPrivilegesTest, RootWithoutUserIsRefused) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("", "", false), 0);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(),
              HasSubstr("/etc/popgate/popgate.toml:3: popgate was started as "
                        "root and [server] user is not set"));
  EXPECT_THAT(plan.status().message(), HasSubstr("allow_root = true"));
}

TEST(PlanPrivilegesTest, RootAllowedStaysRoot) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("", "", true), 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->switch_user);
  EXPECT_FALSE(plan->clear_capabilities);
}

TEST(PlanPrivilegesTest, RootSwitchesToUser) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("nobody", "", false), 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->switch_user);
  EXPECT_TRUE(plan->clear_capabilities);
  EXPECT_EQ(plan->ids.uid, 65534u);
}

TEST(PlanPrivilegesTest, UserRootNeedsAllowRoot) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("root", "", false), 0);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("is uid 0"));
  EXPECT_TRUE(PlanPrivileges(ConfigWith("root", "", true), 0).ok());
}

TEST(PlanPrivilegesTest, UnknownUserNamesTheLine) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("popgate-no-such-user", "", false), 0);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(),
              HasSubstr("/etc/popgate/popgate.toml:3: no such user"));
}

TEST(PlanPrivilegesTest, NotRootWithOtherUserIsAnError) {
  // Running as uid 4321 with user = "nobody": nothing can switch to it.
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("nobody", "", false), 4321);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(),
              HasSubstr("needs popgate started as root to switch to it, but "
                        "it runs as uid 4321"));
}

TEST(PlanPrivilegesTest, NotRootWithoutUserClearsCapabilities) {
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("", "", false), 4321);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->switch_user);
  EXPECT_TRUE(plan->clear_capabilities);
}

TEST(PrivilegesTest, AdminUnixSocketIsOwned) {
  Config c;
  c.admin.listen = "unix:/run/popgate/admin.sock";
  EXPECT_EQ(OwnedSocketPaths(c),
            std::vector<std::string>{"/run/popgate/admin.sock"});
  c.admin.listen = "127.0.0.1:9110";
  EXPECT_TRUE(OwnedSocketPaths(c).empty());
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// In a child: a thread started before the drop (like the signing pool)
// must end up with no capability and no_new_privs too, and root must be
// out of reach. Exit codes name the failed check.
int DropInChild() {
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  std::string thread_status;
  std::thread early([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return go; });
    thread_status = Slurp("/proc/thread-self/status");
  });
  absl::StatusOr<PrivilegePlan> plan =
      PlanPrivileges(ConfigWith("nobody", "", false), 0);
  if (!plan.ok()) return 10;
  if (absl::Status s = DropPrivileges(*plan, {}); !s.ok()) {
    fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 11;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    go = true;
  }
  cv.notify_one();
  early.join();
  if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534) return 12;
  if (setuid(0) == 0) return 13;
  if (WithReadableHint("f: Permission denied").find("readable by nobody") ==
      std::string::npos) {
    return 18;
  }
  for (const std::string& status :
       {Slurp("/proc/self/status"), thread_status}) {
    if (status.find("NoNewPrivs:\t1") == std::string::npos) return 14;
    if (status.find("CapEff:\t0000000000000000") == std::string::npos)
      return 15;
    if (status.find("CapPrm:\t0000000000000000") == std::string::npos)
      return 16;
    if (status.find("Groups:\t65534") == std::string::npos) return 17;
  }
  return 0;
}

TEST(DropPrivilegesTest, RootToNobodyInEveryThread) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (CI runs as root)";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(DropInChild());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(WithReadableHintTest, OnlyForPermissionDeniedWhenNotRoot) {
  if (geteuid() == 0) {
    EXPECT_EQ(WithReadableHint("x: Permission denied"), "x: Permission denied");
  } else {
    EXPECT_THAT(WithReadableHint("x: Permission denied"),
                HasSubstr("is the file readable by"));
  }
  EXPECT_EQ(WithReadableHint("x: No such file"), "x: No such file");
}

}  // namespace
}  // namespace popgate
