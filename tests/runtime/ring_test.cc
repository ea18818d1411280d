// The ring and its awaitables: deadlines, cancellation, a submission queue
// smaller than the number of operations in flight.
#include "runtime/ring.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/task.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::RunTask;
using testing::RunUntil;
using testing::UnixPair;

class RingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(ring_.Init(64).ok()); }
  Ring ring_;
};

Task<int> RecvOnce(Ring& ring, int fd, std::string& out,
                   std::optional<absl::Duration> timeout) {
  char buf[256];
  int n = co_await Recv(ring, fd, buf, sizeof(buf), timeout);
  if (n > 0) out.assign(buf, static_cast<size_t>(n));
  co_return n;
}

TEST_F(RingTest, DeadlineCancelsAnOpThatDoesNotComplete) {
  auto [a, b] = UnixPair();
  std::string got;
  const absl::Time start = absl::Now();
  std::optional<int> rc =
      RunTask(ring_, RecvOnce(ring_, a.get(), got, absl::Milliseconds(20)));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, -ECANCELED);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(ring_.deadlines(), 0u);
  // The socket still works: the cancelled receive took nothing.
  ASSERT_EQ(::send(b.get(), "after", 5, 0), 5);
  rc = RunTask(ring_, RecvOnce(ring_, a.get(), got, absl::Seconds(30)));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 5);
  EXPECT_EQ(got, "after");
}

TEST_F(RingTest, OpThatCompletesFirstIsNotCancelled) {
  auto [a, b] = UnixPair();
  ASSERT_EQ(::send(b.get(), "hello", 5, 0), 5);
  std::string got;
  std::optional<int> rc =
      RunTask(ring_, RecvOnce(ring_, a.get(), got, absl::Seconds(30)));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 5);
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(ring_.deadlines(), 0u);
}

Task<void> SendLater(Ring& ring, int fd, std::string data) {
  co_await Sleep(ring, absl::Milliseconds(20));
  co_await SendNow(ring, fd, data.data(), data.size());
}

Detached Spawn(Task<void> t, bool& finished) {
  co_await t;
  finished = true;
}

TEST_F(RingTest, TimedOpCompletesWhenDataArrivesBeforeTheTimeout) {
  auto [a, b] = UnixPair();
  bool finished = false;
  Spawn(SendLater(ring_, b.get(), "late"), finished);
  std::string got;
  std::optional<int> rc =
      RunTask(ring_, RecvOnce(ring_, a.get(), got, absl::Seconds(30)));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 4);
  EXPECT_EQ(got, "late");
  EXPECT_TRUE(RunUntil(ring_, finished));
}

// Ops that complete before their deadline take it out of the heap: many in
// a row, none cancelled later, and the heap ends empty.
TEST_F(RingTest, DeadlinesOfCompletedOpsLeaveTheHeap) {
  auto [a, b] = UnixPair();
  auto loop = [](Ring& ring, int rd, int wr) -> Task<int> {
    int ok = 0;
    for (int i = 0; i < 200; ++i) {
      char c = static_cast<char>('a' + i % 26);
      if (co_await SendNow(ring, wr, &c, 1) != 1) break;
      char got = 0;
      int n = co_await Recv(ring, rd, &got, 1, absl::Seconds(30));
      if (n == 1 && got == c) ++ok;
    }
    co_await Sleep(ring, absl::Milliseconds(10));
    co_return ok;
  };
  std::optional<int> ok = RunTask(ring_, loop(ring_, a.get(), b.get()));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 200);
  EXPECT_EQ(ring_.deadlines(), 0u);
}

// `n` timed receives in flight at once, each on a socket pair of its own
// and with its own timeout; `send_to(i)` answers the i-th.
struct TimedRecvs {
  TimedRecvs(Ring& ring, int n, absl::Duration (*timeout_of)(int))
      : got(n), rc(n), done(new bool[n]()), timeout(n) {
    for (int i = 0; i < n; ++i) pairs.push_back(UnixPair());
    for (int i = 0; i < n; ++i) {
      timeout[i] = timeout_of(i);
      testing::internal::DriveTask(
          RecvOnce(ring, pairs[i].first.get(), got[i], timeout[i]), rc[i],
          done[i]);
    }
  }
  bool SendTo(int i) { return ::send(pairs[i].second.get(), "x", 1, 0) == 1; }
  bool AllDone() const {
    return std::all_of(done.get(), done.get() + got.size(),
                       [](bool d) { return d; });
  }

  std::vector<std::pair<UniqueFd, UniqueFd>> pairs;
  std::vector<std::string> got;
  std::vector<std::optional<int>> rc;
  std::unique_ptr<bool[]> done;
  std::vector<absl::Duration> timeout;
};

