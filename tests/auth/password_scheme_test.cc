#include "auth/password_scheme.h"

#include <chrono>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

// All vectors hash the password "demo" and were generated with real tools:
//   mkpasswd -m sha-512 -S saltsaltsalt12 demo
//   mkpasswd -m sha-512 -R 10000 -S roundsalt demo
//   mkpasswd -m sha-256 -S saltsaltsalt12 demo
//   mkpasswd -m bcrypt -R 5 demo
//   mkpasswd -m bcrypt-a -R 5 demo
//   doveadm -c /dev/null pw -s {SHA512-CRYPT,SHA256-CRYPT,BLF-CRYPT,
//                                ARGON2ID,ARGON2I} -p demo
// (doveadm's default argon2 costs: ARGON2ID m=64 MiB t=3, ARGON2I m=32 MiB
// t=4; each verification takes well under a second.)
//   echo -n demo | argon2 saltsalt12 -id -t 2 -m 12 -p 4 -e
//   echo -n demo | argon2 saltsalt12 -id -t 2 -m 12 -p 1 -v 10 -e
//   echo -n demo | argon2 saltsalt12 -i -t 2 -m 12 -p 2 -v 10 -e
// (Argon2 version 1.3, "v=19", is verified by libsodium, lanes p > 1
// included; version 1.0, "v=16" or no v= at all, by libargon2.)
constexpr std::string_view kSha512Mkpasswd =
    "$6$saltsaltsalt12$oRjjWpKw.W6VJIPcWrOMFBi5aUO.5TAZD9K3Tyr56dXInIYgNpoH83Fi"
    "U0S4Hm5AKpXtzFZauWhpj0KwUbB68.";
constexpr std::string_view kSha512Rounds =
    "$6$rounds=10000$roundsalt$vxCO8zhC1ZRTDRi0V/WAAvaz9fCKPKo8SbzJ8WyNCDzp382q"
    "McyvM0dtWtyO3sbaA0VvqsmVjiYO6AkZtAxga0";
constexpr std::string_view kSha512Doveadm =
    "$6$XAv05B7UXueWLUR0$YSEwU1QHRFmuEVTCh0NgPfGLcSr4avbaogIHg6HPAJTDuDlsvu9qpF"
    "DlgBPhGH9RuO7s.1wjCxznCpkqSOmBx1";
constexpr std::string_view kSha256Mkpasswd =
    "$5$saltsaltsalt12$1hQyOGJv4RcpqhnyweD3Oi4edvyqAHHb0osOtNVgzt7";
constexpr std::string_view kSha256Doveadm =
    "$5$ECg.nXkAdDPpYeMI$eL3Od0rux.x8VtDYTOc3pyJ9/6UBZR4qRcHR3BAYj3.";
constexpr std::string_view kBcrypt2b =
    "$2b$05$tYMz6Lg4UBAg2FMUMkDjGO/1n9A44orZvXlGDTVPYUtlG/uEPjVE.";
constexpr std::string_view kBcrypt2a =
    "$2a$05$BrBdPfiefVBqyI0gDglRb.UPgjpR8iB93THrZPWZ7PNiw2kvTmvyq";
constexpr std::string_view kBcrypt2yDoveadm =
    "$2y$05$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgShbzmdRaxaIO/YPo1xi";
constexpr std::string_view kArgon2idDoveadm =
    "$argon2id$v=19$m=65536,t=3,p=1$5YUwz2qTN999wA21VGHGiw$NGcQEOt1hDTPwlKyPVU3"
    "nEvbe04YQXqWLEJO+0NxLnU";
constexpr std::string_view kArgon2iDoveadm =
    "$argon2i$v=19$m=32768,t=4,p=1$A36t9fKlONSO9zNYRoYicA$P9Vdll9EGzt3SZOw6Ogv4"
    "7kNn/IgvrAegq7PNReEX0Q";
constexpr std::string_view kArgon2idFourLanes =
    "$argon2id$v=19$m=4096,t=2,p=4$c2FsdHNhbHQxMg$26IQWDD7UzC+LId91PI2/wcy7ccQ"
    "NH4UZspZOpsCIQE";
