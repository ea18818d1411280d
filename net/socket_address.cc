#include "net/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// Addresses come from config files and may hold anything; escape them
// before they reach a terminal or a log line.
std::string Quote(std::string_view s) {
  return absl::StrCat(
      "'", absl::CHexEscape(absl::string_view(s.data(), s.size())), "'");
}

absl::Status Bad(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "address ", Quote(text), absl::string_view(why.data(), why.size())));
}

// RFC 1123 host name as getaddrinfo would look it up; '_' tolerated because
// internal names use it.
bool IsValidName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // FQDN
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
    }
    start = dot + 1;
  }
  return true;
}

}  // namespace

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

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

std::optional<SocketAddress> HostPort::Numeric() const {
  SocketAddress a;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) {
      return std::nullopt;
    }
    a.len = sizeof(sockaddr_in);
    return a;
  }
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      return std::nullopt;
    }
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text,
                                       bool allow_port_zero) {
  HostPort out;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return Bad(text, " must be \"[v6-address]:port\"");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    out.host = std::string(host);
    in6_addr ignored;
    // The resolver would take what inet_pton takes, nothing else.
    if (out.host.find('\0') != std::string::npos ||
        inet_pton(AF_INET6, out.host.c_str(), &ignored) != 1) {
      return Bad(text, ": bad IPv6 address");
    }
    out.family = AF_INET6;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Bad(text, " must be \"host:port\"");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty()) return Bad(text, ": empty host");
    if (host.find(':') != std::string_view::npos) {
      return Bad(text, ": put IPv6 addresses in brackets");
    }
    out.host = std::string(host);
    bool dotted = true;
    for (char c : host) dotted = dotted && (absl::ascii_isdigit(c) || c == '.');
    in_addr ignored;
    if (dotted) {
      // Digits and dots are never looked up as a name: a dotted quad or
      // nothing (inet_pton refuses "10.1" and "010.0.0.1" forms).
      if (inet_pton(AF_INET, out.host.c_str(), &ignored) != 1) {
        return Bad(text, ": bad IPv4 address");
      }
      out.family = AF_INET;
    } else {
      for (char c : host) {
        if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') {
          return Bad(text, ": bad character in host");
        }
      }
      if (!IsValidName(host)) return Bad(text, ": bad host name");
      // getaddrinfo takes inet_aton's forms ("0x7f.1", "0177.0.0.1") as
      // addresses, not names: refuse them rather than let a number pass as
      // a name (the loop check looks at numeric addresses before DNS).
      if (inet_aton(out.host.c_str(), &ignored) != 0) {
        return Bad(text, ": bad IPv4 address (write it as a dotted quad)");
      }
    }
  }
  if (host.empty()) return Bad(text, ": empty host");
  uint32_t p = 0;
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) {
    digits = digits && absl::ascii_isdigit(c);
    if (digits) p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!digits || p > 65535 || (p == 0 && !allow_port_zero)) {
    return Bad(text, ": port must be 1..65535");
  }
  out.port = static_cast<uint16_t>(p);
  return out;
}

absl::StatusOr<SocketAddress> ResolveHostPort(std::string_view host_port) {
  absl::StatusOr<HostPort> hp =
      ParseHostPort(host_port, /*allow_port_zero=*/true);
  if (!hp.ok()) return hp.status();
  if (std::optional<SocketAddress> numeric = hp->Numeric()) return *numeric;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp->port);
  int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    if (res != nullptr) freeaddrinfo(res);
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resolve ", Quote(host_port), ": ", gai_strerror(rc)));
  }
  SocketAddress a = SocketAddress::FromSockaddr(res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return a;
}

}  // namespace popgate