// Many timed receives at once, with deadlines in no particular order, some
// of them answered in between: each answered one gets its bytes, each other
// one is cancelled at its own deadline (not before, not much after), and
// the heap ends empty. Exercises the heap's removal from the middle.
TEST_F(RingTest, ManyDeadlinesExpireEachAtItsOwnTime) {
  constexpr int kOps = 60;
  const absl::Time start = absl::Now();
  // 10..300 ms, scattered.
  TimedRecvs ops(ring_, kOps,
                 [](int i) { return absl::Milliseconds(10 + (i * 37) % 291); });
  std::vector<absl::Duration> took(kOps);
  EXPECT_EQ(ring_.deadlines(), static_cast<size_t>(kOps));
  EXPECT_TRUE(ring_.DeadlineHeapValidForTests());
  // Every third one gets data right away (before any deadline: the
  // shortest is 10 ms); the others time out.
  for (int i = 0; i < kOps; i += 3) ASSERT_TRUE(ops.SendTo(i));
  const absl::Time limit = start + absl::Seconds(10);
  while (absl::Now() < limit) {
    bool all = true;
    for (int i = 0; i < kOps; ++i) {
      if (ops.done[i] && took[i] == absl::ZeroDuration()) {
        took[i] = absl::Now() - start;
      }
      all &= ops.done[i];
    }
    if (all) break;
    ring_.RunOnce(absl::Milliseconds(50));
    ASSERT_TRUE(ring_.DeadlineHeapValidForTests());
  }
  for (int i = 0; i < kOps; ++i) {
    ASSERT_TRUE(ops.done[i]) << i;
    if (i % 3 == 0) {
      EXPECT_EQ(*ops.rc[i], 1) << i;
      EXPECT_EQ(ops.got[i], "x") << i;
    } else {
      EXPECT_EQ(*ops.rc[i], -ECANCELED) << i;
      EXPECT_GE(took[i], ops.timeout[i]) << i;
      EXPECT_LT(took[i], ops.timeout[i] + absl::Seconds(2)) << i;
    }
  }
  EXPECT_EQ(ring_.deadlines(), 0u);
}

// Hundreds of deadlines, so that the heap has several levels of four,
// taken out from anywhere (answered ops) and from the top (expired ones)
// in a scrambled order: the heap stays ordered and every entry's index
// right after each turn, and each op ends the way it should.
TEST_F(RingTest, DeadlineHeapStaysOrderedUnderScatteredRemovals) {
  constexpr int kOps = 300;
  // 200..499 ms, scrambled (97 is prime to 300); the answers below go out
  // well before the first.
  TimedRecvs ops(ring_, kOps, [](int i) {
    return absl::Milliseconds(200 + (i * 97) % 300);
  });
  ASSERT_EQ(ring_.deadlines(), static_cast<size_t>(kOps));
  ASSERT_TRUE(ring_.DeadlineHeapValidForTests());
  // Answer the ops with i % 5 < 2, a few per turn, in a scrambled order.
  std::vector<int> answer;
  for (int k = 0; k < kOps; ++k) {
    const int i = (k * 211) % kOps;
    if (i % 5 < 2) answer.push_back(i);
  }
  for (size_t k = 0; k < answer.size(); ++k) {
    ASSERT_TRUE(ops.SendTo(answer[k]));
    if (k % 7 == 6) {
      ring_.RunOnce(absl::ZeroDuration());
      ASSERT_TRUE(ring_.DeadlineHeapValidForTests());
    }
  }
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  while (absl::Now() < limit && ring_.deadlines() > 0) {
    ring_.RunOnce(absl::Milliseconds(20));
    ASSERT_TRUE(ring_.DeadlineHeapValidForTests());
  }
  for (int i = 0; i < 200 && !ops.AllDone(); ++i) {
    ring_.RunOnce(absl::Milliseconds(10));
  }
  for (int i = 0; i < kOps; ++i) {
    ASSERT_TRUE(ops.done[i]) << i;
    if (i % 5 < 2) {
      EXPECT_EQ(*ops.rc[i], 1) << i;
    } else {
      EXPECT_EQ(*ops.rc[i], -ECANCELED) << i;
    }
  }
  EXPECT_EQ(ring_.deadlines(), 0u);
}

TEST_F(RingTest, PollWithTimeoutGetsCanceled) {
  auto [a, b] = UnixPair();
  auto poll = [](Ring& ring, int fd) -> Task<int> {
    co_return co_await PollFd(ring, fd, POLLIN, absl::Milliseconds(10));
  };
  std::optional<int> rc = RunTask(ring_, poll(ring_, a.get()));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, -ECANCELED);
}

TEST_F(RingTest, SleepCompletes) {
  auto sleep = [](Ring& ring) -> Task<int> {
    co_await Sleep(ring, absl::Milliseconds(1));
    co_return 1;
  };
  EXPECT_EQ(RunTask(ring_, sleep(ring_)), 1);
}

