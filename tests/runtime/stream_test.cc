// PlainStream: reads with timeouts, WaitReadable, WriteAll of more than a
// socket buffer holds (the first untimed send takes what fits, timed sends
// the rest).
#include "runtime/stream.h"

#include <sys/socket.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::RunTask;
using testing::UnixPair;

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(ring_.Init(32).ok()); }
  Ring ring_;
};

Task<int> ReadSome(Stream& s, std::string& out, absl::Duration timeout) {
  char buf[64];
  int n = co_await s.Read({buf, sizeof(buf)}, timeout);
  if (n > 0) out.assign(buf, static_cast<size_t>(n));
  co_return n;
}

TEST_F(StreamTest, ReadTimesOutWithCanceled) {
  auto [a, b] = UnixPair();
  PlainStream s(ring_, a.get());
  std::string got;
  EXPECT_EQ(RunTask(ring_, ReadSome(s, got, absl::Milliseconds(10))),
            -ECANCELED);
}

TEST_F(StreamTest, ReadGetsDataAndThenEof) {
  auto [a, b] = UnixPair();
  PlainStream s(ring_, a.get());
  ASSERT_EQ(::send(b.get(), "data", 4, 0), 4);
  ::shutdown(b.get(), SHUT_WR);
  std::string got;
  EXPECT_EQ(RunTask(ring_, ReadSome(s, got, absl::Seconds(30))), 4);
  EXPECT_EQ(got, "data");
  EXPECT_EQ(RunTask(ring_, ReadSome(s, got, absl::Seconds(30))), 0);
}

TEST_F(StreamTest, WaitReadable) {
  auto [a, b] = UnixPair();
  PlainStream s(ring_, a.get());
  auto wait = [](Stream& s, absl::Duration t) -> Task<int> {
    co_return co_await s.WaitReadable(t);
  };
  EXPECT_EQ(RunTask(ring_, wait(s, absl::Milliseconds(10))), -ECANCELED);
  ASSERT_EQ(::send(b.get(), "x", 1, 0), 1);
  std::optional<int> ready = RunTask(ring_, wait(s, absl::Seconds(30)));
  ASSERT_TRUE(ready.has_value());
  EXPECT_GT(*ready, 0);
  std::string got;
  EXPECT_EQ(RunTask(ring_, ReadSome(s, got, absl::Seconds(30))), 1);
  b.Reset();
  ready = RunTask(ring_, wait(s, absl::Seconds(30)));
  ASSERT_TRUE(ready.has_value());
  EXPECT_GT(*ready, 0);  // EOF pending counts as readable
  EXPECT_EQ(RunTask(ring_, ReadSome(s, got, absl::Seconds(30))), 0);
}

// 4 MiB through a socket whose buffers hold far less: WriteAll returns 0
// only after the reader (a coroutine on the same ring) took every byte.
TEST_F(StreamTest, WriteAllMoreThanTheSocketBuffer) {
  auto [a, b] = UnixPair();
  int small = 16 * 1024;
  ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  PlainStream writer(ring_, a.get());
  PlainStream reader(ring_, b.get());
  const std::string payload = testing::Pattern(4 << 20);
  std::string received;
  bool read_done = false;
  auto drain = [](Stream& s, std::string& out, size_t want,
                  bool& done) -> Detached {
    std::string buf(65536, '\0');
    while (out.size() < want) {
      int n = co_await s.Read({buf.data(), buf.size()}, absl::Seconds(30));
      if (n <= 0) break;
      out.append(buf.data(), static_cast<size_t>(n));
    }
    done = true;
  };
  drain(reader, received, payload.size(), read_done);
  auto write = [](Stream& s, const std::string& data) -> Task<int> {
    co_return co_await s.WriteAll(data, absl::Seconds(30));
  };
  EXPECT_EQ(RunTask(ring_, write(writer, payload)), 0);
  ASSERT_TRUE(testing::RunUntil(ring_, read_done));
  EXPECT_TRUE(received == payload);
}

TEST_F(StreamTest, WriteAllToAClosedPeerFails) {
  auto [a, b] = UnixPair();
  b.Reset();
  PlainStream s(ring_, a.get());
  auto write = [](Stream& s) -> Task<int> {
    co_return co_await s.WriteAll("hello", absl::Seconds(30));
  };
  std::optional<int> rc = RunTask(ring_, write(s));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, -EPIPE);
}

// A peer that never reads: the timed part of WriteAll ends with -ECANCELED.
TEST_F(StreamTest, WriteAllToAStalledPeerTimesOut) {
  auto [a, b] = UnixPair();
  PlainStream s(ring_, a.get());
  const std::string big = testing::Pattern(8 << 20);
  auto write = [](Stream& s, const std::string& d) -> Task<int> {
    co_return co_await s.WriteAll(d, absl::Milliseconds(50));
  };
  EXPECT_EQ(RunTask(ring_, write(s, big)), -ECANCELED);
}

}  // namespace
}  // namespace popgate
