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

// --- Parser. ---

ProxyHeader MustParse(std::string_view bytes) {
  absl::StatusOr<std::optional<ProxyHeader>> r = ParseProxyHeader(bytes);
  EXPECT_TRUE(r.ok()) << r.status() << " for "
                      << absl::CHexEscape(std::string(bytes));
  if (!r.ok()) return {};
  EXPECT_TRUE(r->has_value()) << absl::CHexEscape(std::string(bytes));
  if (!r->has_value()) return {};
  return **r;
}

bool IsError(std::string_view bytes) { return !ParseProxyHeader(bytes).ok(); }

bool NeedsMore(std::string_view bytes) {
  absl::StatusOr<std::optional<ProxyHeader>> r = ParseProxyHeader(bytes);
  return r.ok() && !r->has_value();
}

// Every proper prefix of a valid header asks for more, never an error.
void ExpectPrefixesNeedMore(std::string_view header) {
  for (size_t n = 0; n < header.size(); ++n) {
    EXPECT_TRUE(NeedsMore(header.substr(0, n)))
        << n << " bytes of " << absl::CHexEscape(std::string(header));
  }
}

TEST(ParseProxyHeader, V2RoundTripIpv4) {
  const std::string enc =
      EncodeProxyV2(Addr("192.0.2.7:50123"), Addr("198.51.100.1:110"), nullptr);
  const std::string stream = enc + "USER x\r\n";
  ProxyHeader h = MustParse(stream);
  EXPECT_EQ(h.version, 2);
  EXPECT_FALSE(h.local);
  ASSERT_TRUE(h.src && h.dst);
  EXPECT_EQ(h.src->ToString(), "192.0.2.7:50123");
  EXPECT_EQ(h.dst->ToString(), "198.51.100.1:110");
  EXPECT_FALSE(h.ssl);
  EXPECT_EQ(h.authority, "");
  EXPECT_EQ(h.length, enc.size());
  ExpectPrefixesNeedMore(enc);
}