constexpr std::string_view kArgon2idVersion10 =
    "$argon2id$v=16$m=4096,t=2,p=1$c2FsdHNhbHQxMg$Jst5+jTydW+z/Gjwffso17ypHdBp"
    "+IKNSNeYNcq+fJA";
constexpr std::string_view kArgon2iVersion10 =
    "$argon2i$v=16$m=4096,t=2,p=2$c2FsdHNhbHQxMg$oIKbh61ZwdJVFQKpeH/dQ4tRK+P5y"
    "v8mbk/EDjWmffE";
// The same hash as kArgon2iVersion10 without its v=: version 1.0 implied.
constexpr std::string_view kArgon2iNoVersion =
    "$argon2i$m=4096,t=2,p=2$c2FsdHNhbHQxMg$oIKbh61ZwdJVFQKpeH/dQ4tRK+P5yv8mbk/"
    "EDjWmffE";

struct Vector {
  const char* label;
  Scheme scheme;
  std::string_view hash;
};

const Vector kVectors[] = {
    {"Sha512Mkpasswd", Scheme::kSha512Crypt, kSha512Mkpasswd},
    {"Sha512Rounds", Scheme::kSha512Crypt, kSha512Rounds},
    {"Sha512Doveadm", Scheme::kSha512Crypt, kSha512Doveadm},
    {"Sha256Mkpasswd", Scheme::kSha256Crypt, kSha256Mkpasswd},
    {"Sha256Doveadm", Scheme::kSha256Crypt, kSha256Doveadm},
    {"Bcrypt2b", Scheme::kBlfCrypt, kBcrypt2b},
    {"Bcrypt2a", Scheme::kBlfCrypt, kBcrypt2a},
    {"Bcrypt2yDoveadm", Scheme::kBlfCrypt, kBcrypt2yDoveadm},
    {"Argon2idDoveadm", Scheme::kArgon2id, kArgon2idDoveadm},
    {"Argon2iDoveadm", Scheme::kArgon2i, kArgon2iDoveadm},
    {"Argon2idFourLanes", Scheme::kArgon2id, kArgon2idFourLanes},
    {"Argon2idVersion10", Scheme::kArgon2id, kArgon2idVersion10},
    {"Argon2iVersion10", Scheme::kArgon2i, kArgon2iVersion10},
    {"Argon2iNoVersion", Scheme::kArgon2i, kArgon2iNoVersion},
};

class SchemeVectorTest : public testing::TestWithParam<Vector> {};

TEST_P(SchemeVectorTest, RightPasswordMatches) {
  EXPECT_TRUE(VerifyPassword(GetParam().scheme, GetParam().hash, "demo"));
}

TEST_P(SchemeVectorTest, WrongPasswordDoesNotMatch) {
  const Vector& v = GetParam();
  EXPECT_FALSE(VerifyPassword(v.scheme, v.hash, "Demo"));
  EXPECT_FALSE(VerifyPassword(v.scheme, v.hash, "demo "));
  EXPECT_FALSE(VerifyPassword(v.scheme, v.hash, ""));
  // crypt takes C strings: "demo\0x" must not be truncated into "demo".
  EXPECT_FALSE(
      VerifyPassword(v.scheme, v.hash, std::string_view("demo\0x", 6)));
}

TEST_P(SchemeVectorTest, ValidatesAsWellFormed) {
  EXPECT_TRUE(ValidateHash(GetParam().scheme, GetParam().hash).ok());
}

TEST_P(SchemeVectorTest, TruncatedHashIsRejectedWithoutCrash) {
  const Vector& v = GetParam();
  for (size_t len : {size_t{0}, size_t{1}, size_t{3}, size_t{7},
                     v.hash.size() / 2, v.hash.size() - 1}) {
    const std::string_view truncated = v.hash.substr(0, len);
    // Argon2 digests may have any length >= 4 bytes, so a digest one
    // character short is still well-formed; it must merely not match.
    const bool argon2 =
        v.scheme == Scheme::kArgon2i || v.scheme == Scheme::kArgon2id;
    if (!(argon2 && len == v.hash.size() - 1)) {
      EXPECT_FALSE(ValidateHash(v.scheme, truncated).ok()) << len;
    }
    EXPECT_FALSE(VerifyPassword(v.scheme, truncated, "demo")) << len;
  }
}

