#include "auth/passwd_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// mkpasswd -m sha-512 -S saltsaltsalt12 demo
constexpr std::string_view kSha512 =
    "$6$saltsaltsalt12$oRjjWpKw.W6VJIPcWrOMFBi5aUO.5TAZD9K3Tyr56dXInIYgNpoH83Fi"
    "U0S4Hm5AKpXtzFZauWhpj0KwUbB68.";
// doveadm pw -s BLF-CRYPT -p demo
constexpr std::string_view kBcrypt =
    "$2y$05$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgShbzmdRaxaIO/YPo1xi";

std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

TEST(PasswdFileParseTest, FullExample) {
  const std::string content =
      "# popgate users\n"
      "\n"
      "alice:{PLAIN}wonderland\n"
      "   \t\n"
      "  # indented comment\n"
      "Bob@Example.COM:{SHA512-CRYPT}" +
      std::string(kSha512) +
      ":1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n"
      "carol:{blf-crypt}" +
      std::string(kBcrypt) +
      "\n"
      "dave:{CLEARTEXT}secret::\n"
      "erin:" +
      std::string(kSha512) + "\n";
  absl::StatusOr<PasswdFile> file = PasswdFile::Parse(content, "users");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 5u);

  const PasswdEntry* alice = file->Find("alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->user, "alice");
  EXPECT_EQ(alice->scheme, Scheme::kPlain);
  EXPECT_EQ(alice->hash, "wonderland");

  const PasswdEntry* bob = file->Find("bob@example.com");
  ASSERT_NE(bob, nullptr);
  EXPECT_EQ(bob->user, "bob@example.com");
  EXPECT_EQ(bob->scheme, Scheme::kSha512Crypt);
  EXPECT_EQ(bob->hash, kSha512);  // extra fields not included
  EXPECT_TRUE(VerifyPassword(bob->scheme, bob->hash, "demo"));

  const PasswdEntry* carol = file->Find("carol");
  ASSERT_NE(carol, nullptr);
  EXPECT_EQ(carol->scheme, Scheme::kBlfCrypt);
  EXPECT_EQ(carol->hash, kBcrypt);

  const PasswdEntry* dave = file->Find("dave");
  ASSERT_NE(dave, nullptr);
  EXPECT_EQ(dave->scheme, Scheme::kPlain);
  EXPECT_EQ(dave->hash, "secret");

  // Bare crypt hash, scheme auto-detected from "$6$".
  const PasswdEntry* erin = file->Find("erin");
  ASSERT_NE(erin, nullptr);
  EXPECT_EQ(erin->scheme, Scheme::kSha512Crypt);
  EXPECT_EQ(erin->hash, kSha512);

  EXPECT_EQ(file->Find("mallory"), nullptr);
  EXPECT_EQ(file->Find(""), nullptr);
  EXPECT_EQ(file->Find("alic"), nullptr);
}

TEST(PasswdFileParseTest, FindIsCaseInsensitive) {
  absl::StatusOr<PasswdFile> file =
      PasswdFile::Parse("MiXeD@Example.Org:{PLAIN}x\n", "f");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_NE(file->Find("mixed@example.org"), nullptr);
  EXPECT_NE(file->Find("MIXED@EXAMPLE.ORG"), nullptr);
  EXPECT_NE(file->Find("MiXeD@Example.Org"), nullptr);
  EXPECT_EQ(file->Find("MiXeD@Example.Org")->user, "mixed@example.org");
}

TEST(PasswdFileParseTest, CrlfLineEndings) {
  absl::StatusOr<PasswdFile> file = PasswdFile::Parse(
      "# comment\r\n\r\nalice:{PLAIN}pw\r\nbob:{PLAIN}pw2:extra\r\n", "f");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 2u);
  ASSERT_NE(file->Find("alice"), nullptr);
  EXPECT_EQ(file->Find("alice")->hash, "pw");  // no trailing '\r'
  EXPECT_EQ(file->Find("bob")->hash, "pw2");
}

TEST(PasswdFileParseTest, CrlfWithBareCryptHash) {
  absl::StatusOr<PasswdFile> file =
      PasswdFile::Parse("erin:" + std::string(kSha512) + "\r\n", "f");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->Find("erin")->hash, kSha512);
}

TEST(PasswdFileParseTest, NoTrailingNewlineAndBom) {
  absl::StatusOr<PasswdFile> file = PasswdFile::Parse(
      "\xEF\xBB\xBF"
      "alice:{PLAIN}pw",
      "f");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE(file->Find("alice"), nullptr);
  EXPECT_EQ(file->Find("alice")->hash, "pw");
}

TEST(PasswdFileParseTest, EmptyAndCommentOnlyFiles) {
  for (std::string_view content : {"", "\n", "# only\n#comments\n", "\r\n"}) {
    absl::StatusOr<PasswdFile> file = PasswdFile::Parse(content, "f");
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->size(), 0u);
  }
}

