#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// Byte 12: version 2 in the high nibble, the command in the low one.
constexpr uint8_t kCmdLocal = 0x20;
constexpr uint8_t kCmdProxy = 0x21;
// Byte 13: address family (high nibble) and transport (low nibble).
constexpr uint8_t kFamUnspec = 0x00;
constexpr uint8_t kFamTcp4 = 0x11;
constexpr uint8_t kFamTcp6 = 0x21;
constexpr size_t kV2FixedLen = 16;  // signature, ver_cmd, fam, len
constexpr size_t kTcp4Block = 12;   // 2 * 4 address bytes + 2 * 2 port bytes
constexpr size_t kTcp6Block = 36;   // 2 * 16 + 2 * 2

constexpr uint8_t kTypeAuthority = 0x02;
constexpr uint8_t kTypeSsl = 0x20;
constexpr uint8_t kSubtypeSslVersion = 0x21;
constexpr uint8_t kSubtypeSslCipher = 0x23;
constexpr uint8_t kClientSsl = 0x01;

// Values longer than this are left out of the header rather than sent: an
// SNI name is at most 255 bytes, a version or cipher name a few dozen, so
// anything longer is not what it claims and must not grow the header past
// what receivers (and our own parser) accept.
constexpr size_t kMaxTlvValue = 255;

void PutU16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void PutTlv(std::string& out, uint8_t type, std::string_view value) {
  out.push_back(static_cast<char>(type));
  PutU16(out, value.size());
  out.append(value);
}

// An address as the header carries it: 4 or 16 bytes in network order and
// the port in network order.
struct Wire {
  int family = AF_UNSPEC;  // AF_INET or AF_INET6; AF_UNSPEC: unusable
  uint8_t addr[16] = {};
  uint8_t port[2] = {};
};

bool IsV4Mapped(const in6_addr& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.s6_addr, kPrefix, sizeof(kPrefix)) == 0;
}

Wire ToWire(const SocketAddress& a) {
  Wire w;
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    w.family = AF_INET;
    std::memcpy(w.addr, &in->sin_addr, 4);
    std::memcpy(w.port, &in->sin_port, 2);
  } else if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    std::memcpy(w.port, &in6->sin6_port, 2);
    if (IsV4Mapped(in6->sin6_addr)) {
      // The backend would have seen this peer as IPv4 without us.
      w.family = AF_INET;
      std::memcpy(w.addr, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      w.family = AF_INET6;
      std::memcpy(w.addr, in6->sin6_addr.s6_addr, 16);
    }
  }
  return w;
}

// An IPv4 address as v4-mapped IPv6, for a pair whose other half is IPv6.
void WidenToV6(Wire& w) {
  if (w.family != AF_INET) return;
  uint8_t v4[4];
  std::memcpy(v4, w.addr, 4);
  std::memset(w.addr, 0, sizeof(w.addr));
  w.addr[10] = 0xff;
  w.addr[11] = 0xff;
  std::memcpy(w.addr + 12, v4, 4);
  w.family = AF_INET6;
}

// ---- Parsing. ----

constexpr std::string_view kV1Prefix = "PROXY ";
// The spec's bound for a v1 line, CRLF included.
constexpr size_t kMaxV1 = 107;

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "malformed PROXY header: ", absl::string_view(what.data(), what.size())));
}

uint16_t GetU16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) |
                               static_cast<uint8_t>(b[at + 1]));
}

// `prefix` is a prefix of `whole`, or `whole` of `prefix`.
bool PrefixMatch(std::string_view bytes, std::string_view whole) {
  const size_t n = std::min(bytes.size(), whole.size());
  return bytes.substr(0, n) == whole.substr(0, n);
}

SocketAddress FromWire(int family, const char* addr, const char* port) {
  SocketAddress a;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, addr, 4);
    std::memcpy(&in->sin_port, port, 2);
    a.len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, addr, 16);
    std::memcpy(&in6->sin6_port, port, 2);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

