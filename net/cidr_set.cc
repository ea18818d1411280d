#include "net/cidr_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

bool PrefixMatches(const uint8_t* a, const uint8_t* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

absl::StatusOr<CidrSet> CidrSet::Parse(const std::vector<std::string>& nets) {
  CidrSet set;
  for (const std::string& text : nets) {
    size_t slash = text.find('/');
    std::string host = text.substr(0, slash);
    Net n{};
    if (inet_pton(AF_INET, host.c_str(), n.addr.data()) == 1) {
      n.v4 = true;
      n.bits = 32;
    } else if (inet_pton(AF_INET6, host.c_str(), n.addr.data()) == 1) {
      n.v4 = false;
      n.bits = 128;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("bad network '", text, "'"));
    }
    if (slash != std::string::npos) {
      std::string bits = text.substr(slash + 1);
      char* end = nullptr;
      long b = std::strtol(bits.c_str(), &end, 10);
      if (bits.empty() || *end != '\0' || b < 0 || b > n.bits) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad prefix length in '", text, "'"));
      }
      n.bits = static_cast<int>(b);
    }
    set.nets_.push_back(n);
  }
  return set;
}

bool CidrSet::Contains(const sockaddr* addr) const {
  const uint8_t* bytes = nullptr;
  bool v4 = false;
  if (addr->sa_family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
    v4 = true;
  } else if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    bytes = in6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      bytes += 12;
      v4 = true;
    }
  } else {
    return false;
  }
  for (const Net& n : nets_) {
    if (n.v4 == v4 && PrefixMatches(bytes, n.addr.data(), n.bits)) return true;
  }
  return false;
}

}  // namespace popgate
