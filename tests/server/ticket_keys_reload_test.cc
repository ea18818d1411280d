// TicketKeys::SetKeyFile, as SIGHUP uses it: new keys from the new
// contents, the old secret's tickets refused, errors change nothing and
// never quote the file.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tls/ticket_keys.h"

namespace popgate::tls {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

class TicketKeysReloadTest : public ::testing::Test {
 protected:
  std::string File(const std::string& contents) {
    char tmpl[] = "/tmp/ticket_keys_reload_XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()),
              static_cast<ssize_t>(contents.size()));
    ::close(fd);
    files_.push_back(tmpl);
    return tmpl;
  }
  void TearDown() override {
    for (const std::string& f : files_) ::unlink(f.c_str());
  }
  static std::shared_ptr<TicketKeys> Keys(const std::string& file) {
    auto k = TicketKeys::Create(absl::Hours(1), file);
    EXPECT_TRUE(k.ok()) << k.status();
    return *k;
  }
  std::vector<std::string> files_;
};

TEST_F(TicketKeysReloadTest, NewContentsGiveTheOtherInstancesKeys) {
  const std::string a = File(std::string(48, 'a'));
  const std::string b = File(std::string(48, 'b'));
  auto keys = Keys(a);
  const TicketKey before = keys->Current(kT0);
  absl::StatusOr<bool> changed = keys->SetKeyFile(b);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  // Same keys as an instance started with b.
  EXPECT_EQ(keys->Current(kT0).name, Keys(b)->Current(kT0).name);
  EXPECT_EQ(keys->Current(kT0).aes_key, Keys(b)->Current(kT0).aes_key);
  EXPECT_NE(keys->Current(kT0).name, before.name);
  // The old secret's tickets are no longer accepted.
  bool renew = false;
  EXPECT_FALSE(keys->Find(before.name.data(), kT0, &renew).has_value());
  // The same contents again change nothing.
  changed = keys->SetKeyFile(b);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
}

TEST_F(TicketKeysReloadTest, ErrorsChangeNothingAndNameOnlyTheFile) {
  const std::string a = File(std::string(48, 'a'));
  auto keys = Keys(a);
  const TicketKey before = keys->Current(kT0);
  const std::string secret = "ShortSecret-0123456789";
  const std::string short_file = File(secret);
  absl::StatusOr<bool> r = keys->SetKeyFile(short_file);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(short_file), std::string::npos);
  EXPECT_EQ(r.status().message().find("ShortSecret"), std::string::npos);
  r = keys->SetKeyFile("/nonexistent/ticket.key");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot open"), std::string::npos);
  EXPECT_EQ(keys->Current(kT0).name, before.name);
}

TEST_F(TicketKeysReloadTest, EmptyFileNameMeansANewRandomSecret) {
  auto keys = Keys(File(std::string(48, 'a')));
  const TicketKey before = keys->Current(kT0);
  absl::StatusOr<bool> r = keys->SetKeyFile("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  EXPECT_NE(keys->Current(kT0).name, before.name);
}

}  // namespace
}  // namespace popgate::tls