// PP2_TYPE_SSL's value: client flags, verify, sub-TLVs.
absl::Status ParseSslTlv(std::string_view v, ProxyHeader& h) {
  if (v.size() < 5) return Malformed("short SSL TLV");
  h.ssl = (static_cast<uint8_t>(v[0]) & kClientSsl) != 0;
  size_t at = 5;
  while (at < v.size()) {
    if (v.size() - at < 3) return Malformed("truncated SSL sub-TLV");
    const uint8_t type = static_cast<uint8_t>(v[at]);
    const size_t len = GetU16(v, at + 1);
    at += 3;
    if (len > v.size() - at) return Malformed("SSL sub-TLV runs past its TLV");
    std::string_view value = v.substr(at, len);
    if (type == kSubtypeSslVersion) h.ssl_version = std::string(value);
    if (type == kSubtypeSslCipher) h.ssl_cipher = std::string(value);
    at += len;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ProxyHeader>> ParseV2(std::string_view b) {
  if (!PrefixMatch(b, kProxyV2Signature)) {
    return absl::InvalidArgumentError("not a PROXY protocol header");
  }
  if (b.size() > 12) {
    const uint8_t ver_cmd = static_cast<uint8_t>(b[12]);
    if ((ver_cmd & 0xf0) != 0x20) return Malformed("version is not 2");
    if (ver_cmd != kCmdLocal && ver_cmd != kCmdProxy) {
      return Malformed("unknown command");
    }
  }
  if (b.size() > 13) {
    // Families 0..3 (UNSPEC, INET, INET6, UNIX), transports 0..2 (UNSPEC,
    // STREAM, DGRAM); the spec has receivers drop anything else, whatever
    // the command.
    const uint8_t fam = static_cast<uint8_t>(b[13]);
    if ((fam >> 4) > 3 || (fam & 0x0f) > 2) {
      return Malformed("unknown address family or transport");
    }
  }
  if (b.size() < kV2FixedLen) return std::nullopt;
  const uint8_t ver_cmd = static_cast<uint8_t>(b[12]);
  const uint8_t fam = static_cast<uint8_t>(b[13]);
  const size_t len = GetU16(b, 14);
  if (kV2FixedLen + len > kMaxProxyHeader) {
    return Malformed("longer than popgate accepts");
  }
  ProxyHeader h;
  h.version = 2;
  h.length = kV2FixedLen + len;
  if (ver_cmd == kCmdLocal) {
    // The spec: the receiver uses the connection's own endpoints and
    // discards the block, family included; wait for all of it, though,
    // so that it is not taken for the stream.
    if (b.size() < h.length) return std::nullopt;
    h.local = true;
    return h;
  }
  size_t block = 0;
  int family = AF_UNSPEC;
  if (fam == kFamTcp4) {
    block = kTcp4Block;
    family = AF_INET;
  } else if (fam == kFamTcp6) {
    block = kTcp6Block;
    family = AF_INET6;
  } else if (fam != kFamUnspec) {
    // UDP or UNIX sockets: nothing popgate fronts.
    return absl::InvalidArgumentError(
        "PROXY header: unsupported address family or transport (only TCP "
        "over IPv4 or IPv6)");
  }
  if (len < block) return Malformed("address block shorter than its family");
  if (b.size() < h.length) return std::nullopt;
  std::string_view payload = b.substr(kV2FixedLen, len);
  if (family == AF_UNSPEC) {
    // PROXY with an unknown family: like v1's UNKNOWN, no client address.
    h.local = true;
  } else {
    const size_t n = family == AF_INET ? 4 : 16;
    h.src = FromWire(family, payload.data(), payload.data() + 2 * n);
    h.dst = FromWire(family, payload.data() + n, payload.data() + 2 * n + 2);
  }
  size_t at = block;
  while (at < payload.size()) {
    if (payload.size() - at < 3) return Malformed("truncated TLV");
    const uint8_t type = static_cast<uint8_t>(payload[at]);
    const size_t tlv_len = GetU16(payload, at + 1);
    at += 3;
    if (tlv_len > payload.size() - at) {
      return Malformed("TLV runs past the header");
    }
    std::string_view value = payload.substr(at, tlv_len);
    if (type == kTypeAuthority) {
      h.authority = std::string(value);
    } else if (type == kTypeSsl) {
      absl::Status s = ParseSslTlv(value, h);
      if (!s.ok()) return s;
    }
    // Other types (ALPN, CRC32C, NOOP, UNIQUE_ID, NETNS, custom) are
    // skipped: nothing of ours uses them.
    at += tlv_len;
  }
  return h;
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A v1 port: 0..65535 in decimal, no sign, no leading zero.
bool ValidV1Port(std::string_view s) {
  if (!IsDigits(s) || s.size() > 5) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  return v <= 65535;
}

// Could `s` still become a dotted quad (four decimal octets, no leading
// zeros, as inet_pton takes them)?
bool V4Prefix(std::string_view s) {
  int dots = 0;
  size_t group = 0;  // digits in the current octet
  uint32_t value = 0;
  char first = 0;
  for (char c : s) {
    if (c == '.') {
      if (group == 0 || ++dots > 3) return false;
      group = 0;
      value = 0;
      continue;
    }
    if (c < '0' || c > '9') return false;
    if (group == 0) first = c;
    if (group > 0 && first == '0') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
    if (++group > 3 || value > 255) return false;
  }
  return true;
}

// Could `s` still become a valid field `i` of a v1 TCP4/TCP6 line?
// (Fields: 0 "PROXY", 1 protocol, 2 src, 3 dst, 4 sport, 5 dport.)
bool V1FieldPrefixOk(size_t i, std::string_view s, bool v6) {
  switch (i) {
    case 2:
    case 3:
      if (!v6) return V4Prefix(s);
      // IPv6 only by its alphabet and length; inet_pton judges the whole.
      for (char c : s) {
        const bool ok = (c >= '0' && c <= '9') || c == '.' || c == ':' ||
                        (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!ok) return false;
      }
      return s.size() < 46;
    case 4:
    case 5:
      return s.empty() || ValidV1Port(s);
    default:
      return false;
  }
}

std::optional<SocketAddress> V1Address(std::string_view addr,
                                       std::string_view port, bool v6) {
  // ParseHostPort is the one parser of numeric addresses; with brackets an
  // IPv6 literal must pass inet_pton, and a dotted quad without them must
  // be exactly that.
  absl::StatusOr<HostPort> hp = ParseHostPort(
      v6 ? absl::StrCat("[", absl::string_view(addr.data(), addr.size()),
                        "]:", absl::string_view(port.data(), port.size()))
         : absl::StrCat(absl::string_view(addr.data(), addr.size()), ":",
                        absl::string_view(port.data(), port.size())),
      /*allow_port_zero=*/true);
  if (!hp.ok() || hp->family != (v6 ? AF_INET6 : AF_INET)) {
    return std::nullopt;
  }
  return hp->Numeric();
}

absl::StatusOr<std::optional<ProxyHeader>> ParseV1(std::string_view b) {
  if (!PrefixMatch(b, kV1Prefix)) {
    return absl::InvalidArgumentError("not a PROXY protocol header");
  }
  const size_t crlf = b.substr(0, kMaxV1).find("\r\n");
  const bool complete = crlf != std::string_view::npos;
  std::string_view line = complete ? b.substr(0, crlf) : b.substr(0, kMaxV1);
  if (!complete) {
    if (b.size() >= kMaxV1) return Malformed("v1 line without CRLF");
    // A CR may only be the last byte seen so far (its LF still to come).
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  }
  if (line.find_first_of("\r\n") != std::string_view::npos) {
    return Malformed("stray CR or LF in v1 line");
  }
  if (line.size() < kV1Prefix.size()) return std::nullopt;
  std::string_view rest = line.substr(kV1Prefix.size());
  // The protocol word.
  const size_t sp = rest.find(' ');
  std::string_view proto = rest.substr(0, sp);
  const bool proto_done = sp != std::string_view::npos || complete;
  if (proto_done) {
    if (proto != "TCP4" && proto != "TCP6" && proto != "UNKNOWN") {
      return Malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN");
    }
  } else {
    if (!PrefixMatch(proto, "TCP4") && !PrefixMatch(proto, "TCP6") &&
        !PrefixMatch(proto, "UNKNOWN")) {
      return Malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN");
    }
    return std::nullopt;
  }
  ProxyHeader h;
  h.version = 1;
  if (proto == "UNKNOWN") {
    // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
    if (!complete) return std::nullopt;
    h.local = true;
    h.length = crlf + 2;
    return h;
  }
  if (sp == std::string_view::npos) {
    return Malformed("v1 line has too few fields");
  }
  const bool v6 = proto == "TCP6";
  // Fields 2..5, single spaces between them, nothing after.
  std::string_view fields[4];
  size_t count = 0;
  std::string_view tail = rest.substr(sp + 1);
  while (true) {
    const size_t next = tail.find(' ');
    std::string_view f = tail.substr(0, next);
    if (count == 4) return Malformed("v1 line has too many fields");
    const bool last_seen = next == std::string_view::npos;
    if (!last_seen || complete) {
      if (f.empty())
        return Malformed("v1 fields must be separated by one space");
    }
    if (!V1FieldPrefixOk(count + 2, f, v6)) {
      return Malformed("bad v1 address or port");
    }
    fields[count++] = f;
    if (last_seen) break;
    tail = tail.substr(next + 1);
  }
  if (!complete) return std::nullopt;
  if (count != 4) return Malformed("v1 line has too few fields");
  if (!ValidV1Port(fields[2]) || !ValidV1Port(fields[3])) {
    return Malformed("bad v1 port");
  }
  h.src = V1Address(fields[0], fields[2], v6);
  h.dst = V1Address(fields[1], fields[3], v6);
  if (!h.src || !h.dst) return Malformed("bad v1 address");
  h.length = crlf + 2;
  return h;
}

}  // namespace

std::string EncodeProxyV2(const SocketAddress& src, const SocketAddress& dst,
                          const ProxyTlsInfo* tls) {
  Wire s = ToWire(src);
  Wire d = ToWire(dst);
  uint8_t fam = kFamUnspec;
  std::string body;
  if (s.family != AF_UNSPEC && d.family != AF_UNSPEC) {
    // The contract asks for one family; a mixed pair (a dual-stack socket
    // that accepted IPv4 but was reached on a real IPv6 address) is still
    // sendable as TCP6, with the IPv4 half v4-mapped.
    if (s.family != d.family) {
      WidenToV6(s);
      WidenToV6(d);
    }
    const size_t n = s.family == AF_INET ? 4 : 16;
    fam = s.family == AF_INET ? kFamTcp4 : kFamTcp6;
    body.append(reinterpret_cast<const char*>(s.addr), n);
    body.append(reinterpret_cast<const char*>(d.addr), n);
    body.append(reinterpret_cast<const char*>(s.port), 2);
    body.append(reinterpret_cast<const char*>(d.port), 2);
  }
  // Otherwise (not an IP connection: never the case for a client of ours)
  // PROXY with AF_UNSPEC and no address block: the spec's way to say "the
  // addresses are unknown, use the connection's own".
  if (tls != nullptr && !tls->version.empty()) {
    if (!tls->sni.empty() && tls->sni.size() <= kMaxTlvValue) {
      PutTlv(body, kTypeAuthority, tls->sni);
    }
    // PP2_TYPE_SSL: client flags, then a 32-bit verify result, then
    // sub-TLVs. We only set PP2_CLIENT_SSL: popgate never asks clients for
    // a certificate, so PP2_CLIENT_CERT_CONN/SESS stay clear. The spec
    // defines verify as 0 only when a client certificate was presented
    // and verified, non-zero otherwise; with no certificate we send 1 (as
    // HAProxy does), so a receiver that looks only at verify cannot take
    // the connection for a verified client.
    std::string ssl;
    ssl.push_back(static_cast<char>(kClientSsl));
    ssl.append(std::string_view("\0\0\0\1", 4));
    if (tls->version.size() <= kMaxTlvValue) {
      PutTlv(ssl, kSubtypeSslVersion, tls->version);
    }
    if (!tls->cipher.empty() && tls->cipher.size() <= kMaxTlvValue) {
      PutTlv(ssl, kSubtypeSslCipher, tls->cipher);
    }
    PutTlv(body, kTypeSsl, ssl);
  }
  // No PP2_TYPE_CRC32C: the header travels over TCP (which already checks
  // it) right at the start of a connection we just made, and receivers
  // treat the checksum as optional.
  std::string out;
  out.reserve(kV2FixedLen + body.size());
  out.append(kProxyV2Signature);
  out.push_back(static_cast<char>(kCmdProxy));
  out.push_back(static_cast<char>(fam));
  PutU16(out, body.size());
  out.append(body);
  return out;
}

std::string EncodeProxyV2Local() {
  std::string out(kProxyV2Signature);
  out.push_back(static_cast<char>(kCmdLocal));
  out.push_back(static_cast<char>(kFamUnspec));
  PutU16(out, 0);
  return out;
}

absl::StatusOr<std::optional<ProxyHeader>> ParseProxyHeader(
    std::string_view bytes) {
  if (bytes.empty()) return std::nullopt;
  // The two versions cannot be confused: v1 starts with 'P', v2 with CR.
  if (bytes[0] == kProxyV2Signature[0]) return ParseV2(bytes);
  if (bytes[0] == kV1Prefix[0]) return ParseV1(bytes);
  return absl::InvalidArgumentError("not a PROXY protocol header");
}

}  // namespace popgate
