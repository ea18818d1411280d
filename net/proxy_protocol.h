// The PROXY protocol (HAProxy's spec, versions 1 and 2): how a connection
// carries the address of the client it was made for. popgate sends v2 to
// backends (client_identity = "proxy-v2") and, with the issue "Stand in
// front of the internet", reads v1/v2 from a front load balancer.
#ifndef POPGATE_NET_PROXY_PROTOCOL_H_
#define POPGATE_NET_PROXY_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/socket_address.h"

namespace popgate {

// The 12-byte v2 signature.
inline constexpr std::string_view kProxyV2Signature{
    "\r\n\r\n\0\r\nQUIT\n", 12};
// A header longer than this is refused (v1 is at most 107 bytes; v2's
// length field allows 64 KiB of TLVs, which no sender needs).
inline constexpr size_t kMaxProxyHeader = 4096;

// The client side's TLS, for v2's PP2_TYPE_SSL TLV (and PP2_TYPE_AUTHORITY
// for the SNI name).
struct ProxyTlsInfo {
  std::string version;  // "TLSv1.3"; empty: the client did not use TLS
  std::string cipher;   // "TLS_AES_128_GCM_SHA256"
  std::string sni;      // empty: none sent
};

// A v2 PROXY command for a TCP connection from `src` to `dst` (IPv4 or
// IPv6; a v4-mapped IPv6 pair goes as IPv4, as the backend would see it
// without us). With `tls` (non-null, version set): PP2_TYPE_SSL with
// PP2_CLIENT_SSL, SSL_VERSION and SSL_CIPHER sub-TLVs; with an SNI name,
// PP2_TYPE_AUTHORITY. src and dst must be of one family.
std::string EncodeProxyV2(const SocketAddress& src, const SocketAddress& dst,
                          const ProxyTlsInfo* tls);
// The v2 LOCAL command (no address): a health check's connection, made by
// us for ourselves.
std::string EncodeProxyV2Local();

struct ProxyHeader {
  int version = 0;     // 1 or 2
  bool local = false;  // v2 LOCAL or v1 "UNKNOWN": no client address
  std::optional<SocketAddress> src;
  std::optional<SocketAddress> dst;
  // From v2 TLVs.
  std::string authority;
  bool ssl = false;
  std::string ssl_version;
  std::string ssl_cipher;
  size_t length = 0;  // bytes the header took (the rest is the stream)
};

// Parses a header at the start of `bytes`. nullopt: not enough bytes yet
// (read more, within the deadline). An error: not a PROXY header, or a
// malformed or oversized one (close the connection).
absl::StatusOr<std::optional<ProxyHeader>> ParseProxyHeader(
    std::string_view bytes);

}  // namespace popgate

#endif  // POPGATE_NET_PROXY_PROTOCOL_H_