TEST(PasswdFileParseTest, AllSchemesParse) {
  absl::StatusOr<PasswdFile> file = PasswdFile::Parse(
      "a:{SHA256-CRYPT}$5$saltsaltsalt12$1hQyOGJv4RcpqhnyweD3Oi4edvyqAHHb0osOt"
      "NVgzt7\n"
      "b:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$5YUwz2qTN999wA21VGHGiw$NGcQE"
      "Ot1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0NxLnU\n"
      "c:{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$A36t9fKlONSO9zNYRoYicA$P9Vdll9"
      "EGzt3SZOw6Ogv47kNn/IgvrAegq7PNReEX0Q\n"
      "d:$argon2id$v=19$m=65536,t=3,p=1$5YUwz2qTN999wA21VGHGiw$NGcQEOt1hDTPwlK"
      "yPVU3nEvbe04YQXqWLEJO+0NxLnU\n"
      "e:$2b$05$tYMz6Lg4UBAg2FMUMkDjGO/1n9A44orZvXlGDTVPYUtlG/uEPjVE.\n"
      "f:$5$saltsaltsalt12$1hQyOGJv4RcpqhnyweD3Oi4edvyqAHHb0osOtNVgzt7\n"
      "g:$argon2i$v=19$m=32768,t=4,p=1$A36t9fKlONSO9zNYRoYicA$P9Vdll9EGzt3SZOw"
      "6Ogv47kNn/IgvrAegq7PNReEX0Q\n",
      "f");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->Find("a")->scheme, Scheme::kSha256Crypt);
  EXPECT_EQ(file->Find("b")->scheme, Scheme::kArgon2id);
  EXPECT_EQ(file->Find("c")->scheme, Scheme::kArgon2i);
  EXPECT_EQ(file->Find("d")->scheme, Scheme::kArgon2id);
  EXPECT_EQ(file->Find("e")->scheme, Scheme::kBlfCrypt);
  EXPECT_EQ(file->Find("f")->scheme, Scheme::kSha256Crypt);
  EXPECT_EQ(file->Find("g")->scheme, Scheme::kArgon2i);
}

struct ErrorCase {
  const char* label;
  std::string content;
  std::string expected;  // full "name:line: " prefix plus a reason fragment
  std::string secret;    // must not appear in the message ("" = none)
};

class PasswdFileErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(PasswdFileErrorTest, RefusedWithLineAndReason) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<PasswdFile> file = PasswdFile::Parse(c.content, "users.pw");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(file.status()), HasSubstr(c.expected));
  if (!c.secret.empty()) {
    EXPECT_THAT(Message(file.status()), Not(HasSubstr(c.secret)));
  }
}

const std::string kGoodLine = "ok:{PLAIN}fine\n";

