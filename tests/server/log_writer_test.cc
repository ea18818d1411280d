// The stderr log writer: position-safe on files opened without O_APPEND,
// atomic chunks on pipes and sockets, nothing dropped while the reader
// stalls, a bounded Stop(), lost lines counted when the fd fails.
#include "server/log_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace popgate {
namespace {

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as popgate does: EPIPE instead
    char tmpl[] = "/tmp/log_writer_test_XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
  }
  void TearDown() override { ::unlink(path_.c_str()); }

  // Opened like `2> file`: no O_APPEND.
  int OpenTruncating() {
    int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return fd;
  }
  std::string Contents() {
    std::string out;
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
    ::close(fd);
    return out;
  }

  std::string path_;
};

std::string Line(int writer, int i) {
  // ~100 bytes, like a short session line.
  return absl::StrCat("{\"writer\":", writer, ",\"i\":", i, ",\"pad\":\"",
                      std::string(60, 'x'), "\"}\n");
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

TEST_F(LogWriterTest, SetsAppendOnARegularFile) {
  int fd = OpenTruncating();
  ASSERT_EQ(fcntl(fd, F_GETFL) & O_APPEND, 0);
  LogWriter w(fd);
  EXPECT_TRUE(w.appends());
  EXPECT_FALSE(w.atomic_chunks());
  EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
  ::close(fd);
}

// Two descriptions of one file, each with its own position (two processes,
// or `>f 2>f`): without O_APPEND they write over each other's lines.
TEST_F(LogWriterTest, TwoDescriptionsOfOneFileLoseNothing) {
  constexpr int kLines = 3000;
  int fd1 = OpenTruncating();
  int fd2 = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd2, 0);
  {
    LogWriter a(fd1), b(fd2);
    a.Start();
    b.Start();
    std::thread ta([&] {
      for (int i = 0; i < kLines; ++i) a.Append(Line(1, i));
    });
    std::thread tb([&] {
      for (int i = 0; i < kLines; ++i) b.Append(Line(2, i));
    });
    ta.join();
    tb.join();
    EXPECT_TRUE(a.Stop(absl::Seconds(10)));
    EXPECT_TRUE(b.Stop(absl::Seconds(10)));
  }
  ::close(fd1);
  ::close(fd2);
  std::string data = Contents();
  size_t want_bytes = 0;
  for (int i = 0; i < kLines; ++i) want_bytes += 2 * Line(1, i).size();
  EXPECT_EQ(data.size(), want_bytes) << "bytes overwritten";
  std::vector<std::string> lines =
      absl::StrSplit(data, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2u * kLines);
  int next[3] = {0, 0, 0};
  for (const std::string& l : lines) {
    int w = l.rfind("{\"writer\":1,", 0) == 0 ? 1 : 2;
    ASSERT_EQ(l + "\n", Line(w, next[w])) << "a line was cut or reordered";
    ++next[w];
  }
  EXPECT_EQ(next[1], kLines);
  EXPECT_EQ(next[2], kLines);
}

