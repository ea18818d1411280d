// The sd_notify datagrams against a real unix datagram socket (a path and
// an abstract name), as systemd would receive them.
#include "server/service_notify.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The receiving end: systemd's side.
class Receiver {
 public:
  // `name`: a path, or "@name" for the abstract namespace.
  explicit Receiver(const std::string& name) : name_(name) {
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = offsetof(sockaddr_un, sun_path) + name.size();
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      unlink(name.c_str());
      ++len;
    }
    EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len), 0)
        << strerror(errno);
    timeval tv{2, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Receiver() {
    if (name_[0] != '@') unlink(name_.c_str());
  }
  std::string Next() {
    char buf[4096];
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
    return n < 0 ? std::string("(nothing)") : std::string(buf, n);
  }
  bool Nothing() {
    char buf[16];
    return recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT) < 0;
  }

 private:
  std::string name_;
  UniqueFd fd_;
};

std::string TestPath() {
  return "/tmp/popgate-notify-test-" + std::to_string(getpid());
}

TEST(NotifySocketTest, PathAndAbstract) {
  for (const std::string& name :
       {TestPath(), "@popgate-notify-test-" + std::to_string(getpid())}) {
    Receiver r(name);
    absl::StatusOr<NotifySocket> s = NotifySocket::ForAddress(name);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->enabled());
    ASSERT_TRUE(s->Send("READY=1").ok());
    EXPECT_EQ(r.Next(), "READY=1") << name;
  }
}

TEST(NotifySocketTest, BadAddressSaysWhatToDo) {
  absl::StatusOr<NotifySocket> s = NotifySocket::ForAddress("relative/path");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("unset it"));
  EXPECT_FALSE(NotifySocket::ForAddress(std::string(200, '/')).ok());
}

TEST(NotifySocketTest, UnsetIsDisabled) {
  unsetenv("NOTIFY_SOCKET");
  absl::StatusOr<ServiceNotifier> n = ServiceNotifier::FromEnvironment();
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n->enabled());
  n->Ready(1, 1);  // nothing to send to, nothing happens
}

TEST(ServiceNotifierTest, Lifecycle) {
  Receiver r(TestPath());
  setenv("NOTIFY_SOCKET", TestPath().c_str(), 1);
  absl::StatusOr<ServiceNotifier> n = ServiceNotifier::FromEnvironment();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(n.ok()) << n.status();
  n->Ready(2, 3);
  std::string ready = r.Next();
  EXPECT_THAT(ready, StartsWith("READY=1\n"));
  EXPECT_THAT(ready, HasSubstr("STATUS=serving on 3 listeners with 2 workers"));
  EXPECT_THAT(ready, HasSubstr("MAINPID=" + std::to_string(getpid())));

  const uint64_t before = MonotonicMicros();
  n->Reloading();
  std::string reloading = r.Next();
  EXPECT_THAT(reloading, StartsWith("RELOADING=1\nMONOTONIC_USEC="));
  uint64_t usec =
      std::stoull(reloading.substr(strlen("RELOADING=1\nMONOTONIC_USEC=")));
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, MonotonicMicros());
  n->Reloaded(false);
  std::string again = r.Next();
  EXPECT_THAT(again, StartsWith("READY=1\n"));
  EXPECT_THAT(again, HasSubstr("1 reloads (1 failed)"));
  EXPECT_THAT(again, HasSubstr("the last reload failed"));

  // STATUS at the first tick, then not again within 5 s.
  const absl::Time t0 = absl::Now();
  n->Tick(t0, 7);
  EXPECT_EQ(r.Next(), "STATUS=7 live sessions, 1 reloads (1 failed)");
  n->Tick(t0 + absl::Seconds(1), 8);
  EXPECT_TRUE(r.Nothing());
  n->Tick(t0 + absl::Seconds(5), 8);
  EXPECT_EQ(r.Next(), "STATUS=8 live sessions, 1 reloads (1 failed)");

  n->Stopping();
  EXPECT_THAT(r.Next(), StartsWith("STOPPING=1"));
}

TEST(ServiceNotifierTest, WatchdogAtHalfTheInterval) {
  Receiver r(TestPath());
  setenv("NOTIFY_SOCKET", TestPath().c_str(), 1);
  setenv("WATCHDOG_USEC", "4000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  absl::StatusOr<ServiceNotifier> n = ServiceNotifier::FromEnvironment();
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  ASSERT_TRUE(n.ok());
  const absl::Time t0 = absl::Now();
  n->Tick(t0, 0);
  EXPECT_EQ(r.Next(), "WATCHDOG=1");
  EXPECT_THAT(r.Next(), StartsWith("STATUS="));
  n->Tick(t0 + absl::Seconds(1), 0);
  EXPECT_TRUE(r.Nothing());
  n->Tick(t0 + absl::Seconds(2), 0);
  EXPECT_EQ(r.Next(), "WATCHDOG=1");
}

TEST(ServiceNotifierTest, WatchdogForAnotherPidIsIgnored) {
  Receiver r(TestPath());
  setenv("NOTIFY_SOCKET", TestPath().c_str(), 1);
  setenv("WATCHDOG_USEC", "4000000", 1);
  setenv("WATCHDOG_PID", "1", 1);
  absl::StatusOr<ServiceNotifier> n = ServiceNotifier::FromEnvironment();
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  ASSERT_TRUE(n.ok());
  n->Tick(absl::Now(), 0);
  EXPECT_THAT(r.Next(), StartsWith("STATUS="));
  EXPECT_TRUE(r.Nothing());
}

}  // namespace
}  // namespace popgate
