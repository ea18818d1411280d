#include "bench/loadgen/verifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "bench/loadgen/proc_rss.h"
#include "testbed/synth/message.h"

namespace popgate::loadgen {
namespace {

// Feeds `data` to a verifier in pieces of `chunk` octets.
bool Verify(const std::string& data, uint64_t size,
            const ExpectedMessage* expected, size_t chunk,
            std::string* error) {
  MessageVerifier v;
  v.Begin(size, expected);
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    v.OnBodyData(std::string_view(data).substr(pos, chunk));
  }
  bool ok = v.Finish();
  *error = v.error();
  return ok;
}

TEST(ExpectedContentTest, MatchesSynthMessage) {
  ExpectedContent cache;
  for (uint64_t size : {1u, 2u, 100u, 511u, 512u, 600u, 2000u, 100000u}) {
    ExpectedMessage m = cache.Get("user3@example.com", 2, size);
    EXPECT_EQ(m.size(), size);
    std::string joined = std::string(m.header) + std::string(m.body);
    EXPECT_TRUE(joined == synth::SynthMessage("user3@example.com", 2, size))
        << size;
  }
}

TEST(ExpectedContentTest, SharesBodiesAcrossUsers) {
  ExpectedContent cache;
  ExpectedMessage a = cache.Get("a@example.com", 1, 100000);
  uint64_t after_first = cache.cached_bytes();
  ExpectedMessage b = cache.Get("b@example.com", 1, 100000);
  EXPECT_EQ(a.body.data(), b.body.data());
  EXPECT_LT(cache.cached_bytes() - after_first, 1024u);
  EXPECT_NE(a.header, b.header);
}

TEST(MessageVerifierTest, AcceptsTheRightMessageInAnyChunking) {
  ExpectedContent cache;
  const uint64_t size = 5000;
  ExpectedMessage m = cache.Get("u@example.com", 1, size);
  std::string data = synth::SynthMessage("u@example.com", 1, size);
  std::string error;
  for (size_t chunk : {1u, 7u, 511u, 512u, 513u, 4096u, 100000u}) {
    EXPECT_TRUE(Verify(data, size, &m, chunk, &error)) << chunk << error;
  }
}

TEST(MessageVerifierTest, FindsOneWrongByte) {
  ExpectedContent cache;
  const uint64_t size = 5000;
  ExpectedMessage m = cache.Get("u@example.com", 1, size);
  std::string good = synth::SynthMessage("u@example.com", 1, size);
  for (size_t at : {size_t{0}, size_t{300}, m.header.size(), size_t{4999}}) {
    std::string bad = good;
    bad[at] ^= 1;
    std::string error;
    EXPECT_FALSE(Verify(bad, size, &m, 1000, &error)) << at;
    EXPECT_NE(error.find("octet " + std::to_string(at)), std::string::npos)
        << error;
  }
}

TEST(MessageVerifierTest, AnotherUsersMessageIsWrong) {
  ExpectedContent cache;
  ExpectedMessage m = cache.Get("u1@example.com", 1, 3000);
  std::string other = synth::SynthMessage("u2@example.com", 1, 3000);
  std::string error;
  EXPECT_FALSE(Verify(other, 3000, &m, 3000, &error));
}

TEST(MessageVerifierTest, WrongSizes) {
  ExpectedContent cache;
  ExpectedMessage m = cache.Get("u@example.com", 1, 3000);
  std::string good = synth::SynthMessage("u@example.com", 1, 3000);
  std::string error;
  EXPECT_FALSE(Verify(good.substr(0, 2999), 3000, &m, 100, &error));
  EXPECT_NE(error.find("2999"), std::string::npos) << error;
  EXPECT_FALSE(Verify(good + "x", 3000, &m, 100, &error));
}

TEST(MessageVerifierTest, NoVerifyStillChecksTheSize) {
  std::string error;
  EXPECT_TRUE(Verify(std::string(100, 'x'), 100, nullptr, 30, &error));
  EXPECT_FALSE(Verify(std::string(99, 'x'), 100, nullptr, 30, &error));
  EXPECT_FALSE(Verify(std::string(101, 'x'), 100, nullptr, 30, &error));
}

TEST(ProcRssTest, ParsesVmRss) {
  uint64_t bytes = 0;
  EXPECT_TRUE(ParseVmRss("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t    1234 kB\n",
                         &bytes));
  EXPECT_EQ(bytes, 1234u * 1024);
  EXPECT_FALSE(ParseVmRss("Name:\tx\n", &bytes));
  EXPECT_FALSE(ParseVmRss("VmRSS:\t12 MB\n", &bytes));
}

TEST(ProcRssTest, ReadsOwnProcess) {
  uint64_t bytes = 0;
  std::string error;
  EXPECT_TRUE(ReadRssBytes({getpid()}, &bytes, &error)) << error;
  EXPECT_GT(bytes, 0u);
  EXPECT_FALSE(ReadRssBytes({0x7ffffffe}, &bytes, &error));
}

}  // namespace
}  // namespace popgate::loadgen
