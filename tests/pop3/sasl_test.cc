#include "pop3/sasl.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate {
namespace {

std::string B64(std::string_view raw) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < raw.size(); i += 3) {
    uint32_t n = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8) |
                 uint8_t(raw[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(n >> s) & 63];
  }
  if (raw.size() - i == 1) {
    uint32_t n = uint8_t(raw[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (raw.size() - i == 2) {
    uint32_t n = (uint8_t(raw[i]) << 16) | (uint8_t(raw[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

TEST(SaslTest, MechanismNames) {
  EXPECT_EQ(ParseSaslMechanism("PLAIN"), SaslMechanism::kPlain);
  EXPECT_EQ(ParseSaslMechanism("plain"), SaslMechanism::kPlain);
  EXPECT_EQ(ParseSaslMechanism("Login"), SaslMechanism::kLogin);
  EXPECT_FALSE(ParseSaslMechanism("CRAM-MD5"));
  EXPECT_FALSE(ParseSaslMechanism("PLAINX"));
  EXPECT_FALSE(ParseSaslMechanism(""));
}

TEST(SaslTest, Base64RoundTripsAllLengths) {
  std::string raw;
  for (int len = 0; len < 40; ++len) {
    std::optional<std::string> back = DecodeBase64(B64(raw));
    ASSERT_TRUE(back) << len;
    EXPECT_EQ(*back, raw);
    raw += static_cast<char>(len * 37 + 11);
  }
}

TEST(SaslTest, Base64RefusesGarbage) {
  for (const char* bad : {"a", "abc", "ab=c", "a===", "=abc", "ab c", "ab\0c",
                          "YWJj\n", "YW*j", "YQ==YQ=="}) {
    EXPECT_FALSE(DecodeBase64(bad)) << bad;
  }
}

// RFC 4648 section 3.5: the bits that padding leaves over must be zero, so
// that every payload has one spelling. "ZbV=" once decoded like "ZbU="
// (tests/fuzz/regressions/sasl/ keeps the input the fuzzer checks).
TEST(SaslTest, Base64RefusesNonZeroPaddingBits) {
  EXPECT_EQ(DecodeBase64("ZbU="), std::string("e\xb5"));
  EXPECT_FALSE(DecodeBase64("ZbV="));
  EXPECT_EQ(DecodeBase64("Zg=="), std::string("f"));
  EXPECT_FALSE(DecodeBase64("Zh=="));
  EXPECT_FALSE(DecodeBase64("Zm9vYmFyZbV="));  // also after whole quads
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t v = 0; v < 64; ++v) {
    // "Zm" + c + "=": the last 2 bits of c are padding.
    std::string one = std::string("Zm") + kAlphabet[v] + "=";
    EXPECT_EQ(DecodeBase64(one).has_value(), (v & 0x03) == 0) << one;
    // "Z" + c + "==": the last 4 bits of c are padding.
    std::string two = std::string("Z") + kAlphabet[v] + "==";
    EXPECT_EQ(DecodeBase64(two).has_value(), (v & 0x0f) == 0) << two;
  }
}

TEST(SaslTest, Base64DecodesWhatItEncodes) {
  // Every canonical spelling decodes to the bytes it encodes, including
  // all byte values at the end of the input (where padding bits live).
  for (int b = 0; b < 256; ++b) {
    for (std::string raw : {std::string(1, char(b)), std::string("x") + char(b),
                            std::string("xy") + char(b)}) {
      std::optional<std::string> back = DecodeBase64(B64(raw));
      ASSERT_TRUE(back) << b;
      EXPECT_EQ(*back, raw);
    }
  }
}

TEST(SaslTest, PlainRefusesNonCanonicalBase64) {
  // "\0bob\0pw" is "AGJvYgBwdw==": 'w' ends in zero bits, 'x' does not.
  ASSERT_TRUE(DecodeSaslPlain("AGJvYgBwdw=="));
  EXPECT_FALSE(DecodeSaslPlain("AGJvYgBwdx=="));
}

TEST(SaslTest, PlainWithAndWithoutAuthzid) {
  auto c =
      DecodeSaslPlain(B64(std::string("\0alice@example.com\0s3cr et", 26)));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "alice@example.com");
  EXPECT_EQ(c->password, "s3cr et");
  c = DecodeSaslPlain(B64(std::string("bob\0bob\0pw", 10)));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "bob");
}

TEST(SaslTest, PlainRefusesActingAsSomeoneElse) {
  EXPECT_FALSE(DecodeSaslPlain(B64(std::string("mallory\0bob\0pw", 14))));
}

TEST(SaslTest, PlainRefusesMalformed) {
  EXPECT_FALSE(DecodeSaslPlain(B64("no nuls at all")));
  EXPECT_FALSE(DecodeSaslPlain(B64(std::string("\0onlyone", 8))));
  EXPECT_FALSE(DecodeSaslPlain(B64(std::string("\0\0pw", 4))));       // no user
  EXPECT_FALSE(DecodeSaslPlain(B64(std::string("\0bob\0", 5))));      // no pw
  EXPECT_FALSE(DecodeSaslPlain(B64(std::string("\0bob\0p\0w", 8))));  // NUL
  EXPECT_FALSE(DecodeSaslPlain("not base64!"));
}

}  // namespace
}  // namespace popgate
