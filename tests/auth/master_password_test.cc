#include "auth/master_password.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace popgate::auth {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The password every file below holds (or starts with): no error may
// contain it.
constexpr char kSecret[] = "Master-s3cret-Value";

class MasterPasswordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/master_password_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& p : made_) std::remove(p.c_str());
    ::rmdir(dir_.c_str());
  }

  std::string Write(const std::string& name, const std::string& content,
                    mode_t mode = 0600) {
    std::string path = dir_ + "/" + name;
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << content;
    }
    ::chmod(path.c_str(), mode);
    made_.push_back(path);
    return path;
  }

  std::string dir_;
  std::vector<std::string> made_;
};

TEST_F(MasterPasswordTest, ReadsTheFirstLine) {
  for (const std::string& content :
       {std::string(kSecret) + "\n", std::string(kSecret) + "\r\n",
        std::string(kSecret), std::string(kSecret) + "\nsecond line\n"}) {
    auto pw = ReadMasterPasswordFile(Write("pw", content));
    ASSERT_TRUE(pw.ok()) << pw.status();
    EXPECT_EQ((*pw)->value(), kSecret);
  }
}

TEST_F(MasterPasswordTest, Mode0400IsFine) {
  auto pw = ReadMasterPasswordFile(Write("pw", "x\n", 0400));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_EQ((*pw)->value(), "x");
}

TEST_F(MasterPasswordTest, GroupOrOtherAccessIsRefusedWithTheFix) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0601}) {
    std::string path = Write("pw", std::string(kSecret) + "\n", mode);
    auto pw = ReadMasterPasswordFile(path);
    ASSERT_FALSE(pw.ok()) << std::oct << mode;
    char mode_text[8];
    std::snprintf(mode_text, sizeof(mode_text), "%04o", mode);
    EXPECT_THAT(pw.status().message(),
                AllOf(HasSubstr(path), HasSubstr(mode_text),
                      HasSubstr("chmod 600 " + path), Not(HasSubstr(kSecret))));
  }
}

TEST_F(MasterPasswordTest, SymlinkIsRefused) {
  std::string target = Write("target", std::string(kSecret) + "\n");
  std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  made_.push_back(link);
  auto pw = ReadMasterPasswordFile(link);
  ASSERT_FALSE(pw.ok());
  EXPECT_THAT(pw.status().message(),
              AllOf(HasSubstr(link), HasSubstr("symbolic link"),
                    Not(HasSubstr(kSecret))));
}

TEST_F(MasterPasswordTest, DirectoryAndMissingFileAreRefused) {
  EXPECT_FALSE(ReadMasterPasswordFile(dir_).ok());
  auto pw = ReadMasterPasswordFile(dir_ + "/absent");
  ASSERT_FALSE(pw.ok());
  EXPECT_TRUE(absl::IsNotFound(pw.status())) << pw.status();
}

TEST_F(MasterPasswordTest, OtherOwnerIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::string path = Write("pw", std::string(kSecret) + "\n");
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  auto pw = ReadMasterPasswordFile(path);
  ASSERT_FALSE(pw.ok());
  EXPECT_THAT(pw.status().message(),
              AllOf(HasSubstr("owned by uid 65534"), Not(HasSubstr(kSecret))));
}

TEST_F(MasterPasswordTest, EmptyIsRefused) {
  for (const char* content : {"", "\n", "\r\n", "\nsecond\n"}) {
    auto pw = ReadMasterPasswordFile(Write("pw", content));
    ASSERT_FALSE(pw.ok()) << "content: " << content;
    EXPECT_THAT(pw.status().message(), HasSubstr("empty"));
  }
}

TEST_F(MasterPasswordTest, LengthLimit) {
  std::string longest(kMaxMasterPasswordLength, 'k');
  auto pw = ReadMasterPasswordFile(Write("pw", longest + "\r\n"));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_EQ((*pw)->value(), longest);

  for (const std::string& content :
       {longest + "k", longest + "k\n", longest + "kkkkkkkkkkkkkk",
        std::string(kSecret) + longest}) {
    pw = ReadMasterPasswordFile(Write("pw", content));
    ASSERT_FALSE(pw.ok()) << content.size();
    EXPECT_THAT(pw.status().message(),
                AllOf(HasSubstr("longer than 1024"), Not(HasSubstr(kSecret)),
                      Not(HasSubstr("kkkk"))));
  }
}

TEST_F(MasterPasswordTest, NulOrInnerCrIsRefused) {
  for (const std::string& content :
       {std::string(kSecret) + std::string(1, '\0') + "x\n",
        std::string(kSecret) + "\rx\n", std::string(kSecret) + "\r\r\n"}) {
    auto pw = ReadMasterPasswordFile(Write("pw", content));
    ASSERT_FALSE(pw.ok());
    EXPECT_THAT(pw.status().message(), Not(HasSubstr(kSecret)));
  }
}

}  // namespace
}  // namespace popgate::auth
