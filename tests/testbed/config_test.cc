#include "testbed/synth/config.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

TEST(ParseSizeTest, Suffixes) {
  EXPECT_EQ(*ParseSize("2000"), 2000u);
  EXPECT_EQ(*ParseSize("64k"), 65536u);
  EXPECT_EQ(*ParseSize("64K"), 65536u);
  EXPECT_EQ(*ParseSize("100m"), 100u << 20);
  EXPECT_EQ(*ParseSize("1g"), 1u << 30);
  for (const char* bad : {"", "k", "12x", "-1", "1.5m", " 1", "99999999999g"}) {
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  }
}

TEST(ParseCommandLineTest, Defaults) {
  absl::StatusOr<SynthConfig> c = ParseCommandLine({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, std::vector<std::string>{"127.0.0.1:1110"});
  EXPECT_EQ(c->messages, 5);
  EXPECT_EQ(c->sizes, std::vector<uint64_t>{2000});
  EXPECT_EQ(c->idle_timeout_seconds, 600);
  EXPECT_EQ(c->dump, SynthConfig::Dump::kNone);
}

TEST(ParseCommandLineTest, AllFlags) {
  absl::StatusOr<SynthConfig> c = ParseCommandLine({"--listen",
                                                    "127.0.0.1:0",
                                                    "--listen=[::1]:0",
                                                    "--user",
                                                    "alice@example.com:demo",
                                                    "--user",
                                                    "bob:pa:ss",
                                                    "--users-file",
                                                    "f",
                                                    "--generated-users",
                                                    "10",
                                                    "--generated-domain",
                                                    "bench.example",
                                                    "--generated-password",
                                                    "pw",
                                                    "--messages",
                                                    "3",
                                                    "--sizes",
                                                    "100,2k,1m",
                                                    "--greeting",
                                                    "hi there",
                                                    "--idle-timeout",
                                                    "5",
                                                    "--verbose"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, (std::vector<std::string>{"127.0.0.1:0", "[::1]:0"}));
  ASSERT_EQ(c->users.size(), 2u);
  EXPECT_EQ(c->users[1].user, "bob");
  EXPECT_EQ(c->users[1].password, "pa:ss");
  EXPECT_EQ(c->users_files, std::vector<std::string>{"f"});
  EXPECT_EQ(c->generated_users, 10);
  EXPECT_EQ(c->generated_domain, "bench.example");
  EXPECT_EQ(c->generated_password, "pw");
  EXPECT_EQ(c->messages, 3);
  EXPECT_EQ(c->sizes, (std::vector<uint64_t>{100, 2048, 1 << 20}));
  EXPECT_EQ(c->SizeOf(1), 100u);
  EXPECT_EQ(c->SizeOf(4), 100u);
  EXPECT_EQ(c->SizeOf(3), 1u << 20);
  EXPECT_EQ(c->greeting, "hi there");
  EXPECT_EQ(c->idle_timeout_seconds, 5);
  EXPECT_TRUE(c->verbose);
}

TEST(ParseCommandLineTest, Dump) {
  absl::StatusOr<SynthConfig> c =
      ParseCommandLine({"--size", "100m", "--dump", "alice", "2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dump, SynthConfig::Dump::kRaw);
  EXPECT_EQ(c->dump_user, "alice");
  EXPECT_EQ(c->dump_number, 2);
  EXPECT_EQ(c->sizes, std::vector<uint64_t>{100 << 20});
  c = ParseCommandLine({"--dump-wire", "bob", "1"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dump, SynthConfig::Dump::kWire);
}

TEST(ParseCommandLineTest, Errors) {
  std::vector<std::vector<std::string>> bad = {
      {"--bogus"},
      {"--user"},
      {"--user", "nocolon"},
      {"--messages", "x"},
      {"--messages", "-1"},
      {"--size", "1,2"},
      {"--sizes", ","},
      {"--dump", "alice"},
      {"--dump", "alice", "0"},
      {"--idle-timeout", "0"},
      {"--size", "1", "--sizes", "2"},
  };
  for (const auto& args : bad) {
    EXPECT_FALSE(ParseCommandLine(args).ok()) << args[0];
  }
}

TEST(ParseUsersTextTest, CommentsBlankLinesAndPlainScheme) {
  absl::StatusOr<std::vector<Credential>> users = ParseUsersText(
      "# comment\n\nalice@example.com:demo\r\n  bob:{PLAIN}secret:1000:1000\n"
      "carol:with:colons\n");
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_EQ(users->size(), 3u);
  EXPECT_EQ((*users)[0].user, "alice@example.com");
  EXPECT_EQ((*users)[0].password, "demo");
  EXPECT_EQ((*users)[1].user, "bob");
  EXPECT_EQ((*users)[1].password, "secret");
  EXPECT_EQ((*users)[2].password, "with:colons");
  EXPECT_FALSE(ParseUsersText("x:{SHA512-CRYPT}$6$abc\n").ok());
  EXPECT_FALSE(ParseUsersText("nocolon\n").ok());
}

TEST(BuildMaildropsTest, ExplicitAndGeneratedUsers) {
  absl::StatusOr<SynthConfig> c = ParseCommandLine(
      {"--user", "user1@bench.example:special", "--generated-users", "3",
       "--generated-domain", "bench.example", "--messages", "2", "--sizes",
       "300,4k"});
  ASSERT_TRUE(c.ok());
  MaildropStore store;
  ASSERT_TRUE(BuildMaildrops(*c, &store).ok());
  EXPECT_EQ(store.size(), 3u);
  Maildrop* u1 = store.Find("user1@bench.example");
  ASSERT_NE(u1, nullptr);
  EXPECT_TRUE(u1->CheckPassword("special")) << "explicit user wins";
  Maildrop* u2 = store.Find("user2@bench.example");
  ASSERT_NE(u2, nullptr);
  EXPECT_TRUE(u2->CheckPassword("password"));
  EXPECT_FALSE(u2->CheckPassword("passwor"));
  ASSERT_EQ(u2->messages().size(), 2u);
  EXPECT_EQ(u2->messages()[1].number, 2);
  EXPECT_EQ(u2->messages()[1].size, 4096u);
  EXPECT_EQ(store.Find("user3@bench.example"), nullptr);
  EXPECT_EQ(store.Find("USER2@bench.example"), nullptr) << "case-sensitive";

  MaildropStore dup;
  c = ParseCommandLine({"--user", "a:1", "--user", "a:2"});
  EXPECT_FALSE(BuildMaildrops(*c, &dup).ok());
}

}  // namespace
}  // namespace popgate::synth
