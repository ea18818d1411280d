#include "net/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace popgate {

std::string SocketAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return absl::StrCat(host, ":", ntohs(in->sin_port));
  }
  if (family() == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
  }
  return "unknown";
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (len > sizeof(a.storage)) len = sizeof(a.storage);
  std::memcpy(&a.storage, sa, len);
  a.len = len;
  return a;
}

absl::StatusOr<SocketAddress> ResolveHostPort(std::string_view host_port) {
  std::string_view host, port;
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find("]:");
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address '", std::string(host_port), "': want [v6]:port"));
    }
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address '", std::string(host_port), "': want host:port"));
    }
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  int port_num = 0;
  if (host.empty() || !absl::SimpleAtoi(std::string(port), &port_num) ||
      port_num < 0 || port_num > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", std::string(host_port), "'"));
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string host_s(host), port_s(port);
  int rc = getaddrinfo(host_s.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resolve '", std::string(host_port), "': ", gai_strerror(rc)));
  }
  SocketAddress a = SocketAddress::FromSockaddr(res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return a;
}

}  // namespace popgate