TEST_P(SchemeVectorTest, GarbledDigestDoesNotMatch) {
  // Flip the last digest character to another valid base64 character, so
  // the hash still passes ValidateHash and really reaches crypt/argon2.
  const Vector& v = GetParam();
  std::string garbled(v.hash);
  // bcrypt's last character carries only 4 of its 6 bits: change one
  // earlier, where every bit counts.
  const size_t pos = garbled.size() - 2;
  garbled[pos] = garbled[pos] == 'A' ? 'B' : 'A';
  EXPECT_TRUE(ValidateHash(v.scheme, garbled).ok());
  EXPECT_FALSE(VerifyPassword(v.scheme, garbled, "demo"));
}

TEST_P(SchemeVectorTest, TrailingGarbageIsRejected) {
  const Vector& v = GetParam();
  EXPECT_FALSE(VerifyPassword(v.scheme, std::string(v.hash) + "x", "demo"));
  EXPECT_FALSE(VerifyPassword(v.scheme, std::string(v.hash) + "$", "demo"));
}

INSTANTIATE_TEST_SUITE_P(Vectors, SchemeVectorTest, testing::ValuesIn(kVectors),
                         [](const testing::TestParamInfo<Vector>& info) {
                           return std::string(info.param.label);
                         });

TEST(ParseSchemeTest, KnownNamesAnyCase) {
  EXPECT_EQ(ParseScheme("PLAIN"), Scheme::kPlain);
  EXPECT_EQ(ParseScheme("plain"), Scheme::kPlain);
  EXPECT_EQ(ParseScheme("CLEARTEXT"), Scheme::kPlain);
  EXPECT_EQ(ParseScheme("SHA256-CRYPT"), Scheme::kSha256Crypt);
  EXPECT_EQ(ParseScheme("sha512-crypt"), Scheme::kSha512Crypt);
  EXPECT_EQ(ParseScheme("BLF-CRYPT"), Scheme::kBlfCrypt);
  EXPECT_EQ(ParseScheme("ARGON2I"), Scheme::kArgon2i);
  EXPECT_EQ(ParseScheme("Argon2ID"), Scheme::kArgon2id);
}

TEST(ParseSchemeTest, UnknownNames) {
  for (std::string_view name :
       {"", "SSHA", "CRYPT", "MD5-CRYPT", "SHA512", "PLAIN.B64", "ARGON2",
        "PLAIN ", " PLAIN", "ARGON2IDX"}) {
    EXPECT_EQ(ParseScheme(name), std::nullopt) << name;
  }
}

TEST(ParseSchemeTest, NamesRoundTrip) {
  for (Scheme s : {Scheme::kPlain, Scheme::kSha256Crypt, Scheme::kSha512Crypt,
                   Scheme::kBlfCrypt, Scheme::kArgon2i, Scheme::kArgon2id}) {
    EXPECT_EQ(ParseScheme(SchemeName(s)), s);
  }
  EXPECT_EQ(SchemeName(Scheme::kPlain), "PLAIN");
  EXPECT_EQ(SchemeName(Scheme::kBlfCrypt), "BLF-CRYPT");
}

TEST(DetectCryptSchemeTest, RecognisesSupportedPrefixes) {
  EXPECT_EQ(DetectCryptScheme(kSha512Mkpasswd), Scheme::kSha512Crypt);
  EXPECT_EQ(DetectCryptScheme(kSha256Mkpasswd), Scheme::kSha256Crypt);
  EXPECT_EQ(DetectCryptScheme(kBcrypt2b), Scheme::kBlfCrypt);
  EXPECT_EQ(DetectCryptScheme(kBcrypt2a), Scheme::kBlfCrypt);
  EXPECT_EQ(DetectCryptScheme(kBcrypt2yDoveadm), Scheme::kBlfCrypt);
  EXPECT_EQ(DetectCryptScheme(kArgon2idDoveadm), Scheme::kArgon2id);
  EXPECT_EQ(DetectCryptScheme(kArgon2iDoveadm), Scheme::kArgon2i);
}

