#include "server/socket_activation.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

void UnsetAll() {
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
}

}  // namespace

absl::StatusOr<std::vector<UniqueFd>> TakeActivatedSockets() {
  std::vector<UniqueFd> out;
  const char* pid_text = getenv("LISTEN_PID");
  const char* fds_text = getenv("LISTEN_FDS");
  if (pid_text == nullptr || fds_text == nullptr) return out;
  uint64_t pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid)) {
    UnsetAll();
    return absl::InvalidArgumentError(
        "LISTEN_PID is not a number: start popgate from a systemd socket "
        "unit, or unset LISTEN_PID and LISTEN_FDS");
  }
  // For another process (a wrapper that did not unset them): not ours.
  if (pid != static_cast<uint64_t>(getpid())) return out;
  int n = 0;
  if (!absl::SimpleAtoi(fds_text, &n) || n < 0 || n > 4096) {
    UnsetAll();
    return absl::InvalidArgumentError(
        "LISTEN_FDS is not a count of 0..4096 file descriptors: fix the "
        "launcher, or unset LISTEN_PID and LISTEN_FDS");
  }
  UnsetAll();
  for (int fd = kFirstFd; fd < kFirstFd + n; ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LISTEN_FDS=", n, " but fd ", fd,
          " is not open: the launcher passed fewer sockets than it says"));
    }
    fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    out.emplace_back(fd);
  }
  return out;
}

}  // namespace popgate
