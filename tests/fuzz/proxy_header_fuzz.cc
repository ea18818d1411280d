// PROXY protocol v1/v2 header parsing (net/proxy_protocol), as a front
// load balancer's bytes would reach it. Input: the bytes at the start of a
// connection.
//
// Properties: no crash; an accepted header took at most the input and at
// most kMaxProxyHeader bytes, and has an address pair exactly when it is
// not LOCAL/UNKNOWN; the parser waits for more only while a header could
// still fit (under 107 bytes for v1, kMaxProxyHeader for v2); a v2 PROXY
// header for TCP4/TCP6 without TLVs is exactly what EncodeProxyV2 makes of
// its parsed addresses (IPv6 pairs that are both v4-mapped excepted: the
// encoder sends those as TCP4); a v1 TCP4 line is exactly the line its
// parsed addresses print as, a v1 TCP6 line's printed form parses to the
// same addresses; every proper prefix of an accepted header asks for more,
// and every longer input gives the same result.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "net/proxy_protocol.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::ProxyHeader;
using Result = absl::StatusOr<std::optional<ProxyHeader>>;

bool SameAddress(const std::optional<popgate::SocketAddress>& a,
                 const std::optional<popgate::SocketAddress>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->family() == b->family() && a->ToString() == b->ToString();
}

bool Same(const ProxyHeader& a, const ProxyHeader& b) {
  return a.version == b.version && a.local == b.local && a.length == b.length &&
         SameAddress(a.src, b.src) && SameAddress(a.dst, b.dst) &&
         a.authority == b.authority && a.ssl == b.ssl &&
         a.ssl_version == b.ssl_version && a.ssl_cipher == b.ssl_cipher;
}

bool NeedsMore(const Result& r) { return r.ok() && !r->has_value(); }

bool V4Mapped(const popgate::SocketAddress& a) {
  if (a.family() != AF_INET6) return false;
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
}

// "1.2.3.4:5" / "[::1]:5" -> "1.2.3.4" / "::1".
std::string HostOf(const popgate::SocketAddress& a) {
  std::string s = a.ToString();
  s = s.substr(0, s.rfind(':'));
  if (!s.empty() && s.front() == '[') s = s.substr(1, s.size() - 2);
  return s;
}

void CheckPrefixes(std::string_view in, const ProxyHeader& h) {
  // Every proper prefix while short; a spread of them (and the last few)
  // for long v2 headers, which would otherwise cost length^2 per input.
  const size_t n = h.length;
  const size_t stride = n <= 256 ? 1 : n / 64;
  for (size_t k = 0; k < n; k += stride) {
    FUZZ_CHECK(NeedsMore(popgate::ParseProxyHeader(in.substr(0, k))));
  }
  for (size_t k = n > 8 ? n - 8 : 0; k < n; ++k) {
    FUZZ_CHECK(NeedsMore(popgate::ParseProxyHeader(in.substr(0, k))));
  }
  // The header alone, and the header with a byte more, give the same.
  for (size_t k : {n, std::min(in.size(), n + 1)}) {
    Result again = popgate::ParseProxyHeader(in.substr(0, k));
    FUZZ_CHECK(again.ok() && again->has_value());
    FUZZ_CHECK(Same(**again, h));
  }
}

void CheckV2(std::string_view in, const ProxyHeader& h) {
  const uint8_t ver_cmd = static_cast<uint8_t>(in[12]);
  const uint8_t fam = static_cast<uint8_t>(in[13]);
  FUZZ_CHECK(ver_cmd == 0x20 || ver_cmd == 0x21);
  if (ver_cmd == 0x20) FUZZ_CHECK(h.local);
  if (h.local) return;
  FUZZ_CHECK(fam == 0x11 || fam == 0x21);
  const size_t block = fam == 0x11 ? 12 : 36;
  FUZZ_CHECK(h.src->family() == (fam == 0x11 ? AF_INET : AF_INET6));
  if (h.length != 16 + block) return;  // TLVs: not re-encoded
  if (V4Mapped(*h.src) && V4Mapped(*h.dst)) return;
  const std::string enc = popgate::EncodeProxyV2(*h.src, *h.dst, nullptr);
  FUZZ_CHECK(enc == in.substr(0, h.length));
}

void CheckV1(std::string_view in, const ProxyHeader& h) {
  FUZZ_CHECK(h.length <= 107);
  FUZZ_CHECK(in.substr(h.length - 2, 2) == "\r\n");
  if (h.local) return;
  const bool v6 = h.src->family() == AF_INET6;
  const std::string line = absl::StrCat(
      "PROXY ", v6 ? "TCP6 " : "TCP4 ", HostOf(*h.src), " ", HostOf(*h.dst),
      " ", h.src->port(), " ", h.dst->port(), "\r\n");
  if (!v6) {
    FUZZ_CHECK(line == in.substr(0, h.length));
    return;
  }
  Result printed = popgate::ParseProxyHeader(line);
  FUZZ_CHECK(printed.ok() && printed->has_value());
  FUZZ_CHECK(SameAddress((*printed)->src, h.src));
  FUZZ_CHECK(SameAddress((*printed)->dst, h.dst));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  Result r = popgate::ParseProxyHeader(in);
  if (!r.ok()) return 0;
  if (!r->has_value()) {
    // Waiting for more is only right while a header could still fit.
    FUZZ_CHECK(size < popgate::kMaxProxyHeader);
    if (size > 0 && in[0] == 'P') FUZZ_CHECK(size < 107);
    return 0;
  }
  const ProxyHeader& h = **r;
  FUZZ_CHECK(h.length > 0 && h.length <= size);
  FUZZ_CHECK(h.length <= popgate::kMaxProxyHeader);
  FUZZ_CHECK(h.version == 1 || h.version == 2);
  FUZZ_CHECK(h.local != h.src.has_value());
  FUZZ_CHECK(h.src.has_value() == h.dst.has_value());
  if (h.src) {
    FUZZ_CHECK(h.src->family() == AF_INET || h.src->family() == AF_INET6);
    FUZZ_CHECK(h.src->family() == h.dst->family());
  }
  if (h.version == 2) {
    FUZZ_CHECK(h.length >= 16);
    FUZZ_CHECK(in.substr(0, 12) == popgate::kProxyV2Signature);
    CheckV2(in, h);
  } else {
    FUZZ_CHECK(in.substr(0, 6) == "PROXY ");
    FUZZ_CHECK(h.authority.empty() && !h.ssl);
    CheckV1(in, h);
  }
  CheckPrefixes(in, h);
  return 0;
}