TEST(DetectCryptSchemeTest, RefusesEverythingElse) {
  // MD5-crypt, DES, yescrypt, bare plaintext.
  for (std::string_view hash :
       {"$1$abcdefgh$bVo2O2/zpxBPLaG64PSCs/", "abJnggxhB/yWI", "$y$j9T$abc$def",
        "hunter2", "", "$", "$argon2d$v=19$m=8,t=1,p=1$a$b"}) {
    EXPECT_EQ(DetectCryptScheme(hash), std::nullopt) << hash;
  }
}

TEST(PlainTest, MatchesExactly) {
  EXPECT_TRUE(VerifyPassword(Scheme::kPlain, "demo", "demo"));
  EXPECT_FALSE(VerifyPassword(Scheme::kPlain, "demo", "demo2"));
  EXPECT_FALSE(VerifyPassword(Scheme::kPlain, "demo", "dem"));
  EXPECT_FALSE(VerifyPassword(Scheme::kPlain, "demo", "DEMO"));
  EXPECT_FALSE(VerifyPassword(Scheme::kPlain, "demo", ""));
  EXPECT_TRUE(VerifyPassword(Scheme::kPlain, std::string_view("a\0b", 3),
                             std::string_view("a\0b", 3)));
  EXPECT_FALSE(VerifyPassword(Scheme::kPlain, std::string_view("a\0b", 3),
                              std::string_view("a\0c", 3)));
}

TEST(ValidateHashTest, PrefixMustMatchScheme) {
  // A SHA-256 hash under SHA512-CRYPT and vice versa, bcrypt under SHA, ...
  EXPECT_FALSE(ValidateHash(Scheme::kSha512Crypt, kSha256Mkpasswd).ok());
  EXPECT_FALSE(ValidateHash(Scheme::kSha256Crypt, kSha512Mkpasswd).ok());
  EXPECT_FALSE(ValidateHash(Scheme::kBlfCrypt, kSha512Mkpasswd).ok());
  EXPECT_FALSE(ValidateHash(Scheme::kArgon2i, kArgon2idDoveadm).ok());
  EXPECT_FALSE(ValidateHash(Scheme::kArgon2id, kArgon2iDoveadm).ok());
  EXPECT_FALSE(VerifyPassword(Scheme::kSha512Crypt, kSha256Mkpasswd, "demo"));
  EXPECT_FALSE(VerifyPassword(Scheme::kArgon2i, kArgon2idDoveadm, "demo"));
  // A DES hash must never be verified as DES under a SHA scheme.
  EXPECT_FALSE(ValidateHash(Scheme::kSha512Crypt, "abJnggxhB/yWI").ok());
  EXPECT_TRUE(ValidateHash(Scheme::kPlain, "anything at all").ok());
}

