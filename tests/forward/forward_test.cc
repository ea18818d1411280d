// Forwarding after login, over socket pairs: ForwardSplice (plain sockets,
// with and without the worker's provided buffers) and ForwardCopy (the
// Stream path TLS uses, here with PlainStream on both sides).
//
// The forwarder runs on a ring in its own thread, as on a worker; the test
// thread plays the client and the backend with blocking sockets (bounded by
// SO_RCVTIMEO/SO_SNDTIMEO so a failure cannot hang).
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forward/forward_copy.h"
#include "forward/forward_end.h"
#include "forward/forwarder.h"
#include "gtest/gtest.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "runtime/stream.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::CloseWithReset;
using testing::Pattern;
using testing::ReadExactly;
using testing::ReadUntilEof;
using testing::WriteAllBlocking;

enum class Mode {
  kSplice,             // ForwardSplice with provided buffers (as workers run)
  kSpliceNoBuffers,    // ForwardSplice, poll + recv for the short lines
  kSpliceBuffersGone,  // ForwardSplice, every provided buffer already lent
  kCopy,               // ForwardCopy over PlainStream
};

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  switch (info.param) {
    case Mode::kSplice:
      return "Splice";
    case Mode::kSpliceNoBuffers:
      return "SpliceNoBuffers";
    case Mode::kSpliceBuffersGone:
      return "SpliceBuffersGone";
    case Mode::kCopy:
      return "Copy";
  }
  return "?";
}

void PrintTo(Mode m, std::ostream* os) {
  *os << ModeName(::testing::TestParamInfo<Mode>(m, 0));
}

struct HarnessOptions {
  ForwardOptions forward;
  size_t pipe_size = 64 * 1024;
  size_t max_idle_pipes = 4;
  bool unix_sockets = false;  // AF_UNIX socketpairs instead of TCP
};

// Client app <-> [client_proxy | forwarder | backend_proxy] <-> backend app.
class Forwarding {
 public:
  Forwarding(Mode mode, HarnessOptions opts) : mode_(mode), opts_(opts) {
    auto c = opts.unix_sockets ? testing::UnixPair() : testing::TcpPair();
    auto b = opts.unix_sockets ? testing::UnixPair() : testing::TcpPair();
    client_ = std::move(c.first);
    client_proxy_ = std::move(c.second);
    backend_ = std::move(b.first);
    backend_proxy_ = std::move(b.second);
    testing::SetIoTimeout(client_.get(), absl::Seconds(10));
    testing::SetIoTimeout(backend_.get(), absl::Seconds(10));
  }

  ~Forwarding() {
    if (thread_.joinable()) {
      if (!Wait(absl::Seconds(10))) {
        // Unwind a forwarder that did not end (the test has failed).
        ::shutdown(client_proxy_.get(), SHUT_RDWR);
        ::shutdown(backend_proxy_.get(), SHUT_RDWR);
      }
      thread_.join();
    }
  }

