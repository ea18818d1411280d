#include "tests/backend/testing_pop3_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string_view>
#include <utility>

namespace popgate::testing {
namespace {

constexpr std::string_view kProxyV2Sig{"\r\n\r\n\0\r\nQUIT\n", 12};

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Pop3Reply DefaultPop3Reply(const std::string& line) {
  if (line == "CAPA") {
    return {"+OK\r\nUSER\r\nPIPELINING\r\nIMPLEMENTATION scripted\r\n.\r\n"};
  }
  if (line.starts_with("USER ")) return {"+OK send PASS\r\n"};
  if (line.starts_with("PASS ")) {
    if (line == "PASS secret") return {"+OK logged in\r\n"};
    return {"-ERR [AUTH] Invalid login\r\n"};
  }
  if (line.starts_with("AUTH PLAIN")) return {"+OK logged in\r\n"};
  if (line == "QUIT") return {"+OK bye\r\n", /*close=*/true};
  return {"-ERR unknown command\r\n"};
}

TestingPop3Server::TestingPop3Server(Pop3Script script)
    : script_(std::move(script)) {
  if (!script_.respond) script_.respond = DefaultPop3Reply;
  listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
          0 ||
      ::listen(listener_.get(), 16) != 0) {
    listener_.Reset();
    return;
  }
  socklen_t len = sizeof(a);
  ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  address_ =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&a), sizeof(a));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    listener_.Reset();
    return;
  }
  stop_read_.Reset(p[0]);
  stop_write_.Reset(p[1]);
  thread_ = std::thread([this] { Run(); });
}

TestingPop3Server::~TestingPop3Server() {
  if (stop_write_.valid()) {
    char c = 1;
    (void)!::write(stop_write_.get(), &c, 1);
  }
  if (thread_.joinable()) thread_.join();
}

std::string TestingPop3Server::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

std::vector<std::string> TestingPop3Server::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

int TestingPop3Server::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

bool TestingPop3Server::WaitUntilIdle(absl::Duration limit) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoMilliseconds(limit),
                      [this] { return !serving_; });
}

bool TestingPop3Server::WaitReadable(int fd) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
  while (true) {
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (fds[1].revents != 0) return false;
    if (fds[0].revents != 0) return true;
  }
}

void TestingPop3Server::Run() {
  while (WaitReadable(listener_.get())) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++connections_;
      serving_ = true;
    }
    // One connection at a time: enough for login tests, and the recorded
    // bytes stay in order.
    Serve(std::move(fd));
    {
      std::lock_guard<std::mutex> lock(mu_);
      serving_ = false;
    }
    cv_.notify_all();
  }
}

void TestingPop3Server::Serve(UniqueFd fd) {
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  bool header_pending = script_.expect_proxy_v2;
  if (!header_pending && script_.greeting.has_value() &&
      !SendAll(fd.get(), *script_.greeting)) {
    return;
  }
  std::string pending;
  char buf[16384];
  while (WaitReadable(fd.get())) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.append(buf, static_cast<size_t>(n));
    }
    pending.append(buf, static_cast<size_t>(n));
    if (header_pending) {
      // The v2 header: 16 fixed bytes, the last two the length of the rest.
      if (pending.size() < 16) continue;
      if (std::string_view(pending).substr(0, 12) == kProxyV2Sig) {
        size_t len = 16 + (static_cast<unsigned char>(pending[14]) << 8 |
                           static_cast<unsigned char>(pending[15]));
        if (pending.size() < len) continue;
        pending.erase(0, len);
      }
      header_pending = false;
      if (script_.greeting.has_value() &&
          !SendAll(fd.get(), *script_.greeting)) {
        return;
      }
    }
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      {
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(line);
      }
      Pop3Reply reply = script_.respond(line);
      if (!reply.bytes.empty() && !SendAll(fd.get(), reply.bytes)) return;
      if (reply.close) return;
    }
  }
}

}  // namespace popgate::testing
