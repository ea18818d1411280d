#include "tests/backend/testing_check_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace popgate::testing {

namespace {

SocketAddress Loopback(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin),
                                     sizeof(sin));
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

SocketAddress ClosedLoopbackPort() {
  // Bind an ephemeral port and close it again: nothing listens there (the
  // kernel hands ports out in turn, so it is not reused at once).
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress a = Loopback(0);
  if (::bind(fd.get(), a.get(), a.len) != 0) std::abort();
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss),
                                     len);
}

CheckServer::CheckServer(CheckServerOptions options)
    : options_(std::move(options)) {
  listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  SocketAddress a = Loopback(0);
  if (::bind(listener_.get(), a.get(), a.len) != 0 ||
      ::listen(listener_.get(), 16) != 0) {
    std::abort();
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  address_ =
      SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  thread_ = std::thread([this] { Run(); });
}

CheckServer::~CheckServer() {
  stop_.store(true);
  thread_.join();
}

std::vector<std::string> CheckServer::preambles() const {
  std::lock_guard<std::mutex> lock(mu_);
  return preambles_;
}

void CheckServer::Run() {
  while (!stop_.load()) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    connections_.fetch_add(1);
    open_.store(true);
    Serve(conn.get());
    open_.store(false);
  }
}

void CheckServer::Serve(int fd) {
  // Short receive timeouts so the stop flag is seen.
  timeval tv{0, 50'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string in;
  // Reads more into `in`; false when the connection ended (or we stop).
  auto read_more = [&]() -> bool {
    char buf[512];
    while (!stop_.load()) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        closed_by_peer_.fetch_add(1);
        return false;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      closed_by_peer_.fetch_add(1);  // a reset
      return false;
    }
    return false;
  };
  if (options_.expect_proxy_v2) {
    while (in.size() < 16) {
      if (!read_more()) return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    preambles_.push_back(in.substr(0, 16));
    in.erase(0, 16);
  }
  if (!options_.greeting.empty()) WriteAll(fd, options_.greeting + "\r\n");
  while (true) {
    size_t eol = in.find("\r\n");
    if (eol == std::string::npos) {
      if (!read_more()) return;
      continue;
    }
    std::string line = in.substr(0, eol);
    in.erase(0, eol + 2);
    if (options_.greeting.empty()) continue;  // mute: never answers
    if (line == "CAPA") {
      capas_.fetch_add(1);
      WriteAll(fd, options_.capa_reply);
    } else if (line == "STLS") {
      stls_.fetch_add(1);
      WriteAll(fd, "-ERR not here\r\n");
    } else if (line == "QUIT") {
      quits_.fetch_add(1);
      WriteAll(fd, "+OK bye\r\n");
      return;
    } else {
      WriteAll(fd, "-ERR unknown command\r\n");
    }
  }
}

}  // namespace popgate::testing
