#include "pop3/line_reader.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace popgate {
namespace {

// Feeds `input` in chunks of `chunk` bytes and collects what Next() yields:
// lines as-is, "<TOO LONG>" for each overlong line.
std::vector<std::string> Feed(const std::string& input, size_t chunk,
                              LineReader& reader) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    std::string_view line;
    LineReader::Result r = reader.Next(line);
    if (r == LineReader::Result::kLine) {
      out.emplace_back(line);
      continue;
    }
    if (r == LineReader::Result::kTooLong) {
      out.emplace_back("<TOO LONG>");
      continue;
    }
    if (pos >= input.size()) break;
    std::span<char> space = reader.WritableSpace();
    EXPECT_FALSE(space.empty());
    size_t n = std::min({chunk, space.size(), input.size() - pos});
    std::memcpy(space.data(), input.data() + pos, n);
    reader.Commit(n);
    pos += n;
  }
  return out;
}

TEST(LineReaderTest, CrlfAndBareLf) {
  LineReader r;
  EXPECT_EQ(Feed("USER a\r\nPASS b\nQUIT\r\n", 100, r),
            (std::vector<std::string>{"USER a", "PASS b", "QUIT"}));
}

TEST(LineReaderTest, SplitReadsOneByteAtATime) {
  LineReader r;
  EXPECT_EQ(Feed("CAPA\r\nUSER alice@example.com\r\n", 1, r),
            (std::vector<std::string>{"CAPA", "USER alice@example.com"}));
}

TEST(LineReaderTest, IncompleteLineWaits) {
  LineReader r;
  EXPECT_TRUE(Feed("USER ali", 100, r).empty());
  EXPECT_EQ(r.Pending(), "USER ali");
}

TEST(LineReaderTest, EmptyLine) {
  LineReader r;
  EXPECT_EQ(Feed("\r\n\n", 100, r), (std::vector<std::string>{"", ""}));
}

TEST(LineReaderTest, LongestAllowedLineAccepted) {
  // 253 octets + CRLF = 255, the RFC 2449 maximum.
  std::string cmd(253, 'a');
  LineReader r;
  EXPECT_EQ(Feed(cmd + "\r\n", 7, r), (std::vector<std::string>{cmd}));
  LineReader r2;
  EXPECT_EQ(Feed(cmd + "\n", 7, r2), (std::vector<std::string>{cmd}));
}

TEST(LineReaderTest, OverlongLineReportedOnceAndDiscarded) {
  std::string cmd(254, 'a');
  LineReader r;
  EXPECT_EQ(Feed(cmd + "\r\nNOOP\r\n", 7, r),
            (std::vector<std::string>{"<TOO LONG>", "NOOP"}));
}

TEST(LineReaderTest, HugeLineWithoutNewlineDoesNotGrowTheBuffer) {
  std::string junk(100000, 'x');
  LineReader r(1024);
  std::vector<std::string> got = Feed(junk + "\r\nQUIT\r\n", 4096, r);
  EXPECT_EQ(got, (std::vector<std::string>{"<TOO LONG>", "QUIT"}));
  EXPECT_EQ(r.capacity(), 1024u);
}

TEST(LineReaderTest, NulBytesStayInTheLine) {
  std::string in("US\0ER a\r\n", 9);
  LineReader r;
  std::vector<std::string> got = Feed(in, 100, r);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], std::string("US\0ER a", 7));
}

TEST(LineReaderTest, PendingKeepsPipelinedBytesAfterALine) {
  LineReader r;
  std::string in = "PASS x\r\nSTAT\r\nLIST\r\nRE";
  std::span<char> space = r.WritableSpace();
  std::memcpy(space.data(), in.data(), in.size());
  r.Commit(in.size());
  std::string_view line;
  ASSERT_EQ(r.Next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "PASS x");
  EXPECT_EQ(r.Pending(), "STAT\r\nLIST\r\nRE");
}

TEST(LineReaderTest, ManyPipelinedCommandsCompact) {
  std::string in;
  for (int i = 0; i < 1000; ++i) in += "CAPA\r\n";
  LineReader r(64);
  std::vector<std::string> got = Feed(in, 50, r);
  EXPECT_EQ(got.size(), 1000u);
}

TEST(LineReaderTest, ResponseLimitIsConfigurable) {
  LineReader r(1024, 512);
  std::string resp = "+OK " + std::string(400, 'g');
  EXPECT_EQ(Feed(resp + "\r\n", 64, r), (std::vector<std::string>{resp}));
}

TEST(LineReaderTest, EndlessLineReportedWhenADiscardBoundIsSet) {
  // A client trickling a line that never ends: with max_discard the reader
  // says so (kEndless) instead of discarding for ever.
  LineReader r(1024, LineReader::kMaxLine, 1000);
  std::string_view line;
  std::string junk(300, 'x');
  auto feed = [&r](std::string_view bytes) {
    std::span<char> space = r.WritableSpace();
    ASSERT_GE(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    r.Commit(bytes.size());
  };
  feed(junk);
  EXPECT_EQ(r.Next(line), LineReader::Result::kTooLong);
  feed(junk);
  EXPECT_EQ(r.Next(line), LineReader::Result::kNeedMore);
  feed(junk);
  EXPECT_EQ(r.Next(line), LineReader::Result::kNeedMore);  // 900 dropped
  feed(junk);
  EXPECT_EQ(r.Next(line), LineReader::Result::kEndless);  // 1200 > 1000
  feed(junk);
  EXPECT_EQ(r.Next(line), LineReader::Result::kNeedMore);  // reported once
  // Should the line end after all, the next one reads normally.
  feed("x\r\nNOOP\r\n");
  ASSERT_EQ(r.Next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "NOOP");
}

TEST(LineReaderTest, DiscardBoundIsPerLine) {
  LineReader r(1024, LineReader::kMaxLine, 1000);
  std::string in;
  for (int i = 0; i < 5; ++i) in += std::string(800, 'y') + "\r\n";
  in += "QUIT\r\n";
  EXPECT_EQ(Feed(in, 100, r),
            (std::vector<std::string>{"<TOO LONG>", "<TOO LONG>", "<TOO LONG>",
                                      "<TOO LONG>", "<TOO LONG>", "QUIT"}));
}

}  // namespace
}  // namespace popgate
