// Helpers for tests that drive the io_uring runtime: run a Task to the end
// on a ring, and connected socket pairs (TCP over loopback, so resets and
// half-closes behave as they do for real clients and backends).
#ifndef POPGATE_TESTS_RUNTIME_TEST_UTIL_H_
#define POPGATE_TESTS_RUNTIME_TEST_UTIL_H_

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate::testing {

namespace internal {

template <typename T>
Detached DriveTask(Task<T> task, std::optional<T>& out, bool& done) {
  out.emplace(co_await task);
  done = true;
}

inline Detached DriveVoid(Task<void> task, bool& done) {
  co_await task;
  done = true;
}

}  // namespace internal

// Runs the ring on this thread until `done` is true or `limit` has passed.
// False on the limit: whatever is still in flight is leaked on purpose
// (destroying a frame with an operation in flight would be worse).
inline bool RunUntil(Ring& ring, const bool& done,
                     absl::Duration limit = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done && absl::Now() < deadline) ring.RunOnce(absl::Milliseconds(20));
  return done;
}

// Runs `task` on `ring` (this thread) to its end; nullopt if it did not end
// within `limit`.
template <typename T>
std::optional<T> RunTask(Ring& ring, Task<T> task,
                         absl::Duration limit = absl::Seconds(10)) {
  std::optional<T> out;
  bool done = false;
  internal::DriveTask(std::move(task), out, done);
  if (!RunUntil(ring, done, limit)) return std::nullopt;
  return out;
}

inline bool RunVoidTask(Ring& ring, Task<void> task,
                        absl::Duration limit = absl::Seconds(10)) {
  bool done = false;
  internal::DriveVoid(std::move(task), done);
  return RunUntil(ring, done, limit);
}

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
  UniqueFd fd;
  uint16_t port = 0;
};

inline Listener ListenLoopback() {
  Listener l;
  l.fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(l.fd.get(), 64) != 0) {
    l.fd.Reset();
    return l;
  }
  socklen_t len = sizeof(a);
  ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  l.port = ntohs(a.sin_port);
  return l;
}

// A port on 127.0.0.1 where nothing listens (bound once, then closed).
inline uint16_t ClosedLoopbackPort() { return ListenLoopback().port; }

// Two connected TCP sockets over loopback (blocking).
inline std::pair<UniqueFd, UniqueFd> TcpPair() {
  Listener l = ListenLoopback();
  UniqueFd a(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(l.port);
  if (::connect(a.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return {};
  }
  UniqueFd b(::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  int one = 1;
  ::setsockopt(a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(b.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return {std::move(a), std::move(b)};
}

// Two connected AF_UNIX stream sockets.
inline std::pair<UniqueFd, UniqueFd> UnixPair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {};
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// Closes with a reset (SO_LINGER 0) instead of a FIN.
inline void CloseWithReset(UniqueFd& fd) {
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.Reset();
}

// Bounds every blocking read and write on `fd` (so a test that goes wrong
// fails instead of hanging).
inline void SetIoTimeout(int fd, absl::Duration d) {
  timeval tv = absl::ToTimeval(d);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Blocking helpers for the test's own end of a socket.
inline bool WriteAllBlocking(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until EOF, an error or `max` bytes. `error` gets errno on failure
// (0 on EOF).
inline std::string ReadUntilEof(int fd, size_t max = size_t{1} << 30,
                                int* error = nullptr) {
  std::string out;
  char buf[65536];
  if (error != nullptr) *error = 0;
  while (out.size() < max) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (error != nullptr) *error = errno;
      break;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads exactly `n` bytes (less on EOF or error).
inline std::string ReadExactly(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    size_t want = std::min(sizeof(buf), n - out.size());
    ssize_t got = ::recv(fd, buf, want, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// A deterministic, non-repeating-looking payload of `n` bytes.
inline std::string Pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_RUNTIME_TEST_UTIL_H_