TEST(ParseProxyHeader, V2RoundTripIpv6WithTls) {
  ProxyTlsInfo tls{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mail.example.org"};
  const std::string enc =
      EncodeProxyV2(Addr("[2001:db8::7]:1"), Addr("[2001:db8::1]:995"), &tls);
  ProxyHeader h = MustParse(enc);
  EXPECT_EQ(h.version, 2);
  ASSERT_TRUE(h.src && h.dst);
  EXPECT_EQ(h.src->ToString(), "[2001:db8::7]:1");
  EXPECT_EQ(h.dst->ToString(), "[2001:db8::1]:995");
  EXPECT_TRUE(h.ssl);
  EXPECT_EQ(h.ssl_version, "TLSv1.3");
  EXPECT_EQ(h.ssl_cipher, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(h.authority, "mail.example.org");
  EXPECT_EQ(h.length, enc.size());
  ExpectPrefixesNeedMore(enc);
}

TEST(ParseProxyHeader, V2Local) {
  const std::string enc = EncodeProxyV2Local();
  ProxyHeader h = MustParse(enc + "+OK");
  EXPECT_EQ(h.version, 2);
  EXPECT_TRUE(h.local);
  EXPECT_FALSE(h.src.has_value());
  EXPECT_EQ(h.length, 16u);
  ExpectPrefixesNeedMore(enc);
  // LOCAL with a TCP4 block (some senders fill it in): discarded.
  std::string with_block =
      Hex(absl::StrCat(kSig, "20 11 000c c0000207 c6336401 c3cb 006e"));
  h = MustParse(with_block);
  EXPECT_TRUE(h.local);
  EXPECT_FALSE(h.src.has_value());
  EXPECT_EQ(h.length, 28u);
}

TEST(ParseProxyHeader, V2ProxyUnspecHasNoAddress) {
  ProxyHeader h = MustParse(Hex(absl::StrCat(kSig, "21 00 0000")));
  EXPECT_TRUE(h.local);
  EXPECT_FALSE(h.src.has_value());
}

TEST(ParseProxyHeader, V2SkipsUnknownTlvs) {
  // NOOP (0x04) with 2 bytes, a custom 0xe0 with none, then AUTHORITY.
  std::string b = Hex(absl::StrCat(kSig,
                                   "21 11 0019 c0000207 c6336401 c3cb 006e"
                                   "04 0002 0000  e0 0000  02 0002 6162"));
  ProxyHeader h = MustParse(b);
  EXPECT_EQ(h.authority, "ab");
  EXPECT_EQ(h.length, b.size());
}

TEST(ParseProxyHeader, V2Malformed) {
  // Bad signature (one byte off), at any length.
  std::string bad_sig = EncodeProxyV2Local();
  bad_sig[6] = 'X';
  EXPECT_TRUE(IsError(bad_sig));
  EXPECT_TRUE(IsError(bad_sig.substr(0, 7)));
  // Wrong version (1 or 3 in the high nibble), unknown command.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "11 00 0000"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "31"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "22 00 0000"))));
  // Unknown family or transport, even before the length is in.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 41"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 13"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "20 13 0000"))));
  // UDP and UNIX: unsupported.
  for (const char* fam : {"12", "22", "31", "32"}) {
    absl::StatusOr<std::optional<ProxyHeader>> r = ParseProxyHeader(
        Hex(absl::StrCat(kSig, "21", fam, "00d8", std::string(2 * 216, '0'))));
    ASSERT_FALSE(r.ok()) << fam;
    EXPECT_NE(r.status().message().find("unsupported"), std::string::npos);
  }
  // Address block shorter than the family needs: refused at once.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 11 000b"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 21 0023"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 21 000c", "c0000207"))));
  // Oversize length, refused before the bytes arrive.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 11 0ff1"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "21 11 ffff"))));
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig, "20 00 ffff"))));
  EXPECT_TRUE(NeedsMore(Hex(absl::StrCat(kSig, "21 11 0ff0"))));  // 4096
  // A TLV running past the end of the header.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(
      kSig, "21 11 0011 c0000207 c6336401 c3cb 006e 02 0003 6162"))));
  // Two bytes after the block: not even a TLV header.
  EXPECT_TRUE(IsError(
      Hex(absl::StrCat(kSig, "21 11 000e c0000207 c6336401 c3cb 006e 0200"))));
  // SSL TLV shorter than client + verify.
  EXPECT_TRUE(IsError(Hex(absl::StrCat(
      kSig, "21 11 0013 c0000207 c6336401 c3cb 006e 20 0004 01000000"))));
  // SSL sub-TLV running past its TLV (but not past the header).
  EXPECT_TRUE(IsError(Hex(absl::StrCat(kSig,
                                       "21 11 0018 c0000207 c6336401 c3cb 006e"
                                       "20 0009 01 00000001 21 0005 61"))));
  // Not a header at all.
  EXPECT_TRUE(IsError("USER bob\r\n"));
  EXPECT_TRUE(IsError(std::string_view("\0", 1)));
}

// The spec's v1 examples.
TEST(ParseProxyHeader, V1SpecExamples) {
  ProxyHeader h =
      MustParse("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET");
  EXPECT_EQ(h.version, 1);
  EXPECT_FALSE(h.local);
  ASSERT_TRUE(h.src && h.dst);
  EXPECT_EQ(h.src->ToString(), "192.168.0.1:56324");
  EXPECT_EQ(h.dst->ToString(), "192.168.0.11:443");
  EXPECT_EQ(h.length, 47u);

  const std::string f6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string tcp4 =
      "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
  const std::string tcp6 =
      absl::StrCat("PROXY TCP6 ", f6, " ", f6, " 65535 65535\r\n");
  const std::string unknown = "PROXY UNKNOWN\r\n";
  const std::string unknown_long =
      absl::StrCat("PROXY UNKNOWN ", f6, " ", f6, " 65535 65535\r\n");
  ASSERT_EQ(unknown_long.size(), 107u);  // the spec's worst case

  h = MustParse(tcp4);
  EXPECT_EQ(h.src->ToString(), "255.255.255.255:65535");
  EXPECT_EQ(h.length, tcp4.size());
  h = MustParse(tcp6);
  EXPECT_EQ(h.src->ToString(), absl::StrCat("[", f6, "]:65535"));
  EXPECT_EQ(h.length, tcp6.size());
  h = MustParse(unknown);
  EXPECT_TRUE(h.local);
  EXPECT_FALSE(h.src.has_value());
  EXPECT_EQ(h.length, 15u);
  h = MustParse(unknown_long);
  EXPECT_TRUE(h.local);
  EXPECT_EQ(h.length, 107u);
  for (const std::string& v : {tcp4, tcp6, unknown, unknown_long}) {
    ExpectPrefixesNeedMore(v);
  }
  // Port 0 and compressed IPv6 forms are fine.
  h = MustParse("PROXY TCP6 2001:db8::7 ::1 0 110\r\n");
  EXPECT_EQ(h.src->ToString(), "[2001:db8::7]:0");
  EXPECT_EQ(h.dst->ToString(), "[::1]:110");
  h = MustParse("PROXY TCP6 ::ffff:192.0.2.7 ::ffff:192.0.2.8 1 2\r\n");
  EXPECT_EQ(h.src->family(), AF_INET6);
}

