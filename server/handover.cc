#include "server/handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "base/json_escape.h"

namespace popgate {
namespace {

constexpr absl::string_view kHello = "popgate-handover 1 hello";
constexpr absl::string_view kTaken = "taken";
constexpr absl::string_view kBye = "bye";
// More than any config has (listeners x workers); a bound on what a
// confused peer can make us allocate.
constexpr int kMaxSockets = 4096;
constexpr size_t kMaxMessage = 128;

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", strerror(errno)));
}

bool FillAddress(const std::string& path, sockaddr_un* sun) {
  if (path.empty() || path.size() >= sizeof(sun->sun_path)) return false;
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path.data(), path.size());
  return true;
}

void SetTimeouts(int fd, absl::Duration d) {
  const timeval tv = absl::ToTimeval(d);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

absl::Status SendText(int fd, absl::string_view text, int pass_fd = -1) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  if (sendmsg(fd, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    return Errno("send");
  }
  return absl::OkStatus();
}

// One message (and the fd it carries, if any: `*got_fd`, else -1).
absl::StatusOr<std::string> RecvText(int fd, UniqueFd* got_fd = nullptr) {
  char buf[kMaxMessage];
  iovec iov{buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("the peer did not answer in time");
    }
    return Errno("receive");
  }
  // Whatever fd came is ours to close, even in a message we refuse.
  UniqueFd fd_in;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int in = -1;
      memcpy(&in, CMSG_DATA(c), sizeof(int));
      fd_in.Reset(in);
    }
  }
  if (n == 0) return absl::UnavailableError("the peer closed the connection");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return absl::InvalidArgumentError("an oversized message");
  }
  if (got_fd != nullptr) *got_fd = std::move(fd_in);
  return std::string(buf, static_cast<size_t>(n));
}

// Waits until `fd` is readable, `stop_fd` fires or `deadline` passes.
bool WaitReadable(int fd, int stop_fd, absl::Time deadline) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int rc =
        poll(p, 2, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0 || (p[1].revents & POLLIN) != 0) return false;
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) return true;
  }
}

}  // namespace

// ---- the new process

absl::StatusOr<HandoverClient> HandoverClient::Receive(
    const std::string& path) {
  sockaddr_un sun{};
  if (!FillAddress(path, &sun)) {
    return absl::InvalidArgumentError("handover_socket: path too long");
  }
  HandoverClient c;
  c.conn_.Reset(
      socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!c.conn_.valid()) return Errno("handover socket");
  if (connect(c.conn_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) !=
      0) {
    if (errno == ENOENT || errno == ECONNREFUSED) {
      return absl::NotFoundError(
          "no running popgate serves the hand-over socket");
    }
    // EAGAIN: its backlog is full (another hand-over in progress).
    return Errno(absl::StrCat("connect to ", JsonEscape(path)));
  }
  // Blocking from here, every step bounded.
  const int fl = fcntl(c.conn_.get(), F_GETFL);
  fcntl(c.conn_.get(), F_SETFL, fl & ~O_NONBLOCK);
  SetTimeouts(c.conn_.get(), kHandoverStepTimeout);
  if (absl::Status s = SendText(c.conn_.get(), kHello); !s.ok()) return s;
  absl::StatusOr<std::string> head = RecvText(c.conn_.get());
  if (!head.ok()) return head.status();
  // "popgate-handover 1 fds N pid P release R"
  std::vector<absl::string_view> w = absl::StrSplit(*head, ' ');
  int n = -1;
  int pid = 0;
  if (w.size() != 8 || w[0] != "popgate-handover" || w[1] != "1" ||
      w[2] != "fds" || !absl::SimpleAtoi(w[3], &n) || n < 0 ||
      n > kMaxSockets || w[4] != "pid" || !absl::SimpleAtoi(w[5], &pid) ||
      w[6] != "release" || (w[7] != "0" && w[7] != "1")) {
    return absl::InvalidArgumentError(
        "the running process answered something else than popgate's "
        "hand-over (another program on that socket, or another version)");
  }
  c.old_pid_ = pid;
  c.release_on_stop_ = w[7] == "1";
  for (int i = 0; i < n; ++i) {
    UniqueFd fd;
    absl::StatusOr<std::string> m = RecvText(c.conn_.get(), &fd);
    if (!m.ok()) return m.status();
    if (*m != absl::StrCat("fd ", i) || !fd.valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("hand-over message ", i, " carries no socket"));
    }
    c.sockets_.push_back(std::move(fd));
  }
  return c;
}

absl::Status HandoverClient::Confirm() {
  if (absl::Status s = SendText(conn_.get(), kTaken); !s.ok()) return s;
  absl::StatusOr<std::string> m = RecvText(conn_.get());
  conn_.Reset();
  if (!m.ok()) return m.status();
  if (*m != kBye)
    return absl::InvalidArgumentError("no \"bye\" after \"taken\"");
  return absl::OkStatus();
}