  // Starts the forwarder. `before_go` runs on the test thread once the
  // ring, buffers and pool exist and before forwarding starts.
  void Start(std::function<void()> before_go = {}) {
    thread_ = std::thread([this] { Run(); });
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return ready_; });
    }
    if (before_go) before_go();
    std::lock_guard<std::mutex> lock(mu_);
    go_ = true;
    cv_.notify_all();
  }

  // The forwarder's result once it returned; nullopt if it did not within
  // `limit`.
  std::optional<ForwardStats> Wait(absl::Duration limit = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoMilliseconds(limit),
                 [this] { return finished_; });
    if (!finished_) return std::nullopt;
    return stats_;
  }

  int client() const { return client_.get(); }
  int backend() const { return backend_.get(); }
  UniqueFd& client_fd() { return client_; }
  UniqueFd& backend_fd() { return backend_; }

 private:
  void Run() {
    Ring ring;
    BufferRing buffers;
    PipePool pool(opts_.pipe_size, opts_.max_idle_pipes);
    bool ring_ok = ring.Init(64).ok();
    bool buffers_ok = ring_ok && (mode_ == Mode::kSpliceNoBuffers ||
                                  buffers.Init(ring.raw(), 1, 2).ok());
    std::vector<int> lent;
    std::vector<std::pair<UniqueFd, UniqueFd>> takers;
    if (buffers_ok && mode_ == Mode::kSpliceBuffersGone) {
      // Lend both buffers out (receives that are never recycled), so every
      // provided receive of the forwarder gets -ENOBUFS.
      for (int i = 0; i < 2; ++i) {
        takers.push_back(testing::UnixPair());
        ::send(takers.back().second.get(), "x", 1, 0);
        auto take = [](Ring& r, BufferRing& b, int fd) -> Task<ProvidedRecv> {
          co_return co_await RecvProvided(r, b, fd);
        };
        std::optional<ProvidedRecv> got = testing::RunTask(
            ring, take(ring, buffers, takers.back().first.get()));
        if (got && got->buffer >= 0) lent.push_back(got->buffer);
      }
      buffers_ok = lent.size() == 2;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return go_; });
    }
    std::optional<ForwardStats> stats;
    if (ring_ok && buffers_ok) {
      BufferRing* br = mode_ == Mode::kSpliceNoBuffers ? nullptr : &buffers;
      if (mode_ == Mode::kCopy) {
        PlainStream c(ring, client_proxy_.get());
        PlainStream b(ring, backend_proxy_.get());
        stats = testing::RunTask(ring, ForwardCopy(ring, c, b, opts_.forward),
                                 absl::Seconds(20));
      } else {
        stats =
            testing::RunTask(ring,
                             ForwardSplice(ring, pool, br, client_proxy_.get(),
                                           backend_proxy_.get(), opts_.forward),
                             absl::Seconds(20));
      }
    }
    for (int id : lent) buffers.Recycle(static_cast<uint16_t>(id));
    buffers.Reset();
    // The proxy closes both sockets when a session ends.
    client_proxy_.Reset();
    backend_proxy_.Reset();
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = stats;
    finished_ = true;
    cv_.notify_all();
  }

  Mode mode_;
  HarnessOptions opts_;
  UniqueFd client_, client_proxy_, backend_, backend_proxy_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool go_ = false;
  bool finished_ = false;
  std::optional<ForwardStats> stats_;
};

HarnessOptions Defaults() {
  HarnessOptions o;
  o.forward.idle_timeout = absl::Seconds(20);
  o.forward.client_drain_timeout = absl::Seconds(5);
  return o;
}

std::string EndName(const std::optional<ForwardStats>& s) {
  return s ? std::string(ForwardEndName(s->end)) : "(still running)";
}

// Writes `data` to `fd` from another thread (so the test thread can read
// the other end meanwhile).
class BackgroundWriter {
 public:
  BackgroundWriter(int fd, std::string data)
      : data_(std::move(data)),
        thread_([this, fd] { ok_ = WriteAllBlocking(fd, data_); }) {}
  bool Join() {
    thread_.join();
    return ok_;
  }

 private:
  std::string data_;
  bool ok_ = false;
  std::thread thread_;
};

// Reads to a clean end (FIN). A reset or a timeout (SO_RCVTIMEO: the FIN
// never came) shows up in the returned text, so the comparison fails.
std::string ReadToFin(int fd) {
  int err = 0;
  std::string got = ReadUntilEof(fd, size_t{1} << 30, &err);
  if (err != 0) got += absl::StrCat("<", strerror(err), ">");
  return got;
}

// Reads until the connection ends, by FIN or reset; a timeout (it did not
// end) shows up in the returned text.
std::string ReadToEnd(int fd) {
  int err = 0;
  std::string got = ReadUntilEof(fd, size_t{1} << 30, &err);
  if (err == EAGAIN) got += "<timeout: not closed>";
  return got;
}