TEST(ParseProxyHeader, V1Malformed) {
  const std::string f6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  // No CRLF within 107 bytes.
  std::string over =
      absl::StrCat("PROXY UNKNOWN ", f6, " ", f6, " 65535 655350");
  ASSERT_EQ(over.size(), 106u);
  EXPECT_TRUE(NeedsMore(over));
  EXPECT_TRUE(IsError(over + "\r"));
  EXPECT_TRUE(IsError(over + "\r\n"));
  EXPECT_TRUE(IsError(std::string(200, 'P')));
  EXPECT_TRUE(IsError(absl::StrCat("PROXY UNKNOWN ", std::string(100, 'x'))));
  for (const char* bad : {
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 65536\r\n",  // port range
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 99999\r\n",
           "PROXY TCP4 192.0.2.7 192.0.2.8 01 2\r\n",  // leading zero
           "PROXY TCP4 192.0.2.7 192.0.2.8 +1 2\r\n",  // sign
           "PROXY TCP4 192.0.2.7 192.0.2.8 -1 2\r\n",
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 2x\r\n",   // junk
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 \r\n",     // empty port
           "PROXY TCP4 192.0.2.7 192.0.2.8 1\r\n",      // too few
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 2 3\r\n",  // too many
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 2 \r\n",   // trailing space
           "PROXY TCP4  192.0.2.7 192.0.2.8 1 2\r\n",   // double space
           "PROXY TCP4 192.0.2.7  192.0.2.8 1 2\r\n",
           "PROXY  TCP4 192.0.2.7 192.0.2.8 1 2\r\n",
           "PROXY TCP4 192.0.2.256 192.0.2.8 1 2\r\n",  // bad address
           "PROXY TCP4 192.0.2 192.0.2.8 1 2\r\n",
           "PROXY TCP4 010.0.2.7 192.0.2.8 1 2\r\n",
           "PROXY TCP4 2001:db8::1 192.0.2.8 1 2\r\n",  // family mismatch
           "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
           "PROXY TCP6 2001:db8:::1 2001:db8::1 1 2\r\n",
           "PROXY TCP6 [2001:db8::1] 2001:db8::1 1 2\r\n",
           "PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n",
           "PROXY TCP4 host.example 192.0.2.8 1 2\r\n",
           "PROXY TCP5 192.0.2.7 192.0.2.8 1 2\r\n",  // protocol
           "PROXY tcp4 192.0.2.7 192.0.2.8 1 2\r\n",
           "PROXY UDP4 192.0.2.7 192.0.2.8 1 2\r\n",
           "PROXY UNKNOWNX\r\n",
           "PROXY TCP4\r\n",
           "PROXY \r\n",
           "PROXY\r\n",
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 2\n",       // bare LF
           "PROXY TCP4 192.0.2.7 192.0.2.8 1 2\rx\r\n",  // stray CR
           "PROXY TCP4 192.0.2.7\t192.0.2.8 1 2\r\n",
           "proxy TCP4 192.0.2.7 192.0.2.8 1 2\r\n",
       }) {
    EXPECT_TRUE(IsError(bad)) << absl::CHexEscape(bad);
  }
  // Errors show as soon as a prefix cannot become valid.
  EXPECT_TRUE(
      IsError("PROXY TCP4 192.0.2.7 192.0.2.8 1 9999"
              "9"));
  EXPECT_TRUE(IsError("PROXY X"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4x"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4."));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4.5"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.256"));
  EXPECT_TRUE(IsError("PROXY TCP4 1..2"));
  EXPECT_TRUE(IsError("PROXY TCP4 01"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4 ."));
  EXPECT_TRUE(NeedsMore("PROXY TCP4 1.2.3."));
  EXPECT_TRUE(NeedsMore("PROXY TCP4 1.2.3.0 0.25"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4 5.6.7.8 01"));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 "));
  EXPECT_TRUE(IsError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"));
  EXPECT_TRUE(NeedsMore("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"));
}

TEST(ParseProxyHeader, EmptyNeedsMore) { EXPECT_TRUE(NeedsMore("")); }

}  // namespace
}  // namespace popgate
