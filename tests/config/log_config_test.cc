// [log] (issue 11): the log's output, its sockets, the session_start line.
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "config/config.h"
#include "gtest/gtest.h"
#include "tests/config/section_test_util.h"

namespace popgate {
namespace {

using ::popgate::testing::ParseSection;

absl::StatusOr<Config> Parse(std::string_view log) { return ParseSection(log); }

::testing::AssertionResult FailsAt(std::string_view log, int line,
                                   std::string_view what) {
  return ::popgate::testing::SectionFailsAt(log, line, what);
}

TEST(LogConfigTest, DefaultsAreStderrWithoutStartLines) {
  absl::StatusOr<Config> c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log.output, LogOutput::kStderr);
  EXPECT_FALSE(c->log.session_start);
  EXPECT_EQ(c->log.syslog_facility, "mail");
  EXPECT_EQ(c->log.syslog_facility_code, 2);
  EXPECT_EQ(c->log.syslog_socket, "/dev/log");
  EXPECT_EQ(c->log.journal_socket, "/run/systemd/journal/socket");
}

TEST(LogConfigTest, ReadsEveryKey) {
  absl::StatusOr<Config> c = Parse(
      "[log]\noutput = \"syslog\"\nsession_start = true\n"
      "syslog_facility = \"local3\"\nsyslog_socket = \"/run/x.sock\"\n"
      "journal_socket = \"j.sock\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log.output, LogOutput::kSyslog);
  EXPECT_TRUE(c->log.session_start);
  EXPECT_EQ(c->log.syslog_facility_code, 19);
  EXPECT_EQ(c->log.syslog_socket, "/run/x.sock");
  EXPECT_EQ(c->log.journal_socket, "/etc/popgate/j.sock");  // config's dir
  c = Parse("[log]\noutput = \"journald\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log.output, LogOutput::kJournald);
}

TEST(LogConfigTest, RefusesWhatItCannotDo) {
  EXPECT_TRUE(FailsAt("[log]\noutput = \"file\"\n", 2, "\"journald\""));
  EXPECT_TRUE(FailsAt("[log]\nsyslog_facility = \"mial\"\n", 2, "local0"));
  EXPECT_TRUE(FailsAt("[log]\nsession_start = \"yes\"\n", 2, "session_start"));
  EXPECT_TRUE(
      FailsAt("[log]\nsyslog_socket = \"/" + std::string(120, 'x') + "\"\n", 2,
              "107 bytes"));
  EXPECT_TRUE(FailsAt("[log]\nlevel = \"debug\"\n", 2, "level"));
}

// Every [log] key has a row in the README's configuration reference.
TEST(LogConfigTest, ReadmeDocumentsEveryKey) {
  std::ifstream in(POPGATE_README);
  ASSERT_TRUE(in) << POPGATE_README;
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string text = readme.str();
  const size_t section = text.find("### `[log]` (optional)");
  ASSERT_NE(section, std::string::npos);
  for (std::string_view key : {"output", "session_start", "syslog_facility",
                               "syslog_socket", "journal_socket"}) {
    EXPECT_NE(text.find("| `" + std::string(key) + "` |", section),
              std::string::npos)
        << key;
  }
}

}  // namespace
}  // namespace popgate