// The client's QUIT reaches the backend, which answers "+OK bye" and
// closes; the client reads the answer up to the FIN and closes: the clean
// end the forwarder records as "quit". Both sides are closed even when a
// check fails, so the caller's Wait() cannot hang.
void QuitAndClose(Forwarding& f) {
  EXPECT_TRUE(WriteAllBlocking(f.client(), "QUIT\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "QUIT\r\n");
  EXPECT_TRUE(WriteAllBlocking(f.backend(), "+OK bye\r\n"));
  f.backend_fd().Reset();
  EXPECT_EQ(ReadToFin(f.client()), "+OK bye\r\n");
  f.client_fd().Reset();
}

class ForwardTest : public ::testing::TestWithParam<Mode> {};

INSTANTIATE_TEST_SUITE_P(Modes, ForwardTest,
                         ::testing::Values(Mode::kSplice,
                                           Mode::kSpliceNoBuffers,
                                           Mode::kSpliceBuffersGone,
                                           Mode::kCopy),
                         ModeName);

// A POP3-like exchange with bulk both ways: every byte arrives, in order,
// and the counts in the stats are exact. QUIT, +OK, the backend closes:
// the end is "quit".
TEST_P(ForwardTest, BytesBothWaysExact) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "RETR 1\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 8), "RETR 1\r\n");
  // 3 MiB down (spliced in chunks after the first small read).
  const std::string mail = Pattern(3 << 20, 7) + "\r\n.\r\n";
  BackgroundWriter down(f.backend(), mail);
  EXPECT_TRUE(ReadExactly(f.client(), mail.size()) == mail);
  ASSERT_TRUE(down.Join());
  // 300 KiB up (a client may pipeline big batches of commands too).
  std::string up;
  while (up.size() < (300 << 10))
    up += "DELE " + std::to_string(up.size()) + "\r\n";
  BackgroundWriter upw(f.client(), up);
  EXPECT_TRUE(ReadExactly(f.backend(), up.size()) == up);
  ASSERT_TRUE(upw.Join());
  // A short exchange after the burst (QUIT right after one: below).
  ASSERT_TRUE(WriteAllBlocking(f.client(), "NOOP\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "NOOP\r\n");
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "+OK\r\n"));
  EXPECT_EQ(ReadExactly(f.client(), 5), "+OK\r\n");
  QuitAndClose(f);
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kQuit) << EndName(stats);
  EXPECT_EQ(stats->client_to_backend, 8 + up.size() + 6 + 6);
  EXPECT_EQ(stats->backend_to_client, mail.size() + 5 + 9);
}

TEST_P(ForwardTest, BytesBothWaysExactOverUnixSocketpairs) {
  HarnessOptions o = Defaults();
  o.unix_sockets = true;
  Forwarding f(GetParam(), o);
  f.Start();
  const std::string mail = Pattern(1 << 20, 3);
  ASSERT_TRUE(WriteAllBlocking(f.client(), "RETR 2\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 8), "RETR 2\r\n");
  BackgroundWriter down(f.backend(), mail);
  EXPECT_TRUE(ReadExactly(f.client(), mail.size()) == mail);
  ASSERT_TRUE(down.Join());
  f.client_fd().Reset();
  EXPECT_EQ(ReadToFin(f.backend()), "");
  f.backend_fd().Reset();
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kClientClosed) << EndName(stats);
  EXPECT_EQ(stats->backend_to_client, mail.size());
}

// The client's FIN becomes a half-close towards the backend, which can
// still answer: that answer reaches the client.
TEST_P(ForwardTest, ClientHalfCloseKeepsTheOtherDirection) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "LIST\r\n"));
  ASSERT_EQ(::shutdown(f.client(), SHUT_WR), 0);
  // The backend reads the line, then EOF: the FIN was passed on.
  EXPECT_EQ(ReadToFin(f.backend()), "LIST\r\n");
  const std::string answer = "+OK 1 message\r\n1 " + Pattern(100000, 5);
  ASSERT_TRUE(WriteAllBlocking(f.backend(), answer));
  EXPECT_TRUE(ReadExactly(f.client(), answer.size()) == answer);
  f.backend_fd().Reset();
  EXPECT_EQ(ReadToFin(f.client()), "");
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kClientClosed) << EndName(stats);
  EXPECT_EQ(stats->client_to_backend, 6u);
  EXPECT_EQ(stats->backend_to_client, answer.size());
}

