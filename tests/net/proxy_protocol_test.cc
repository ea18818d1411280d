#include "net/proxy_protocol.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

SocketAddress Addr(std::string_view host_port) {
  absl::StatusOr<HostPort> hp = ParseHostPort(host_port, true);
  EXPECT_TRUE(hp.ok()) << hp.status();
  std::optional<SocketAddress> a = hp->Numeric();
  EXPECT_TRUE(a.has_value()) << host_port;
  return *a;
}

// Hex with spaces allowed, for vectors written out by hand.
std::string Hex(std::string_view spaced) {
  std::string compact;
  for (char c : spaced) {
    if (c != ' ' && c != '\n') compact.push_back(c);
  }
  EXPECT_EQ(compact.size() % 2, 0u) << spaced;
  EXPECT_EQ(compact.find_first_not_of("0123456789abcdef"), std::string::npos)
      << spaced;
  return absl::HexStringToBytes(compact);
}

constexpr char kSig[] = "0d0a0d0a 000d0a51 5549540a";

// --- Encoder: known vectors, byte for byte, from the spec's layout. ---

TEST(EncodeProxyV2, Ipv4NoTls) {
  std::string got =
      EncodeProxyV2(Addr("192.0.2.7:50123"), Addr("198.51.100.1:110"), nullptr);
  std::string want = Hex(absl::StrCat(kSig,
                                      "21 11 000c"    // PROXY, TCP4, 12
                                      "c0000207"      // 192.0.2.7
                                      "c6336401"      // 198.51.100.1
                                      "c3cb 006e"));  // 50123, 110
  EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(want));
}

TEST(EncodeProxyV2, Ipv4WithTlsAndSni) {
  ProxyTlsInfo tls{"TLSv1.3", "TLS_AES_128_GCM_SHA256", "pop.example"};
  std::string got =
      EncodeProxyV2(Addr("192.0.2.7:50123"), Addr("198.51.100.1:995"), &tls);
  std::string want = Hex(absl::StrCat(
      kSig,
      "21 11 0045"  // 12 + 14 + 43 = 69
      "c0000207 c6336401 c3cb 03e3"
      // PP2_TYPE_AUTHORITY, 11 bytes, "pop.example"
      "02 000b 706f702e6578616d706c65"
      // PP2_TYPE_SSL, 40 bytes: client = PP2_CLIENT_SSL, verify = 1
      "20 0028 01 00000001"
      // PP2_SUBTYPE_SSL_VERSION "TLSv1.3"
      "21 0007 544c5376312e33"
      // PP2_SUBTYPE_SSL_CIPHER "TLS_AES_128_GCM_SHA256"
      "23 0016 544c535f4145535f3132385f47434d5f534841323536"));
  EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(want));
}

TEST(EncodeProxyV2, Ipv6NoTls) {
  std::string got = EncodeProxyV2(Addr("[2001:db8::7]:50123"),
                                  Addr("[2001:db8::1]:995"), nullptr);
  std::string want = Hex(absl::StrCat(kSig,
                                      "21 21 0024"  // PROXY, TCP6, 36
                                      "20010db8 00000000 00000000 00000007"
                                      "20010db8 00000000 00000000 00000001"
                                      "c3cb 03e3"));
  EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(want));
}

TEST(EncodeProxyV2, Ipv6WithTlsNoSniNoCipher) {
  ProxyTlsInfo tls{"TLSv1.2", "", ""};
  std::string got =
      EncodeProxyV2(Addr("[2001:db8::7]:1"), Addr("[2001:db8::1]:2"), &tls);
  std::string want = Hex(absl::StrCat(kSig,
                                      "21 21 0036"  // 36 + 18
                                      "20010db8 00000000 00000000 00000007"
                                      "20010db8 00000000 00000000 00000001"
                                      "0001 0002"
                                      "20 000f 01 00000001"
                                      "21 0007 544c5376312e32"));
  EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(want));
}

TEST(EncodeProxyV2, TlsWithoutVersionSendsNoTlv) {
  ProxyTlsInfo plain{"", "TLS_AES_128_GCM_SHA256", "pop.example"};
  EXPECT_EQ(
      EncodeProxyV2(Addr("192.0.2.7:50123"), Addr("198.51.100.1:110"), &plain),
      EncodeProxyV2(Addr("192.0.2.7:50123"), Addr("198.51.100.1:110"),
                    nullptr));
}

TEST(EncodeProxyV2, V4MappedPairGoesAsTcp4) {
  EXPECT_EQ(absl::BytesToHexString(
                EncodeProxyV2(Addr("[::ffff:192.0.2.7]:50123"),
                              Addr("[::ffff:198.51.100.1]:110"), nullptr)),
            absl::BytesToHexString(EncodeProxyV2(
                Addr("192.0.2.7:50123"), Addr("198.51.100.1:110"), nullptr)));
  // One half mapped, the other plain IPv4: still TCP4.
  EXPECT_EQ(
      absl::BytesToHexString(EncodeProxyV2(Addr("[::ffff:192.0.2.7]:50123"),
                                           Addr("198.51.100.1:110"), nullptr)),
      absl::BytesToHexString(EncodeProxyV2(Addr("192.0.2.7:50123"),
                                           Addr("198.51.100.1:110"), nullptr)));
}

TEST(EncodeProxyV2, MixedPairGoesAsTcp6WithTheV4HalfMapped) {
  std::string got = EncodeProxyV2(Addr("192.0.2.7:50123"),
                                  Addr("[2001:db8::1]:110"), nullptr);
  std::string want = Hex(absl::StrCat(kSig,
                                      "21 21 0024"
                                      "00000000 00000000 0000ffff c0000207"
                                      "20010db8 00000000 00000000 00000001"
                                      "c3cb 006e"));
  EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(want));
}

TEST(EncodeProxyV2, NonIpAddressesGoAsUnspec) {
  SocketAddress none;  // AF_UNSPEC
  std::string got = EncodeProxyV2(none, none, nullptr);
  EXPECT_EQ(absl::BytesToHexString(got),
            absl::BytesToHexString(Hex(absl::StrCat(kSig, "21 00 0000"))));
}

TEST(EncodeProxyV2, OverlongValuesAreLeftOut) {
  ProxyTlsInfo tls{"TLSv1.3", std::string(300, 'c'), std::string(256, 's')};
  std::string got =
      EncodeProxyV2(Addr("192.0.2.7:1"), Addr("198.51.100.1:2"), &tls);
  // 12 address bytes + SSL TLV (3 + 5 + 10) only.
  EXPECT_EQ(got.size(), 16u + 12u + 18u);
  EXPECT_LE(got.size(), kMaxProxyHeader);
}

TEST(EncodeProxyV2Local, Bytes) {
  EXPECT_EQ(absl::BytesToHexString(EncodeProxyV2Local()),
            absl::BytesToHexString(Hex(absl::StrCat(kSig, "20 00 0000"))));
}

}  // namespace
}  // namespace popgate
