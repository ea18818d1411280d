// CIDR parsing and membership (net/cidr_set), as in trusted_networks.
// Input: one byte family selector, 16 bytes of a probe address, then the
// networks, one per line.
//
// Properties: what Parse accepts is "address[/bits]" with bits in range and
// no host bits set (regression: "10.0.0.1/8" was accepted silently); the
// network's own address is in the set (IPv4 nets also as v4-mapped IPv6);
// Contains(probe) agrees with a reference prefix match over all networks.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "net/cidr_set.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// ::ffff:0:0/96, the IPv4-mapped IPv6 addresses.
constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};

struct RefNet {
  bool v4;
  std::array<uint8_t, 16> addr{};
  int bits;
};

bool Match(const uint8_t* a, const uint8_t* b, int bits) {
  for (int i = 0; i < bits; ++i) {
    const int mask = 0x80 >> (i % 8);
    if ((a[i / 8] & mask) != (b[i / 8] & mask)) return false;
  }
  return true;
}

sockaddr_in V4(const uint8_t* a) {
  sockaddr_in s{};
  s.sin_family = AF_INET;
  std::memcpy(&s.sin_addr, a, 4);
  return s;
}

sockaddr_in6 V6(const uint8_t* a) {
  sockaddr_in6 s{};
  s.sin6_family = AF_INET6;
  std::memcpy(&s.sin6_addr, a, 16);
  return s;
}

sockaddr_in6 Mapped(const uint8_t* a) {
  uint8_t m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  std::memcpy(m + 12, a, 4);
  return V6(m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 17) return 0;
  const uint8_t selector = data[0];
  const uint8_t* probe = data + 1;
  std::string_view text(reinterpret_cast<const char*>(data) + 17, size - 17);
  std::vector<std::string> nets;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    nets.emplace_back(text.substr(0, nl));
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  absl::StatusOr<popgate::CidrSet> set = popgate::CidrSet::Parse(nets);
  if (!set.ok()) return 0;
  FUZZ_CHECK(set->size() == nets.size());

  // The reference reading of each accepted network.
  std::vector<RefNet> ref;
  for (const std::string& net : nets) {
    const size_t slash = net.find('/');
    const std::string host = net.substr(0, slash);
    FUZZ_CHECK(host.find('\0') == std::string::npos);
    RefNet r{};
    if (inet_pton(AF_INET, host.c_str(), r.addr.data()) == 1) {
      r.v4 = true;
      r.bits = 32;
    } else {
      FUZZ_CHECK(inet_pton(AF_INET6, host.c_str(), r.addr.data()) == 1);
      r.v4 = false;
      r.bits = 128;
    }
    if (slash != std::string::npos) {
      const std::string bits = net.substr(slash + 1);
      FUZZ_CHECK(!bits.empty() && bits.size() <= 3);
      int b = 0;
      for (char c : bits) {
        FUZZ_CHECK(c >= '0' && c <= '9');
        b = b * 10 + (c - '0');
      }
      FUZZ_CHECK(b <= r.bits);
      r.bits = b;
    }
    // No host bits: the address is the network.
    for (int i = r.bits; i < (r.v4 ? 32 : 128); ++i) {
      FUZZ_CHECK((r.addr[i / 8] & (0x80 >> (i % 8))) == 0);
    }
    ref.push_back(r);
    if (r.v4) {
      sockaddr_in a = V4(r.addr.data());
      sockaddr_in6 m = Mapped(r.addr.data());
      FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&a)));
      FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&m)));
    } else if (std::memcmp(r.addr.data(), kMappedPrefix, 12) != 0) {
      // (A v4-mapped address is looked up as IPv4: see the probe below.)
      sockaddr_in6 a = V6(r.addr.data());
      FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&a)));
    }
  }

  // The probe, as IPv4, IPv6 or v4-mapped IPv6.
  bool want = false;
  if (selector % 3 == 0) {
    for (const RefNet& r : ref)
      want |= r.v4 && Match(probe, r.addr.data(), r.bits);
    sockaddr_in a = V4(probe);
    FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&a)) == want);
  } else if (selector % 3 == 1) {
    // A v4-mapped probe is its IPv4 address (that is how a dual-stack
    // listener sees IPv4 clients): it matches IPv4 networks only.
    const bool mapped = std::memcmp(probe, kMappedPrefix, 12) == 0;
    for (const RefNet& r : ref) {
      want |= mapped ? r.v4 && Match(probe + 12, r.addr.data(), r.bits)
                     : !r.v4 && Match(probe, r.addr.data(), r.bits);
    }
    sockaddr_in6 a = V6(probe);
    FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&a)) == want);
  } else {
    for (const RefNet& r : ref)
      want |= r.v4 && Match(probe, r.addr.data(), r.bits);
    sockaddr_in6 m = Mapped(probe);
    FUZZ_CHECK(set->Contains(reinterpret_cast<const sockaddr*>(&m)) == want);
  }
  return 0;
}
