#include "net/cidr_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/escaping.h"
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

// Config text may hold anything: escaped before it reaches a terminal.
std::string Quote(std::string_view s) {
  return absl::StrCat(
      "'", absl::CHexEscape(absl::string_view(s.data(), s.size())), "'");
}

}  // namespace

absl::StatusOr<CidrSet::Net> CidrSet::ParseOne(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  Net n{};
  if (host.find('\0') != std::string::npos) {
    // inet_pton would stop at the NUL and accept the prefix.
  } else if (inet_pton(AF_INET, host.c_str(), n.addr.data()) == 1) {
    n.v4 = true;
    n.bits = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), n.addr.data()) == 1) {
    n.v4 = false;
    n.bits = 128;
  }
  if (n.bits == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad network ", Quote(text), " (want e.g. \"10.0.0.0/8\")"));
  }
  if (slash != std::string_view::npos) {
    // Digits only: strtol would also take " 8", "+8" and "08x".
    const std::string_view bits = text.substr(slash + 1);
    int b = 0;
    bool ok = !bits.empty() && bits.size() <= 3;
    for (char c : bits) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) b = b * 10 + (c - '0');
    }
    if (!ok || b > n.bits) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad network ", Quote(text),
                       ": the prefix length must be 0..", n.bits));
    }
    n.bits = b;
  }
  // "10.0.0.1/8" most likely means the network 10.0.0.0/8, but it may be a
  // typo for 10.0.0.1/32 or /24: say so instead of guessing.
  Net masked = n;
  const int full = n.bits / 8;
  const int size = n.v4 ? 4 : 16;
  for (int i = full; i < size; ++i) {
    const int keep = i == full ? n.bits % 8 : 0;
    masked.addr[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  if (masked.addr != n.addr) {
    char buf[INET6_ADDRSTRLEN] = "?";
    inet_ntop(n.v4 ? AF_INET : AF_INET6, masked.addr.data(), buf, sizeof(buf));
    return absl::InvalidArgumentError(absl::StrCat(
        "bad network ", Quote(text), ": host bits set; write \"", buf, "/",
        n.bits, "\" for the network (or the address's own prefix length)"));
  }
  return n;
}

absl::Status CidrSet::Validate(std::string_view net) {
  return ParseOne(net).status();
}

absl::StatusOr<CidrSet> CidrSet::Parse(const std::vector<std::string>& nets) {
  CidrSet set;
  for (const std::string& text : nets) {
    absl::StatusOr<Net> n = ParseOne(text);
    if (!n.ok()) return n.status();
    set.nets_.push_back(*n);
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