// Cancellation of an untimed op: IORING_OP_ASYNC_CANCEL by fd completes the
// op with -ECANCELED and resumes its coroutine.
TEST_F(RingTest, CancelByFdResumesThePendingOp) {
  auto [a, b] = UnixPair();
  std::optional<int> recv_rc;
  bool recv_done = false;
  std::string got;
  testing::internal::DriveTask(RecvOnce(ring_, a.get(), got, std::nullopt),
                               recv_rc, recv_done);
  ring_.RunOnce(absl::ZeroDuration());  // the recv reaches the kernel
  EXPECT_FALSE(recv_done);
  const int fd = a.get();
  auto cancel = [](Ring& ring, int fd) -> Task<int> {
    co_return co_await MakeOp(
        ring, [fd](io_uring_sqe* s) { io_uring_prep_cancel_fd(s, fd, 0); });
  };
  std::optional<int> cancel_rc = RunTask(ring_, cancel(ring_, fd));
  ASSERT_TRUE(cancel_rc.has_value());
  EXPECT_EQ(*cancel_rc, 0);
  ASSERT_TRUE(RunUntil(ring_, recv_done));
  EXPECT_EQ(*recv_rc, -ECANCELED);
}

// How the worker cuts sessions at the end of the shutdown grace: shutting
// the socket down completes every pending op on it.
TEST_F(RingTest, ShutdownCompletesAPendingRecv) {
  auto [a, b] = UnixPair();
  std::optional<int> rc;
  bool done = false;
  std::string got;
  testing::internal::DriveTask(RecvOnce(ring_, a.get(), got, std::nullopt), rc,
                               done);
  ring_.RunOnce(absl::ZeroDuration());
  EXPECT_FALSE(done);
  ::shutdown(a.get(), SHUT_RDWR);
  ASSERT_TRUE(RunUntil(ring_, done));
  EXPECT_EQ(*rc, 0);
}

// More operations in flight than the submission queue has entries: GetSqe
// submits to make room, and CQEs beyond the completion queue's size are not
// lost.
TEST(RingSmallQueueTest, MoreOpsThanSubmissionEntries) {
  Ring ring;
  ASSERT_TRUE(ring.Init(4).ok());  // 4 SQEs, 16 CQEs
  constexpr int kOps = 64;
  std::vector<std::pair<UniqueFd, UniqueFd>> pairs;
  for (int i = 0; i < kOps; ++i) pairs.push_back(UnixPair());
  std::vector<std::string> got(kOps);
  std::vector<std::optional<int>> rc(kOps);
  std::unique_ptr<bool[]> done(new bool[kOps]());
  // Alternate untimed and timed receives (a deadline in the heap).
  for (int i = 0; i < kOps; ++i) {
    std::optional<absl::Duration> t;
    if (i % 2 == 1) t = absl::Seconds(30);
    testing::internal::DriveTask(
        RecvOnce(ring, pairs[i].first.get(), got[i], t), rc[i], done[i]);
  }
  for (int i = 0; i < kOps; ++i) {
    std::string msg = "op" + std::to_string(i);
    ASSERT_EQ(::send(pairs[i].second.get(), msg.data(), msg.size(), 0),
              static_cast<ssize_t>(msg.size()));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto all_done = [&] {
    for (int i = 0; i < kOps; ++i) {
      if (!done[i]) return false;
    }
    return true;
  };
  while (!all_done() && absl::Now() < deadline) {
    ring.RunOnce(absl::Milliseconds(20));
  }
  ASSERT_TRUE(all_done());
  for (int i = 0; i < kOps; ++i) {
    EXPECT_EQ(got[i], "op" + std::to_string(i)) << i;
    EXPECT_GT(*rc[i], 0) << i;
  }
}

// Yield gives the ring a turn: a receive whose data is already there
// completes while a coroutine that yields in a loop is still running, and
// the yielding one ends too (each Yield completes).
Task<int> YieldUntil(Ring& ring, const bool& other_done) {
  int yields = 0;
  while (!other_done && yields < 1000) {
    co_await Yield(ring);
    ++yields;
  }
  co_return yields;
}

TEST_F(RingTest, YieldLetsOtherCompletionsRun) {
  auto [a, b] = UnixPair();
  ASSERT_EQ(::send(b.get(), "ready", 5, 0), 5);
  std::string got;
  std::optional<int> recv_rc;
  bool recv_done = false;
  std::optional<int> yields;
  bool yield_done = false;
  testing::internal::DriveTask(YieldUntil(ring_, recv_done), yields,
                               yield_done);
  testing::internal::DriveTask(RecvOnce(ring_, a.get(), got, std::nullopt),
                               recv_rc, recv_done);
  ASSERT_TRUE(RunUntil(ring_, yield_done));
  EXPECT_TRUE(recv_done);
  EXPECT_EQ(got, "ready");
  EXPECT_LT(*yields, 1000);
}

}  // namespace
}  // namespace popgate
