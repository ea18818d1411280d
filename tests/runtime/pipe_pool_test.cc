// The pipe pool: pipes are made on demand, reused when given back empty,
// kept only up to the cap, and Acquire fails cleanly at the fd limit.
#include "runtime/pipe_pool.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"

namespace popgate {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(PipePoolTest, AcquireMakesANonBlockingPipeOfTheRequestedSize) {
  PipePool pool(256 * 1024, 4);
  Pipe p;
  ASSERT_TRUE(pool.Acquire(p));
  ASSERT_TRUE(p.r.valid());
  ASSERT_TRUE(p.w.valid());
  EXPECT_TRUE(::fcntl(p.r.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(p.w.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(p.r.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_GE(::fcntl(p.w.get(), F_GETPIPE_SZ), 256 * 1024);
  ASSERT_EQ(::write(p.w.get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p.r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(::read(p.r.get(), &c, 1), -1);  // empty: EAGAIN, not a block
  EXPECT_EQ(errno, EAGAIN);
}

// A size the kernel will not grant is best effort, not a failure.
TEST(PipePoolTest, UnattainableSizeStillGivesAPipe) {
  PipePool pool(size_t{1} << 40, 1);
  Pipe p;
  ASSERT_TRUE(pool.Acquire(p));
  EXPECT_TRUE(p.r.valid());
}

TEST(PipePoolTest, EmptyPipeGivenBackIsReused) {
  PipePool pool(64 * 1024, 4);
  Pipe p;
  ASSERT_TRUE(pool.Acquire(p));
  const int r = p.r.get();
  const int w = p.w.get();
  pool.Release(std::move(p), /*empty=*/true);
  EXPECT_EQ(pool.idle(), 1u);
  EXPECT_TRUE(IsOpen(r));
  Pipe again;
  ASSERT_TRUE(pool.Acquire(again));
  EXPECT_EQ(again.r.get(), r);
  EXPECT_EQ(again.w.get(), w);
  EXPECT_EQ(pool.idle(), 0u);
}

// A pipe that still holds bytes would carry them into another session: it
// is closed, never pooled.
TEST(PipePoolTest, NonEmptyPipeIsClosed) {
  PipePool pool(64 * 1024, 4);
  Pipe p;
  ASSERT_TRUE(pool.Acquire(p));
  ASSERT_EQ(::write(p.w.get(), "secret", 6), 6);
  const int r = p.r.get();
  pool.Release(std::move(p), /*empty=*/false);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_FALSE(IsOpen(r));
  Pipe fresh;
  ASSERT_TRUE(pool.Acquire(fresh));
  char buf[8];
  EXPECT_EQ(::read(fresh.r.get(), buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST(PipePoolTest, IdlePipesAreCapped) {
  PipePool pool(64 * 1024, 2);
  std::vector<Pipe> pipes(5);
  for (Pipe& p : pipes) ASSERT_TRUE(pool.Acquire(p));
  std::vector<int> fds;
  for (Pipe& p : pipes) fds.push_back(p.r.get());
  for (Pipe& p : pipes) pool.Release(std::move(p), /*empty=*/true);
  EXPECT_EQ(pool.idle(), 2u);
  int open = 0;
  for (int fd : fds) open += IsOpen(fd) ? 1 : 0;
  EXPECT_EQ(open, 2);
}

TEST(PipePoolTest, ZeroSpareKeepsNothing) {
  PipePool pool(64 * 1024, 0);
  Pipe p;
  ASSERT_TRUE(pool.Acquire(p));
  const int r = p.r.get();
  pool.Release(std::move(p), /*empty=*/true);
  EXPECT_EQ(pool.idle(), 0u);
  EXPECT_FALSE(IsOpen(r));
}

// Lowers RLIMIT_NOFILE and fills every descriptor slot left, so the next
// pipe2() fails with EMFILE; restores both on destruction.
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
    low.rlim_cur = static_cast<rlim_t>(lowest + 16);
    ::setrlimit(RLIMIT_NOFILE, &low);
    while (true) {
      int fd = ::dup(src);
      if (fd < 0) break;
      fillers_.push_back(fd);
    }
  }
  ~FdExhaustion() {
    for (int fd : fillers_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  // Frees one descriptor (a pipe needs two).
  void FreeOne() {
    ::close(fillers_.back());
    fillers_.pop_back();
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

TEST(PipePoolTest, AcquireFailsAtTheFdLimitAndRecovers) {
  PipePool pool(64 * 1024, 2);
  Pipe pooled;
  ASSERT_TRUE(pool.Acquire(pooled));
  pool.Release(std::move(pooled), /*empty=*/true);
  {
    FdExhaustion full;
    // The pooled pipe needs no new descriptor.
    Pipe p;
    ASSERT_TRUE(pool.Acquire(p));
    Pipe none;
    EXPECT_FALSE(pool.Acquire(none));
    EXPECT_FALSE(none.r.valid());
    EXPECT_FALSE(none.w.valid());
    full.FreeOne();
    EXPECT_FALSE(pool.Acquire(none));  // one slot is not enough for a pipe
    EXPECT_FALSE(none.r.valid());
    full.FreeOne();
    EXPECT_TRUE(pool.Acquire(none));
  }
  Pipe after;
  EXPECT_TRUE(pool.Acquire(after));
}

}  // namespace
}  // namespace popgate