TEST_F(LogWriterTest, ManyThreadsEveryLineOnceInOrderPerThread) {
  constexpr int kThreads = 8, kLines = 4000;
  int fd = OpenTruncating();
  {
    LogWriter w(fd);
    w.Start();
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&w, t] {
        for (int i = 0; i < kLines; ++i) w.Append(Line(t, i));
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_TRUE(w.Stop(absl::Seconds(10)));
    EXPECT_EQ(w.backlog(), 0u);
  }
  ::close(fd);
  std::vector<std::string> lines =
      absl::StrSplit(Contents(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> next(kThreads, 0);
  for (const std::string& l : lines) {
    int t = l[10] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    ASSERT_EQ(l + "\n", Line(t, next[t]));
    ++next[t];
  }
}

// A seqpacket socket keeps each write as one record: every write must be
// whole lines of at most PIPE_BUF bytes (atomic on a pipe shared with
// other processes), except a single longer line, which goes out whole.
TEST_F(LogWriterTest, PipesGetWholeLinesOfAtMostPipeBuf) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  int big = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  std::string batch;
  for (int i = 0; i < 200; ++i) batch += Line(0, i);
  const std::string long_line = std::string(PIPE_BUF + 500, 'L') + "\n";
  batch += long_line;
  for (int i = 200; i < 300; ++i) batch += Line(0, i);
  LogWriter w(sv[0]);
  EXPECT_TRUE(w.atomic_chunks());
  w.Start();
  w.Append(batch);  // one batch: the writer must cut it
  std::string got;
  std::thread reader([&] {
    std::vector<char> buf(1 << 16);
    while (got.size() < batch.size()) {
      ssize_t n = ::recv(sv[1], buf.data(), buf.size(), 0);
      if (n <= 0) break;
      std::string rec(buf.data(), n);
      EXPECT_EQ(rec.back(), '\n') << "a write ended inside a line";
      if (rec != long_line) {
        EXPECT_LE(rec.size(), static_cast<size_t>(PIPE_BUF));
      }
      got += rec;
    }
  });
  EXPECT_TRUE(w.Stop(absl::Seconds(10)));
  reader.join();
  EXPECT_EQ(got, batch);
  ::close(sv[0]);
  ::close(sv[1]);
}

// The old writer dropped lines past 4 MiB queued; this one keeps them all
// (callers apply backpressure by backlog()) and Append never blocks.
TEST_F(LogWriterTest, StalledPipeKeepsEveryLine) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  constexpr int kLines = 60000;  // ~6 MiB, far more than the pipe holds
  std::string want;
  LogWriter w(p[1]);
  w.Start();
  for (int i = 0; i < kLines; ++i) {
    std::string l = Line(0, i);
    w.Append(l);
    want += l;
  }
  // Nobody reads yet: most of it waits in the writer.
  EXPECT_GT(w.backlog(), 4u << 20);
  std::string got;
  std::thread reader([&] { got = ReadAll(p[0]); });
  EXPECT_TRUE(w.Stop(absl::Seconds(20)));
  EXPECT_EQ(w.backlog(), 0u);
  ::close(p[1]);
  reader.join();
  ::close(p[0]);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  EXPECT_EQ(w.lost_lines(), 0u);
}

TEST_F(LogWriterTest, StopIsBoundedWhenStderrIsStuck) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto* w = new LogWriter(p[1]);
  w->Start();
  for (int i = 0; i < 20000; ++i) w->Append(Line(0, i));
  // Gives up after the bound (a hang here is the failure).
  EXPECT_FALSE(w->Stop(absl::Milliseconds(200)));
  delete w;  // the thread keeps its own share of the state
  // Closing the read end ends the left-behind thread (EPIPE). The write
  // end stays open: the thread may still use that fd number.
  ::close(p[0]);
}

TEST_F(LogWriterTest, FailedWritesCountLostLines) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);  // EPIPE on every write
  LogWriter w(p[1]);
  w.Start();
  w.Append(Line(0, 0) + Line(0, 1));
  w.Append(Line(0, 2));
  EXPECT_TRUE(w.Stop(absl::Seconds(10)));
  EXPECT_EQ(w.lost_lines(), 3u);
  ::close(p[1]);
}

TEST_F(LogWriterTest, BeforeStartAndAfterStopWritesInline) {
  int fd = OpenTruncating();
  LogWriter w(fd);
  w.Append(Line(0, 0));
  EXPECT_EQ(Contents(), Line(0, 0));
  w.Start();
  w.Append(Line(0, 1));
  EXPECT_TRUE(w.Stop(absl::Seconds(10)));
  w.Append(Line(0, 2));
  EXPECT_EQ(Contents(), Line(0, 0) + Line(0, 1) + Line(0, 2));
  ::close(fd);
}

TEST(LogBackpressureTest, PausesAboveHighResumesBelowLow) {
  LogBackpressure bp(100, 40);
  EXPECT_FALSE(bp.Update(0));
  EXPECT_FALSE(bp.Update(100));
  EXPECT_TRUE(bp.Update(101));
  EXPECT_TRUE(bp.paused());
  EXPECT_TRUE(bp.Update(60));  // still above the low mark
  EXPECT_TRUE(bp.Update(40));
  EXPECT_FALSE(bp.Update(39));
  EXPECT_FALSE(bp.Update(90));
}

}  // namespace
}  // namespace popgate