// The backend's FIN becomes a half-close towards the client; during the
// drain time the client can still send (and the backend still reads).
TEST_P(ForwardTest, BackendHalfCloseKeepsTheOtherDirection) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "-ERR going away\r\n"));
  ASSERT_EQ(::shutdown(f.backend(), SHUT_WR), 0);
  EXPECT_EQ(ReadToFin(f.client()), "-ERR going away\r\n");
  ASSERT_TRUE(WriteAllBlocking(f.client(), "NOOP\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "NOOP\r\n");
  f.client_fd().Reset();
  EXPECT_EQ(ReadToFin(f.backend()), "");
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kBackendClosed) << EndName(stats);
  EXPECT_EQ(stats->client_to_backend, 6u);
}

// After the backend's end a client that neither reads nor closes is given
// client_drain_timeout, then both sides are closed.
TEST_P(ForwardTest, BackendEndThenClientGetsOnlyTheDrainTime) {
  HarnessOptions o = Defaults();
  o.forward.client_drain_timeout = absl::Milliseconds(100);
  Forwarding f(GetParam(), o);
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "+OK\r\n"));
  f.backend_fd().Reset();
  // The client does nothing: the forwarder ends on its own.
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kBackendClosed) << EndName(stats);
  int err = 0;
  std::string rest = ReadUntilEof(f.client(), 1 << 20, &err);
  EXPECT_NE(err, EAGAIN) << "the client's connection was not closed";
  EXPECT_TRUE(rest == "+OK\r\n" || rest.empty()) << rest;
}

TEST_P(ForwardTest, IdleTimeoutEndsBothSides) {
  HarnessOptions o = Defaults();
  o.forward.idle_timeout = absl::Milliseconds(100);
  Forwarding f(GetParam(), o);
  f.Start();
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kIdleTimeout) << EndName(stats);
  // Both apps see their connection end (FIN or reset), nothing injected.
  EXPECT_EQ(ReadToEnd(f.client()), "");
  EXPECT_EQ(ReadToEnd(f.backend()), "");
}

// Bytes before the idle period still arrive; the idle clock counts from
// the last byte, in either direction.
TEST_P(ForwardTest, IdleTimeoutAfterTraffic) {
  HarnessOptions o = Defaults();
  o.forward.idle_timeout = absl::Milliseconds(400);
  Forwarding f(GetParam(), o);
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "STAT\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "STAT\r\n");
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "+OK 0 0\r\n"));
  EXPECT_EQ(ReadExactly(f.client(), 9), "+OK 0 0\r\n");
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kIdleTimeout) << EndName(stats);
  EXPECT_EQ(stats->client_to_backend, 6u);
  EXPECT_EQ(stats->backend_to_client, 9u);
}

// Writes non-blocking until the socket stays unwritable for a while (the
// path behind it is full) or `cap` bytes went in. Returns what went in.
size_t FillUntilStalled(int fd, const std::string& data, size_t cap) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  while (sent < cap) {
    size_t n = std::min(data.size() - sent % data.size(), cap - sent);
    ssize_t w = ::send(fd, data.data() + sent % data.size(), n, MSG_NOSIGNAL);
    if (w > 0) {
      sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN) break;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 300) == 0) break;  // no room for 300 ms: stalled
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return sent;
}