TEST(ValidateHashTest, CostLimits) {
  // Costs that would pin a hash thread for minutes or allocate terabytes
  // are refused before any hashing is attempted.
  EXPECT_FALSE(ValidateHash(Scheme::kBlfCrypt,
                            "$2y$31$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgShbzmdRa"
                            "xaIO/YPo1xi")
                   .ok());
  EXPECT_FALSE(VerifyPassword(Scheme::kBlfCrypt,
                              "$2y$31$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgShbzmd"
                              "RaxaIO/YPo1xi",
                              "demo"));
  EXPECT_FALSE(ValidateHash(Scheme::kBlfCrypt,
                            "$2y$03$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgShbzmdRa"
                            "xaIO/YPo1xi")
                   .ok());
  EXPECT_FALSE(
      ValidateHash(Scheme::kSha512Crypt,
                   "$6$rounds=999999999$roundsalt$vxCO8zhC1ZRTDRi0V/WAAvaz9fCK"
                   "PKo8SbzJ8WyNCDzp382qMcyvM0dtWtyO3sbaA0VvqsmVjiYO6AkZtAxga0")
          .ok());
  EXPECT_FALSE(ValidateHash(Scheme::kArgon2id,
                            "$argon2id$v=19$m=4294967295,t=3,p=1$5YUwz2qTN999w"
                            "A21VGHGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0N"
                            "xLnU")
                   .ok());
  EXPECT_FALSE(VerifyPassword(Scheme::kArgon2id,
                              "$argon2id$v=19$m=4294967295,t=3,p=1$5YUwz2qTN99"
                              "9wA21VGHGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJ"
                              "O+0NxLnU",
                              "demo"));
  EXPECT_FALSE(ValidateHash(Scheme::kArgon2id,
                            "$argon2id$v=19$m=65536,t=4294967295,p=1$5YUwz2qTN"
                            "999wA21VGHGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJ"
                            "O+0NxLnU")
                   .ok());
  EXPECT_FALSE(ValidateHash(Scheme::kArgon2id,
                            "$argon2id$v=19$m=65536,t=3,p=0$5YUwz2qTN999wA21VG"
                            "HGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0NxLnU")
                   .ok());
}

TEST(ValidateHashTest, MessageNeverContainsTheHash) {
  const absl::Status s =
      ValidateHash(Scheme::kSha512Crypt, kSha512Mkpasswd.substr(0, 40));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.message()).find("saltsaltsalt12"), std::string::npos)
      << s;
}

TEST(Argon2Test, LibraryRejectsParametersItDoesNotAccept) {
  // These pass our shape check but libargon2 refuses them (memory below
  // 8 KiB per lane, salt shorter than 8 bytes): false, no crash.
  EXPECT_FALSE(VerifyPassword(Scheme::kArgon2id,
                              "$argon2id$v=19$m=1,t=3,p=1$5YUwz2qTN999wA21VGHG"
                              "iw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0NxLnU",
                              "demo"));
  EXPECT_FALSE(VerifyPassword(Scheme::kArgon2id,
                              "$argon2id$v=19$m=65536,t=3,p=1$YQ$NGcQEOt1hDTPw"
                              "lKyPVU3nEvbe04YQXqWLEJO+0NxLnU",
                              "demo"));
  EXPECT_FALSE(
      VerifyPassword(Scheme::kArgon2id,
                     "$argon2id$v=99$m=65536,t=3,p=1$5YUwz2qTN999wA21"
                     "VGHGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0NxLnU",
                     "demo"));
}

TEST(ConstantTimeEqualsTest, Basics) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "xbc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", ""));
  // A prefix of equal content but different length never matches, even
  // when the extra bytes repeat the start.
  EXPECT_FALSE(ConstantTimeEquals("aa", "a"));
  EXPECT_FALSE(ConstantTimeEquals("a", "aa"));
  EXPECT_TRUE(ConstantTimeEquals(std::string_view("\0\xff", 2),
                                 std::string_view("\0\xff", 2)));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("\0\xff", 2),
                                  std::string_view("\0\xfe", 2)));
}

TEST(ConstantTimeEqualsTest, EveryBytePositionMatters) {
  const std::string base(64, 'x');
  for (size_t i = 0; i < base.size(); ++i) {
    std::string other = base;
    other[i] ^= 1;
    EXPECT_FALSE(ConstantTimeEquals(base, other)) << i;
  }
}

TEST(BurnVerificationTimeTest, RunsAndTakesRealTime) {
  const auto start = std::chrono::steady_clock::now();
  BurnVerificationTime();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // 5000 rounds of SHA-512 take milliseconds; a no-op would take
  // microseconds. Loose bound so a fast machine never flakes.
  EXPECT_GT(elapsed, std::chrono::microseconds(200));
}

}  // namespace
}  // namespace popgate::auth
