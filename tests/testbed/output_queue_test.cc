#include "testbed/synth/output_queue.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

TEST(OutputQueueTest, CoalescesSmallAppends) {
  OutputQueue q;
  EXPECT_TRUE(q.empty());
  q.Append("+OK\r\n");
  q.Append("+OK 1 2\r\n");
  EXPECT_EQ(q.chunk_count(), 1u);
  EXPECT_EQ(q.pending_bytes(), 14u);
  EXPECT_EQ(q.owned_bytes(), 14u);
  EXPECT_EQ(q.TakeAll(), "+OK\r\n+OK 1 2\r\n");
  EXPECT_TRUE(q.empty());
}

TEST(OutputQueueTest, LargeSharedRangesAreReferencedNotCopied) {
  auto body = std::make_shared<const std::string>(100000, 'x');
  OutputQueue q;
  q.Append("head");
  q.AppendShared(body, 10, 50000);
  q.Append(".\r\n");
  EXPECT_EQ(q.chunk_count(), 3u);
  EXPECT_EQ(q.owned_bytes(), 7u);
  EXPECT_EQ(q.pending_bytes(), 50007u);
  iovec iov[8];
  ASSERT_EQ(q.Gather(iov, 8), 3);
  EXPECT_EQ(iov[1].iov_base, body->data() + 10);
  EXPECT_EQ(iov[1].iov_len, 50000u);
  EXPECT_EQ(body.use_count(), 2);
  q.Consume(4 + 50000 + 1);
  EXPECT_EQ(body.use_count(), 1) << "released once sent";
  EXPECT_EQ(q.TakeAll(), "\r\n");
}

TEST(OutputQueueTest, SmallSharedRangesAreCopied) {
  auto body = std::make_shared<const std::string>("abcdef");
  OutputQueue q;
  q.Append("1");
  q.AppendShared(body, 1, 3);
  EXPECT_EQ(q.chunk_count(), 1u);
  EXPECT_EQ(body.use_count(), 1);
  EXPECT_EQ(q.TakeAll(), "1bcd");
}

TEST(OutputQueueTest, PartialConsume) {
  auto body = std::make_shared<const std::string>(10000, 'b');
  OutputQueue q;
  q.Append("aaaa");
  q.AppendShared(body, 0, body->size());
  q.Consume(2);
  iovec iov[1];
  ASSERT_EQ(q.Gather(iov, 1), 1);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), iov[0].iov_len),
            "aa");
  q.Consume(5000);
  EXPECT_EQ(q.pending_bytes(), 5002u);
  EXPECT_EQ(q.owned_bytes(), 0u);
  EXPECT_EQ(q.TakeAll(), std::string(5002, 'b'));
}

}  // namespace
}  // namespace popgate::synth
