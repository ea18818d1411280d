// "host:port" parsing (net/socket_address ParseHostPort, and config's
// ValidateHostPort, which --check-config uses for listener and backend
// addresses). No DNS: names are checked for shape only.
//
// Properties:
//  - what config validation accepts, the net/ parser accepts (one parser);
//  - an accepted address literal resolves, to itself: getaddrinfo with
//    AI_NUMERICHOST takes it, ResolveHostPort gives that address, and its
//    ToString() parses back to it (regression: "[:]:80" passed
//    --check-config and could not be resolved at start, regressions/address/);
//  - an accepted name is not a number in disguise: getaddrinfo with
//    AI_NUMERICHOST refuses it (or it would bypass checks made on literals).
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "net/socket_address.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool SameAddress(const popgate::SocketAddress& a,
                 const popgate::SocketAddress& b) {
  if (a.family() != b.family() || a.port() != b.port()) return false;
  if (a.family() == AF_INET) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in*>(a.get())->sin_addr,
                       &reinterpret_cast<const sockaddr_in*>(b.get())->sin_addr,
                       sizeof(in_addr)) == 0;
  }
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a.get())->sin6_addr,
                     &reinterpret_cast<const sockaddr_in6*>(b.get())->sin6_addr,
                     sizeof(in6_addr)) == 0;
}

// getaddrinfo restricted to literals (never a DNS query).
bool NumericLookup(const std::string& host, int* family) {
  if (host.find('\0') != std::string::npos) return false;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), "1", &hints, &res);
  if (rc != 0 || res == nullptr) return false;
  *family = res->ai_family;
  freeaddrinfo(res);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool allow_port_zero = data[0] & 1;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1,
                              size - 1);

  absl::StatusOr<popgate::HostPort> hp =
      popgate::ParseHostPort(text, allow_port_zero);
  if (popgate::ValidateHostPort(text).ok()) {
    FUZZ_CHECK(popgate::ParseHostPort(text, true).ok());
  }
  if (!hp.ok()) return 0;
  FUZZ_CHECK(hp->port != 0 || allow_port_zero);
  FUZZ_CHECK(!hp->host.empty());

  int family = AF_UNSPEC;
  const bool numeric = NumericLookup(hp->host, &family);
  if (hp->family == AF_UNSPEC) {
    FUZZ_CHECK(!numeric);  // a name, not a literal
    return 0;
  }
  FUZZ_CHECK(hp->family == AF_INET || hp->family == AF_INET6);
  FUZZ_CHECK(numeric && family == hp->family);
  std::optional<popgate::SocketAddress> addr = hp->Numeric();
  FUZZ_CHECK(addr.has_value());
  FUZZ_CHECK(addr->family() == hp->family && addr->port() == hp->port);

  // Resolution at start gives the same address (a literal: no DNS).
  absl::StatusOr<popgate::SocketAddress> resolved =
      popgate::ResolveHostPort(text);
  FUZZ_CHECK(resolved.ok());
  FUZZ_CHECK(SameAddress(*resolved, *addr));

  // What we print parses back to the same address.
  absl::StatusOr<popgate::HostPort> again =
      popgate::ParseHostPort(addr->ToString(), true);
  FUZZ_CHECK(again.ok() && again->family == hp->family);
  std::optional<popgate::SocketAddress> addr2 = again->Numeric();
  FUZZ_CHECK(addr2.has_value() && SameAddress(*addr, *addr2));
  return 0;
}
