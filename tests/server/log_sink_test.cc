// The syslog and journald outputs (server/log_sink.h): the datagrams'
// encoding, delivery to a unix datagram socket the test binds itself (CI
// runs no syslog daemon and no systemd), one datagram per line from the
// log writer, a missing socket refused at start, a daemon that restarts.
#include "server/log_sink.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/log_line.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"
#include "server/log_writer.h"

namespace popgate {
namespace {

const std::string kSession =
    "{\"time\":\"2026-12-02T13:25:17.042Z\",\"level\":\"warning\",\"event\":"
    "\"session\",\"session\":\"ab12cd34-0-1f\",\"client\":\"1.2.3.4:5\"}";

// A bound unix datagram socket in a temp dir: our syslog daemon.
class Receiver {
 public:
  Receiver() {
    char tmpl[] = "/tmp/log_sink_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/sock";
    Bind();
  }
  ~Receiver() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void Bind() {
    fd_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path_.data(), path_.size());
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    timeval tv{5, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void Close() {
    fd_.Reset();
    ::unlink(path_.c_str());
  }
  std::string Receive() {
    std::string buf(65536, '\0');
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) return "<nothing>";
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
  UniqueFd fd_;
};

TEST(LogSinkTest, ReadsTheFrameBack) {
  LogLineFacts f = ReadLogLineFacts(kSession);
  EXPECT_EQ(f.level, "warning");
  EXPECT_EQ(f.event, "session");
  EXPECT_EQ(f.session, "ab12cd34-0-1f");
  f = ReadLogLineFacts("not json");
  EXPECT_EQ(f.level, "");
  EXPECT_EQ(f.event, "");
  EXPECT_EQ(SyslogSeverity("error"), 3);
  EXPECT_EQ(SyslogSeverity("warning"), 4);
  EXPECT_EQ(SyslogSeverity("info"), 6);
  EXPECT_EQ(SyslogSeverity(""), 6);
}

TEST(LogSinkTest, SyslogDatagramIsRfc3164WithTheLineAsMessage) {
  setenv("TZ", "UTC", 1);
  tzset();
  const std::string d = SyslogDatagram(
      kSession, 2, 4242, absl::FromUnixSeconds(1764681917));  // 2025-12-02
  // mail (2) * 8 + warning (4) = 20.
  EXPECT_EQ(d, absl::StrCat("<20>Dec  2 13:25:17 popgate[4242]: ", kSession));
  const std::string info = LogLine(LogLevel::kInfo, "stopped", "");
  EXPECT_TRUE(SyslogDatagram(info, 16, 1, absl::Now()).starts_with("<134>"));
}

TEST(LogSinkTest, JournalDatagramHasTheFields) {
  EXPECT_EQ(JournalDatagram(kSession, 77),
            absl::StrCat("MESSAGE=", kSession,
                         "\nPRIORITY=4\nSYSLOG_IDENTIFIER=popgate\n"
                         "SYSLOG_PID=77\nPOPGATE_EVENT=session\n"
                         "POPGATE_SESSION=ab12cd34-0-1f\n"));
  // A value with a newline takes the binary form: KEY\n<le64>value\n.
  const std::string d = JournalDatagram("a\nb", 1);
  EXPECT_EQ(d.substr(0, 8), "MESSAGE\n");
  EXPECT_EQ(d.substr(8, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(d.substr(16, 4), "a\nb\n");
  EXPECT_EQ(d.find("POPGATE_EVENT"), std::string::npos);
}

TEST(LogSinkTest, StderrNeedsNoSink) {
  LogConfig c;
  absl::StatusOr<std::unique_ptr<LogSink>> sink = OpenLogSink(c);
  ASSERT_TRUE(sink.ok());
  EXPECT_EQ(*sink, nullptr);
}

TEST(LogSinkTest, MissingSocketIsAStartUpErrorThatSaysWhatToDo) {
  LogConfig c;
  c.output = LogOutput::kSyslog;
  c.syslog_socket = "/nonexistent/dev-log";
  absl::StatusOr<std::unique_ptr<LogSink>> sink = OpenLogSink(c);
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.status().message().find("/nonexistent/dev-log"),
            std::string::npos);
  EXPECT_NE(sink.status().message().find("syslog_socket"), std::string::npos)
      << sink.status();
  c.output = LogOutput::kJournald;
  c.journal_socket = "/nonexistent/journal";
  sink = OpenLogSink(c);
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.status().message().find("journal_socket"), std::string::npos)
      << sink.status();
}

TEST(LogSinkTest, WriterSendsOneDatagramPerLineToSyslog) {
  Receiver rx;
  LogConfig c;
  c.output = LogOutput::kSyslog;
  c.syslog_socket = rx.path();
  c.syslog_facility_code = 3;  // daemon
  absl::StatusOr<std::unique_ptr<LogSink>> sink = OpenLogSink(c);
  ASSERT_TRUE(sink.ok()) << sink.status();
  LogWriter w(STDERR_FILENO, *std::move(sink));
  w.Start();
  w.Append(absl::StrCat(LogLine(LogLevel::kInfo, "one", ""),
                        LogLine(LogLevel::kError, "two", ",\"x\":1")));
  const std::string a = rx.Receive();
  const std::string b = rx.Receive();
  EXPECT_TRUE(a.starts_with("<30>")) << a;  // 3 * 8 + 6
  EXPECT_NE(a.find("\"event\":\"one\"}"), std::string::npos) << a;
  EXPECT_EQ(a.find('\n'), std::string::npos) << a;
  EXPECT_TRUE(b.starts_with("<27>")) << b;  // 3 * 8 + 3
  EXPECT_NE(b.find("popgate["), std::string::npos) << b;
  EXPECT_TRUE(b.ends_with("\"event\":\"two\",\"x\":1}")) << b;
  EXPECT_TRUE(w.Stop(absl::Seconds(5)));
  EXPECT_EQ(w.lost_lines(), 0u);
}

TEST(LogSinkTest, JournalLinesAndADaemonThatRestarts) {
  Receiver rx;
  LogConfig c;
  c.output = LogOutput::kJournald;
  c.journal_socket = rx.path();
  absl::StatusOr<std::unique_ptr<LogSink>> sink = OpenLogSink(c);
  ASSERT_TRUE(sink.ok()) << sink.status();
  LogWriter w(STDERR_FILENO, *std::move(sink));
  w.Start();
  w.Append(kSession + "\n");
  const std::string d = rx.Receive();
  EXPECT_NE(d.find("\nPOPGATE_SESSION=ab12cd34-0-1f\n"), std::string::npos)
      << d;
  EXPECT_TRUE(d.starts_with("MESSAGE={\"time\"")) << d;
  // journald restarted: a new socket at the same path. The writer
  // reconnects and loses nothing.
  rx.Close();
  rx.Bind();
  w.Append(LogLine(LogLevel::kInfo, "after", ""));
  EXPECT_NE(rx.Receive().find("POPGATE_EVENT=after\n"), std::string::npos);
  // Gone for good: lines are counted lost (and said so once it is back).
  rx.Close();
  w.Append(LogLine(LogLevel::kInfo, "lost", ""));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(w.lost_lines(), 1u);
  rx.Bind();
  w.Append(LogLine(LogLevel::kInfo, "back", ""));
  const std::string warn = rx.Receive();
  EXPECT_NE(warn.find("log lines lost"), std::string::npos) << warn;
  EXPECT_NE(warn.find("PRIORITY=4"), std::string::npos) << warn;
  EXPECT_NE(rx.Receive().find("POPGATE_EVENT=back"), std::string::npos);
  EXPECT_TRUE(w.Stop(absl::Seconds(5)));
}

}  // namespace
}  // namespace popgate