// A client that stops reading: the forwarder stops reading the backend
// (backpressure) instead of buffering. What the backend could write is
// bounded by kernel socket and pipe buffers, nowhere near the 64 MiB it
// tried; once the client reads again, every byte arrives in order.
TEST_P(ForwardTest, StalledReaderStallsTheWriter) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  constexpr size_t kCap = 64 << 20;
  const std::string block = Pattern(1 << 20, 11);
  const size_t sent = FillUntilStalled(f.backend(), block, kCap);
  EXPECT_LT(sent, kCap) << "the forwarder buffered without bound";
  std::string got = ReadExactly(f.client(), sent);
  ASSERT_EQ(got.size(), sent);
  for (size_t off = 0; off < sent; off += block.size()) {
    size_t n = std::min(block.size(), sent - off);
    ASSERT_EQ(got.compare(off, n, block, 0, n), 0) << "at " << off;
  }
  f.client_fd().Reset();
  f.backend_fd().Reset();
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->backend_to_client, sent);
}

// With forward_socket_buffer set (and small buffers on the test's own
// sockets), what a stalled client makes the path hold is small.
TEST_P(ForwardTest, SocketBufferBoundsWhatAStalledClientHolds) {
  HarnessOptions o = Defaults();
  o.forward.socket_buffer = 64 * 1024;
  Forwarding f(GetParam(), o);
  int small = 64 * 1024;
  ::setsockopt(f.client(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ::setsockopt(f.backend(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  f.Start();
  const std::string block = Pattern(1 << 20, 13);
  const size_t sent = FillUntilStalled(f.backend(), block, 64 << 20);
  // Four socket buffers of 2 x 64 KiB (the kernel doubles the value) plus
  // one pipe or copy chunk of 64 KiB: well under 2 MiB.
  EXPECT_LT(sent, size_t{2} << 20);
  EXPECT_EQ(ReadExactly(f.client(), sent).size(), sent);
  f.client_fd().Reset();
  f.backend_fd().Reset();
  ASSERT_TRUE(f.Wait().has_value());
}

// QUIT, +OK, the backend closes; the client then resets instead of closing
// cleanly (many do): a normal end, "quit".
TEST_P(ForwardTest, ResetAfterQuitIsANormalEnd) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "QUIT\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "QUIT\r\n");
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "+OK\r\n"));
  f.backend_fd().Reset();
  EXPECT_EQ(ReadExactly(f.client(), 5), "+OK\r\n");
  CloseWithReset(f.client_fd());
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kQuit) << EndName(stats);
}

// The client closes cleanly first; the backend then resets: the first end
// (the client's) is what ended the session.
TEST_P(ForwardTest, BackendResetAfterClientsCleanEnd) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "NOOP\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 6), "NOOP\r\n");
  ASSERT_EQ(::shutdown(f.client(), SHUT_WR), 0);
  EXPECT_EQ(ReadToFin(f.backend()), "");
  CloseWithReset(f.backend_fd());
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kClientClosed) << EndName(stats);
}

// The backend closes cleanly first (it ended the session); the client then
// resets: still the backend's clean close.
TEST_P(ForwardTest, ClientResetAfterBackendsCleanEnd) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "-ERR autologout\r\n"));
  f.backend_fd().Reset();
  EXPECT_EQ(ReadToFin(f.client()), "-ERR autologout\r\n");
  CloseWithReset(f.client_fd());
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kBackendClosed) << EndName(stats);
}

// A client that resets with no clean end anywhere: client_reset, and the
// backend's connection is cut (it sees EOF or a reset, no QUIT).
TEST_P(ForwardTest, ClientResetCutsTheBackend) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "DELE 1\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 8), "DELE 1\r\n");
  CloseWithReset(f.client_fd());
  EXPECT_EQ(ReadToEnd(f.backend()), "");  // nothing injected
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kClientReset) << EndName(stats);
}