// ---- the running process

HandoverServer::HandoverServer(
    std::string path, std::vector<UniqueFd> sockets, bool release_on_stop,
    std::function<void(pid_t)> on_taken,
    std::function<void(std::string, std::string)> log)
    : path_(std::move(path)),
      sockets_(std::move(sockets)),
      release_on_stop_(release_on_stop),
      on_taken_(std::move(on_taken)),
      log_(std::move(log)) {}

HandoverServer::~HandoverServer() { Stop(); }

absl::Status HandoverServer::Start() {
  const std::string tmp = absl::StrCat(path_, ".", getpid());
  sockaddr_un sun{};
  if (!FillAddress(tmp, &sun)) {
    return absl::InvalidArgumentError("handover_socket: path too long");
  }
  listen_fd_.Reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listen_fd_.valid()) return Errno("handover socket");
  ::unlink(tmp.c_str());  // left by a crashed process with our pid
  // Only this user may connect (SO_PEERCRED is checked too); the mode is
  // set before the socket gets its public name.
  if (bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) !=
          0 ||
      chmod(tmp.c_str(), 0600) != 0 || listen(listen_fd_.get(), 1) != 0) {
    absl::Status s = Errno(absl::StrCat("handover_socket ", JsonEscape(path_)));
    ::unlink(tmp.c_str());
    return s;
  }
  struct stat st {};
  if (stat(tmp.c_str(), &st) != 0 || rename(tmp.c_str(), path_.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("handover_socket ", JsonEscape(path_)));
    ::unlink(tmp.c_str());
    return s;
  }
  inode_ = st.st_ino;
  stop_fd_.Reset(eventfd(0, EFD_CLOEXEC));
  if (!stop_fd_.valid()) return Errno("eventfd");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void HandoverServer::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
  if (inode_ != 0) {
    // A newer process renamed its own socket over the path: not ours.
    struct stat st {};
    if (stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) {
      ::unlink(path_.c_str());
    }
    inode_ = 0;
  }
  listen_fd_.Reset();
  sockets_.clear();
}

void HandoverServer::Run() {
  pthread_setname_np(pthread_self(), "popgate-handovr");
  while (true) {
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((p[1].revents & POLLIN) != 0) return;
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    // The same user, or root (who could take the sockets anyway, e.g. with
    // pidfd_getfd): a new popgate started as root that drops to `user`.
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
      log_("handover_refused",
           absl::StrCat(
               ",\"peer_pid\":", cred.pid, ",\"peer_uid\":", cred.uid,
               ",\"error\":\"only a process of the same user may take the "
               "listening sockets over: start the new popgate as the same "
               "user\""));
      continue;
    }
    if (Serve(conn.get())) {
      conn.Reset();
      // Only the first successful hand-over: the sockets are the new
      // process's now.
      listen_fd_.Reset();
      // The path names the new process's socket from now on (it renames
      // its own over it): never unlink it.
      inode_ = 0;
      on_taken_(cred.pid);
      return;
    }
    log_("handover_failed",
         absl::StrCat(",\"peer_pid\":", cred.pid,
                      ",\"error\":\"the new process did not finish the "
                      "hand-over (it stalled, failed or exited): this one "
                      "keeps serving\""));
  }
}

bool HandoverServer::Serve(int conn) {
  SetTimeouts(conn, kHandoverStepTimeout);
  if (!WaitReadable(conn, stop_fd_.get(), absl::Now() + kHandoverStepTimeout)) {
    return false;
  }
  absl::StatusOr<std::string> hello = RecvText(conn);
  if (!hello.ok() || *hello != kHello) return false;
  if (!SendText(conn, absl::StrCat("popgate-handover 1 fds ", sockets_.size(),
                                   " pid ", getpid(), " release ",
                                   release_on_stop_ ? 1 : 0))
           .ok()) {
    return false;
  }
  sent_.store(true);
  for (size_t i = 0; i < sockets_.size(); ++i) {
    if (!SendText(conn, absl::StrCat("fd ", i), sockets_[i].get()).ok()) {
      return false;
    }
  }
  if (!WaitReadable(conn, stop_fd_.get(), absl::Now() + kHandoverTakeTimeout)) {
    return false;
  }
  absl::StatusOr<std::string> taken = RecvText(conn);
  if (!taken.ok() || *taken != kTaken) return false;
  // The new process accepts on every socket already; "bye" is a courtesy
  // (it may have gone since), the hand-over is done either way.
  SendText(conn, kBye).IgnoreError();
  return true;
}

}  // namespace popgate
