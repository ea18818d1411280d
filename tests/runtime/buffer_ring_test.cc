// Provided receive buffers: the kernel picks a buffer when data arrives;
// with all of them lent out a receive fails with -ENOBUFS instead of
// waiting, and a recycled buffer is picked again.
#include "runtime/buffer_ring.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/runtime/test_util.h"

namespace popgate {
namespace {

using testing::RunTask;
using testing::UnixPair;

class BufferRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ring_.Init(32).ok());
    ASSERT_TRUE(buffers_.Init(ring_.raw(), 7, 2).ok());
  }
  void TearDown() override { buffers_.Reset(); }
  Ring ring_;
  BufferRing buffers_;
};

TEST_F(BufferRingTest, ReceiveFillsAProvidedBuffer) {
  auto [a, b] = UnixPair();
  ASSERT_EQ(::send(b.get(), "abc", 3, 0), 3);
  auto recv = [](Ring& ring, BufferRing& br, int fd) -> Task<ProvidedRecv> {
    co_return co_await RecvProvided(ring, br, fd, absl::Seconds(30));
  };
  std::optional<ProvidedRecv> r =
      RunTask(ring_, recv(ring_, buffers_, a.get()));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->result, 3);
  ASSERT_GE(r->buffer, 0);
  ASSERT_LT(r->buffer, 2);
  EXPECT_EQ(std::string(buffers_.Get(static_cast<uint16_t>(r->buffer)), 3),
            "abc");
  buffers_.Recycle(static_cast<uint16_t>(r->buffer));
  // Its deadline left the ring's heap with the completion.
  EXPECT_EQ(ring_.deadlines(), 0u);
}

TEST_F(BufferRingTest, TimedReceiveIsCancelledAtItsDeadline) {
  auto [a, b] = UnixPair();
  auto recv = [](Ring& ring, BufferRing& br, int fd) -> Task<ProvidedRecv> {
    co_return co_await RecvProvided(ring, br, fd, absl::Milliseconds(20));
  };
  std::optional<ProvidedRecv> r =
      RunTask(ring_, recv(ring_, buffers_, a.get()));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result, -ECANCELED);
  EXPECT_EQ(r->buffer, -1);
  EXPECT_EQ(ring_.deadlines(), 0u);
}

// Eight receives with data waiting and two buffers: two succeed (with
// distinct buffers), the others get -ENOBUFS and no buffer; after the two
// are recycled the failed ones succeed on retry.
TEST_F(BufferRingTest, ExhaustionGivesEnobufsAndRecyclingRecovers) {
  constexpr int kSockets = 8;
  std::vector<std::pair<UniqueFd, UniqueFd>> pairs;
  for (int i = 0; i < kSockets; ++i) {
    pairs.push_back(UnixPair());
    std::string msg = "m" + std::to_string(i);
    ASSERT_EQ(::send(pairs[i].second.get(), msg.data(), msg.size(), 0),
              static_cast<ssize_t>(msg.size()));
  }
  auto all = [](Ring& ring, BufferRing& br,
                std::vector<int> fds) -> Task<std::vector<ProvidedRecv>> {
    std::vector<ProvidedRecv> out;
    for (int fd : fds) out.push_back(co_await RecvProvided(ring, br, fd));
    co_return out;
  };
  std::vector<int> fds;
  for (auto& p : pairs) fds.push_back(p.first.get());
  std::optional<std::vector<ProvidedRecv>> first =
      RunTask(ring_, all(ring_, buffers_, fds));
  ASSERT_TRUE(first.has_value());
  std::set<int> ids;
  std::vector<int> retry;
  for (int i = 0; i < kSockets; ++i) {
    const ProvidedRecv& r = (*first)[i];
    if (r.result > 0) {
      ASSERT_GE(r.buffer, 0);
      EXPECT_TRUE(ids.insert(r.buffer).second) << "buffer lent twice";
      EXPECT_EQ(std::string(buffers_.Get(static_cast<uint16_t>(r.buffer)),
                            static_cast<size_t>(r.result)),
                "m" + std::to_string(i));
    } else {
      EXPECT_EQ(r.result, -ENOBUFS) << i;
      EXPECT_EQ(r.buffer, -1);
      retry.push_back(i);
    }
  }
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(retry.size(), static_cast<size_t>(kSockets - 2));
  // Give the buffers back one at a time; each retry gets one.
  for (int i : retry) {
    for (int id : ids) buffers_.Recycle(static_cast<uint16_t>(id));
    ids.clear();
    std::optional<std::vector<ProvidedRecv>> again =
        RunTask(ring_, all(ring_, buffers_, {pairs[i].first.get()}));
    ASSERT_TRUE(again.has_value());
    const ProvidedRecv& r = (*again)[0];
    ASSERT_GT(r.result, 0) << i;
    EXPECT_EQ(std::string(buffers_.Get(static_cast<uint16_t>(r.buffer)),
                          static_cast<size_t>(r.result)),
              "m" + std::to_string(i));
    ids.insert(r.buffer);
  }
  for (int id : ids) buffers_.Recycle(static_cast<uint16_t>(id));
}

// A receive waiting with no data holds no buffer: two idle receivers do not
// stop a third socket with data from getting one.
TEST_F(BufferRingTest, WaitingReceiveHoldsNoBuffer) {
  auto [idle1, idle1_peer] = UnixPair();
  auto [idle2, idle2_peer] = UnixPair();
  auto [busy, busy_peer] = UnixPair();
  std::optional<ProvidedRecv> w1, w2;
  bool d1 = false, d2 = false;
  auto recv = [](Ring& ring, BufferRing& br, int fd) -> Task<ProvidedRecv> {
    co_return co_await RecvProvided(ring, br, fd);
  };
  testing::internal::DriveTask(recv(ring_, buffers_, idle1.get()), w1, d1);
  testing::internal::DriveTask(recv(ring_, buffers_, idle2.get()), w2, d2);
  ring_.RunOnce(absl::ZeroDuration());
  ASSERT_EQ(::send(busy_peer.get(), "x", 1, 0), 1);
  std::optional<ProvidedRecv> r =
      RunTask(ring_, recv(ring_, buffers_, busy.get()));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result, 1);
  ASSERT_GE(r->buffer, 0);
  buffers_.Recycle(static_cast<uint16_t>(r->buffer));
  // Unwind the idle receivers.
  idle1_peer.Reset();
  idle2_peer.Reset();
  ASSERT_TRUE(testing::RunUntil(ring_, d1));
  ASSERT_TRUE(testing::RunUntil(ring_, d2));
  EXPECT_EQ(w1->result, 0);
  EXPECT_EQ(w2->result, 0);
}

TEST(BufferRingInitTest, ResetUnregistersSoTheGroupCanBeRegisteredAgain) {
  Ring ring;
  ASSERT_TRUE(ring.Init(8).ok());
  BufferRing a;
  ASSERT_TRUE(a.Init(ring.raw(), 3, 4).ok());
  EXPECT_TRUE(a.ready());
  BufferRing dup;
  EXPECT_FALSE(dup.Init(ring.raw(), 3, 4).ok());  // group taken
  a.Reset();
  EXPECT_FALSE(a.ready());
  BufferRing b;
  EXPECT_TRUE(b.Init(ring.raw(), 3, 4).ok());
  b.Reset();
}

}  // namespace
}  // namespace popgate