INSTANTIATE_TEST_SUITE_P(
    Errors, PasswdFileErrorTest,
    testing::Values(
        ErrorCase{"MissingColon", kGoodLine + "# c\njustapassword\n",
                  "users.pw:3: missing ':'", "justapassword"},
        ErrorCase{"EmptyUser", kGoodLine + ":{PLAIN}s3cr3t\n",
                  "users.pw:2: empty user name", "s3cr3t"},
        ErrorCase{"UserWithSpace", "al ice:{PLAIN}topsecret\n",
                  "users.pw:1: user name contains whitespace", "topsecret"},
        ErrorCase{"EmptyPassword", kGoodLine + "\nbob:\n",
                  "users.pw:3: empty password field", ""},
        ErrorCase{"EmptyPasswordWithExtra", "bob::1000:1000\n",
                  "users.pw:1: empty password field", ""},
        ErrorCase{"UnknownScheme", kGoodLine + "bob:{SSHA}c2VjcmV0c2FsdA==\n",
                  "users.pw:2: unknown password scheme \"SSHA\"",
                  "c2VjcmV0c2FsdA"},
        ErrorCase{"UnknownSchemeNotEchoedIfNotAName", "bob:{my secret}rest\n",
                  "users.pw:1: unknown password scheme", "my secret"},
        ErrorCase{"UnterminatedBrace", "bob:{PLAINtopsecret\n",
                  "users.pw:1: '{' without closing '}'", "topsecret"},
        ErrorCase{"EmptyHash", "bob:{SHA512-CRYPT}\n", "users.pw:1: empty hash",
                  ""},
        ErrorCase{"BarePlaintext", kGoodLine + "bob:hunter2\n",
                  "users.pw:2: password has no {SCHEME} prefix", "hunter2"},
        ErrorCase{"BareMd5Crypt", "bob:$1$abcdefgh$bVo2O2/zpxBPLaG64PSCs/\n",
                  "users.pw:1: password has no {SCHEME} prefix",
                  "bVo2O2/zpxBPLaG64PSCs"},
        ErrorCase{"SchemePrefixMismatch",
                  "bob:{SHA256-CRYPT}" + std::string(kSha512) + "\n",
                  "users.pw:1: SHA256-CRYPT hash must start with $5$",
                  "oRjjWpKw"},
        ErrorCase{
            "TruncatedHash",
            "bob:{SHA512-CRYPT}" + std::string(kSha512.substr(0, 60)) + "\n",
            "users.pw:1: malformed or truncated digest", "oRjjWpKw"},
        ErrorCase{"TruncatedBareHash",
                  "bob:" + std::string(kBcrypt.substr(0, 30)) + "\n",
                  "users.pw:1: malformed or truncated BLF-CRYPT",
                  "D6Bcx7SbLj1WUFx"},
        ErrorCase{"BcryptCostTooHigh",
                  "bob:{BLF-CRYPT}$2y$31$D6Bcx7SbLj1WUFxSj84hXeYhXOcOEjvldgSh"
                  "bzmdRaxaIO/YPo1xi\n",
                  "users.pw:1: BLF-CRYPT cost outside", "D6Bcx7SbLj1WUFx"},
        ErrorCase{"Argon2MemoryTooHigh",
                  "bob:{ARGON2ID}$argon2id$v=19$m=4294967295,t=3,p=1$5YUwz2qT"
                  "N999wA21VGHGiw$NGcQEOt1hDTPwlKyPVU3nEvbe04YQXqWLEJO+0NxLnU"
                  "\n",
                  "users.pw:1: argon2 parameters above the limits",
                  "NGcQEOt1hDTPwlKy"},
        ErrorCase{"DuplicateUser",
                  kGoodLine + "Alice:{PLAIN}a\n# x\nalice:{PLAIN}b\n",
                  "users.pw:4: duplicate user \"alice\" (first defined on line "
                  "2)",
                  ""},
        // The name is quoted with non-ASCII and quote bytes escaped, so the
        // message stays one printable line whatever the file holds.
        ErrorCase{"DuplicateUserIsEscaped",
                  "b\xff\"b:{PLAIN}a\nB\xff\"B:{PLAIN}b\n",
                  "users.pw:2: duplicate user \"b\\xff\\\"b\"", ""},
        ErrorCase{"ErrorLineCountsCrlfAndComments",
                  "# a\r\n\r\nok:{PLAIN}x\r\n#b\r\nbad\r\n",
                  "users.pw:5: missing ':'", ""}),
    [](const testing::TestParamInfo<ErrorCase>& info) {
      return std::string(info.param.label);
    });

class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    const char* dir = getenv("TMPDIR");
    path_ = std::string(dir != nullptr ? dir : "/tmp") +
            "/popgate_passwd_test_XXXXXX";
    const int fd = mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(PasswdFileLoadTest, LoadsFile) {
  TempFile tmp("# test\nalice:{SHA512-CRYPT}" + std::string(kSha512) +
               "\nbob:{PLAIN}pw\n");
  absl::StatusOr<PasswdFile> file = PasswdFile::Load(tmp.path());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 2u);
  const PasswdEntry* alice = file->Find("ALICE");
  ASSERT_NE(alice, nullptr);
  EXPECT_TRUE(VerifyPassword(alice->scheme, alice->hash, "demo"));
}

TEST(PasswdFileLoadTest, ErrorsNameThePath) {
  TempFile tmp("alice:{PLAIN}pw\nbroken\n");
  absl::StatusOr<PasswdFile> file = PasswdFile::Load(tmp.path());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(file.status()), HasSubstr(tmp.path() + ":2: "));
}

TEST(PasswdFileLoadTest, LargeFile) {
  // More than one read() buffer's worth.
  std::string content;
  for (int i = 0; i < 5000; ++i) {
    content += "user" + std::to_string(i) + ":{PLAIN}password" +
               std::to_string(i) + "\n";
  }
  TempFile tmp(content);
  absl::StatusOr<PasswdFile> file = PasswdFile::Load(tmp.path());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 5000u);
  ASSERT_NE(file->Find("user4999"), nullptr);
  EXPECT_EQ(file->Find("user4999")->hash, "password4999");
}

TEST(PasswdFileLoadTest, MissingFile) {
  absl::StatusOr<PasswdFile> file =
      PasswdFile::Load("/nonexistent/popgate/passwd");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(file.status()), HasSubstr("/nonexistent/popgate/passwd"));
}

TEST(PasswdFileLoadTest, DirectoryIsAnError) {
  absl::StatusOr<PasswdFile> file = PasswdFile::Load("/");
  EXPECT_FALSE(file.ok());
}

}  // namespace
}  // namespace popgate::auth