// A backend that dies (reset) mid-response: backend_reset, and the client
// sees its connection end after the bytes that did arrive.
TEST_P(ForwardTest, BackendResetMidResponse) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  ASSERT_TRUE(WriteAllBlocking(f.client(), "RETR 1\r\n"));
  EXPECT_EQ(ReadExactly(f.backend(), 8), "RETR 1\r\n");
  ASSERT_TRUE(WriteAllBlocking(f.backend(), "+OK 100000 octets\r\npart"));
  EXPECT_EQ(ReadExactly(f.client(), 23), "+OK 100000 octets\r\npart");
  CloseWithReset(f.backend_fd());
  int err = 0;
  EXPECT_EQ(ReadUntilEof(f.client(), 1 << 20, &err), "");
  EXPECT_NE(err, EAGAIN) << "the client's connection was not closed";
  f.client_fd().Reset();
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kBackendReset) << EndName(stats);
}

// A client that pipelined a big burst (many DELEs) and then sends QUIT in
// its own read: still "quit". (Regression: while the client's direction was
// spliced, the burst went by unseen and the QUIT after it was taken for the
// rest of an unknown line, so the clean end was logged "backend_closed".)
TEST_P(ForwardTest, QuitRightAfterABigClientBurstIsQuit) {
  Forwarding f(GetParam(), Defaults());
  f.Start();
  std::string up;
  while (up.size() < (64 << 10)) {
    up += "DELE " + std::to_string(up.size()) + "\r\n";
  }
  BackgroundWriter upw(f.client(), up);
  EXPECT_TRUE(ReadExactly(f.backend(), up.size()) == up);
  ASSERT_TRUE(upw.Join());
  QuitAndClose(f);
  std::optional<ForwardStats> stats = f.Wait();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kQuit) << EndName(stats);
}

// Lowers RLIMIT_NOFILE and takes every descriptor left, so pipe2() fails;
// restores both when destroyed.
class FdExhaustion {
 public:
  FdExhaustion() {
    // Duplicates of an fd of our own (stdin may be closed under CI).
    fillers_.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const int src = fillers_.back();
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int lowest = ::dup(src);
    ::close(lowest);
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(lowest + 8);
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::dup(src)) >= 0;) fillers_.push_back(fd);
  }
  ~FdExhaustion() {
    for (int fd : fillers_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

class ForwardSpliceTest : public ::testing::TestWithParam<Mode> {};

INSTANTIATE_TEST_SUITE_P(Modes, ForwardSpliceTest,
                         ::testing::Values(Mode::kSplice,
                                           Mode::kSpliceNoBuffers),
                         ModeName);

// No pipe can be had (no spare in the pool, no descriptor for a new one)
// when a burst needs one: the burst is copied instead, every byte arrives
// in order, and the session goes on to its normal end.
TEST_P(ForwardSpliceTest, PipeExhaustionCopiesTheBurstInstead) {
  HarnessOptions o = Defaults();
  o.max_idle_pipes = 0;
  Forwarding f(GetParam(), o);
  // More than one small read's worth is already waiting, so the first
  // read fills its buffer and the forwarder reaches for a pipe.
  const std::string burst = Pattern(48 * 1024, 17);
  ASSERT_TRUE(WriteAllBlocking(f.backend(), burst));
  std::optional<ForwardStats> stats;
  {
    std::unique_ptr<FdExhaustion> full;
    f.Start([&] { full = std::make_unique<FdExhaustion>(); });
    std::string got = ReadExactly(f.client(), burst.size());
    EXPECT_EQ(got.size(), burst.size());
    EXPECT_TRUE(got == burst) << "the copied burst differs";
    // The session is still forwarding both ways.
    QuitAndClose(f);
    stats = f.Wait();
  }
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->end, ForwardEnd::kQuit) << EndName(stats);
  EXPECT_EQ(stats->backend_to_client, burst.size() + 9);
}

}  // namespace
}  // namespace popgate
