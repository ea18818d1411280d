// The hand-over protocol in one process: HandoverServer on a temp path,
// HandoverClient connecting to it, real listening sockets passed between
// them; the time limits and refusals; socket activation's variables.
#include "server/handover.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/socket_activation.h"

namespace popgate {
namespace {

UniqueFd Listening() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(fd.get(), 8), 0);
  return fd;
}

ino_t Inode(int fd) {
  struct stat st {};
  fstat(fd, &st);
  return st.st_ino;
}

class HandoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/popgate-handover-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/h.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::unique_ptr<HandoverServer> Serve(std::vector<UniqueFd> fds,
                                        bool release = false) {
    auto s = std::make_unique<HandoverServer>(
        path_, std::move(fds), release, [this](pid_t pid) { taken_ = pid; },
        [this](std::string event, std::string fields) {
          std::lock_guard<std::mutex> lock(mu_);
          events_.push_back(event + fields);
        });
    EXPECT_TRUE(s->Start().ok());
    return s;
  }
  std::vector<std::string> Events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

  std::string dir_;
  std::string path_;
  std::atomic<pid_t> taken_{0};
  std::mutex mu_;
  std::vector<std::string> events_;
};

TEST_F(HandoverTest, PassesEverySocketThenConfirms) {
  UniqueFd a = Listening();
  UniqueFd b = Listening();
  const ino_t ia = Inode(a.get());
  const ino_t ib = Inode(b.get());
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(a));
  fds.push_back(std::move(b));
  auto server = Serve(std::move(fds), /*release=*/true);
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  absl::StatusOr<HandoverClient> c = HandoverClient::Receive(path_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->old_pid(), getpid());
  EXPECT_TRUE(c->release_on_stop());
  ASSERT_EQ(c->sockets().size(), 2u);
  // The very sockets, not copies: same sockfs inodes.
  EXPECT_EQ(Inode(c->sockets()[0].get()), ia);
  EXPECT_EQ(Inode(c->sockets()[1].get()), ib);
  EXPECT_EQ(taken_.load(), 0);
  ASSERT_TRUE(c->Confirm().ok());
  for (int i = 0; i < 100 && taken_.load() == 0; ++i) usleep(10000);
  EXPECT_EQ(taken_.load(), getpid());
  // Taken: the path is the new process's now, the old one never unlinks it.
  server->Stop();
  EXPECT_EQ(stat(path_.c_str(), &st), 0);
}

TEST_F(HandoverTest, NobodyServingIsNotFound) {
  absl::StatusOr<HandoverClient> c = HandoverClient::Receive(path_);
  EXPECT_TRUE(absl::IsNotFound(c.status())) << c.status();
  // A stale socket file (its process died) is the same.
  UniqueFd s(socket(AF_UNIX, SOCK_SEQPACKET, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path_.data(), path_.size());
  ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
  s.Reset();
  c = HandoverClient::Receive(path_);
  EXPECT_TRUE(absl::IsNotFound(c.status())) << c.status();
}

TEST_F(HandoverTest, ClientThatLeavesBeforeConfirmingIsNotATakeover) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  auto server = Serve(std::move(fds));
  {
    absl::StatusOr<HandoverClient> c = HandoverClient::Receive(path_);
    ASSERT_TRUE(c.ok()) << c.status();
  }  // closed without "taken"
  for (int i = 0; i < 100 && Events().empty(); ++i) usleep(10000);
  ASSERT_EQ(Events().size(), 1u);
  EXPECT_EQ(Events()[0].rfind("handover_failed", 0), 0u) << Events()[0];
  EXPECT_EQ(taken_.load(), 0);
  // The server goes on: the next client gets the sockets.
  absl::StatusOr<HandoverClient> again = HandoverClient::Receive(path_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sockets().size(), 1u);
  EXPECT_TRUE(again->Confirm().ok());
}

TEST_F(HandoverTest, StalledPeerIsDroppedAfterTheStepTimeout) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  auto server = Serve(std::move(fds));
  UniqueFd peer(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path_.data(), path_.size());
  ASSERT_EQ(connect(peer.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)),
            0);
  const absl::Time t0 = absl::Now();
  char buf[64];
  EXPECT_EQ(recv(peer.get(), buf, sizeof(buf), 0), 0);  // closed on us
  const absl::Duration waited = absl::Now() - t0;
  EXPECT_GE(waited, kHandoverStepTimeout - absl::Milliseconds(100));
  EXPECT_LT(waited, kHandoverStepTimeout + absl::Seconds(2));
  EXPECT_EQ(taken_.load(), 0);
}

TEST_F(HandoverTest, StopEndsAConversationAndRemovesItsSocket) {
  std::vector<UniqueFd> fds;
  fds.push_back(Listening());
  auto server = Serve(std::move(fds));
  UniqueFd peer(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path_.data(), path_.size());
  ASSERT_EQ(connect(peer.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)),
            0);
  usleep(50000);
  const absl::Time t0 = absl::Now();
  server->Stop();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  struct stat st {};
  EXPECT_NE(stat(path_.c_str(), &st), 0);  // ours: removed
}

TEST(SocketActivationTest, IgnoresAnotherProcesssVariables) {
  setenv("LISTEN_PID", absl::StrCat(getpid() + 1).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeActivatedSockets();
  ASSERT_TRUE(fds.ok());
  EXPECT_TRUE(fds->empty());
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
}

TEST(SocketActivationTest, TakesFdsFromThreeAndUnsetsTheVariables) {
  // Put a socket at fd 3 (whatever is there is moved out of the way).
  UniqueFd saved(fcntl(3, F_DUPFD_CLOEXEC, 10));
  UniqueFd l = Listening();
  ASSERT_EQ(dup2(l.get(), 3), 3);
  const ino_t ino = Inode(3);
  setenv("LISTEN_PID", absl::StrCat(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "popgate.socket", 1);
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeActivatedSockets();
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(fds->size(), 1u);
  EXPECT_EQ((*fds)[0].get(), 3);
  EXPECT_EQ(Inode(3), ino);
  EXPECT_NE(fcntl(3, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(getenv("LISTEN_FDNAMES"), nullptr);
  fds->clear();  // closes fd 3
  if (saved.valid()) dup2(saved.get(), 3);
}

TEST(SocketActivationTest, MalformedCountIsAnError) {
  setenv("LISTEN_PID", absl::StrCat(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "many", 1);
  absl::StatusOr<std::vector<UniqueFd>> fds = TakeActivatedSockets();
  EXPECT_FALSE(fds.ok());
  EXPECT_NE(fds.status().message().find("LISTEN_FDS"), absl::string_view::npos);
}

}  // namespace
}  // namespace popgate
