#include "bench/loadgen/pop3_client.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "testbed/synth/message.h"

namespace popgate::loadgen {
namespace {

struct Parsed {
  ResponseParser::Result result = ResponseParser::Result::kNeedMore;
  bool ok = false;
  std::string status;
  std::string body;
  std::string rest;  // bytes after the response, left unconsumed
};

// Feeds `wire` in the given chunk sizes (cycled), as recv() would.
Parsed FeedChunks(ResponseParser::Kind kind, std::string_view wire,
                  const std::vector<size_t>& chunks) {
  ResponseParser parser;
  StringSink sink;
  parser.Begin(kind, &sink);
  Parsed out;
  size_t i = 0;
  size_t pos = 0;
  while (pos < wire.size()) {
    size_t len = std::min(chunks[i++ % chunks.size()], wire.size() - pos);
    std::string_view piece = wire.substr(pos, len);
    size_t consumed = 0;
    out.result = parser.Feed(piece, &consumed);
    pos += consumed;
    if (out.result != ResponseParser::Result::kNeedMore) {
      EXPECT_EQ(out.result == ResponseParser::Result::kError,
                !parser.error().empty());
      break;
    }
    EXPECT_EQ(consumed, len) << "NeedMore must consume everything";
  }
  out.ok = parser.ok();
  out.status = parser.status_line();
  out.body = sink.text;
  out.rest = std::string(wire.substr(pos));
  if (out.result == ResponseParser::Result::kDone) {
    EXPECT_EQ(parser.body_bytes(), out.body.size());
  }
  return out;
}

Parsed FeedAll(ResponseParser::Kind kind, std::string_view wire) {
  return FeedChunks(kind, wire, {wire.size() + 1});
}

constexpr auto kSingle = ResponseParser::Kind::kSingleLine;
constexpr auto kMulti = ResponseParser::Kind::kMultiLine;

TEST(ResponseParserTest, SingleLineOk) {
  Parsed p = FeedAll(kSingle, "+OK 2 320\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kDone);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.status, "+OK 2 320");
  EXPECT_EQ(p.rest, "");
}

TEST(ResponseParserTest, SingleLineErr) {
  Parsed p = FeedAll(kSingle, "-ERR [AUTH] invalid password\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kDone);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.status, "-ERR [AUTH] invalid password");
}

TEST(ResponseParserTest, StatusLineSplitAtEveryByte) {
  std::string wire = "+OK pop3-synth ready.\r\n";
  for (size_t chunk = 1; chunk <= wire.size(); ++chunk) {
    Parsed p = FeedChunks(kSingle, wire, {chunk});
    EXPECT_EQ(p.result, ResponseParser::Result::kDone) << chunk;
    EXPECT_EQ(p.status, "+OK pop3-synth ready.") << chunk;
  }
}

TEST(ResponseParserTest, LeavesPipelinedBytesUnconsumed) {
  Parsed p = FeedAll(kSingle, "+OK\r\n+OK next\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kDone);
  EXPECT_EQ(p.rest, "+OK next\r\n");
  Parsed m = FeedAll(kMulti, "+OK\r\nbody\r\n.\r\n-ERR no\r\n");
  EXPECT_EQ(m.body, "body\r\n");
  EXPECT_EQ(m.rest, "-ERR no\r\n");
}

TEST(ResponseParserTest, MultiLineErrIsOneLine) {
  Parsed p = FeedAll(kMulti, "-ERR no such message\r\n.\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kDone);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.body, "");
  EXPECT_EQ(p.rest, ".\r\n");
}

TEST(ResponseParserTest, EmptyBody) {
  Parsed p = FeedAll(kMulti, "+OK 0 messages\r\n.\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kDone);
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.body, "");
}

TEST(ResponseParserTest, DotUnstuffingAndTerminator) {
  const std::string wire =
      "+OK 120 octets\r\n"
      "Subject: x\r\n"
      "\r\n"
      "..\r\n"            // a line that is "."
      "...\r\n"           // ".."
      "..text\r\n"        // ".text"
      ".text\r\n"         // lenient: an unstuffed dot line loses its dot
      ".\rx\r\n"          // dot, bare CR: not the terminator
      "a.\r\n"            // dots elsewhere are data
      "\r\n"
      ".\r\n";
  const std::string body =
      "Subject: x\r\n\r\n.\r\n..\r\n.text\r\ntext\r\n\rx\r\na.\r\n\r\n";
  for (size_t chunk = 1; chunk <= wire.size(); ++chunk) {
    Parsed p = FeedChunks(kMulti, wire, {chunk});
    ASSERT_EQ(p.result, ResponseParser::Result::kDone) << chunk;
    EXPECT_EQ(p.body, body) << "chunk " << chunk;
    EXPECT_EQ(p.rest, "") << chunk;
  }
}

TEST(ResponseParserTest, TerminatorNeedsLineStart) {
  // "x.\r\n" is data; the body only ends at CRLF "." CRLF.
  Parsed p = FeedAll(kMulti, "+OK\r\nx.\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kNeedMore);
  EXPECT_EQ(p.body, "x.\r\n");
}

TEST(ResponseParserTest, SyntheticMessagesRoundTripInRandomChunks) {
  std::mt19937 rng(42);
  for (size_t size : {1u, 2u, 3u, 64u, 600u, 2000u, 70000u, 300000u}) {
    std::string raw = synth::SynthBody(size);
    std::string wire = "+OK " + std::to_string(size) + " octets\r\n" +
                       synth::SynthBodyWire(size) + ".\r\n";
    std::vector<size_t> chunks;
    for (int i = 0; i < 64; ++i) {
      chunks.push_back(1 + rng() % (i % 2 == 0 ? 7 : 70000));
    }
    Parsed p = FeedChunks(kMulti, wire, chunks);
    ASSERT_EQ(p.result, ResponseParser::Result::kDone) << size;
    EXPECT_EQ(p.body.size(), raw.size()) << size;
    EXPECT_TRUE(p.body == raw) << size;
  }
}

TEST(ResponseParserTest, RejectsGarbageStatus) {
  Parsed p = FeedAll(kSingle, "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(p.result, ResponseParser::Result::kError);
}

TEST(ResponseParserTest, RejectsOverlongStatusLine) {
  std::string wire = "+OK " + std::string(ResponseParser::kMaxStatusLine, 'x');
  Parsed p = FeedChunks(kSingle, wire, {100});
  EXPECT_EQ(p.result, ResponseParser::Result::kError);
}

TEST(ResponseParserTest, ReusableAfterBegin) {
  ResponseParser parser;
  size_t consumed = 0;
  parser.Begin(kSingle, nullptr);
  EXPECT_EQ(parser.Feed("-ERR a\r\n", &consumed),
            ResponseParser::Result::kDone);
  parser.Begin(kSingle, nullptr);
  EXPECT_EQ(parser.Feed("+OK b\r\n", &consumed),
            ResponseParser::Result::kDone);
  EXPECT_TRUE(parser.ok());
  EXPECT_EQ(parser.status_line(), "+OK b");
}

TEST(FindLfDotTest, MatchesNaiveScan) {
  std::mt19937 rng(7);
  const char alphabet[] = {'\n', '.', 'a', '\r'};
  for (int round = 0; round < 2000; ++round) {
    std::string data(rng() % 80, 'x');
    for (char& c : data) c = alphabet[rng() % 4];
    size_t pos = data.empty() ? 0 : rng() % (data.size() + 1);
    size_t want = std::string_view::npos;
    for (size_t i = pos; i + 1 < data.size(); ++i) {
      if (data[i] == '\n' && data[i + 1] == '.') {
        want = i;
        break;
      }
    }
    ASSERT_EQ(FindLfDot(data, pos), want) << round;
  }
}

TEST(Pop3ParseTest, Stat) {
  int64_t count = 0;
  uint64_t size = 0;
  EXPECT_TRUE(ParseStat("+OK 5 10000", &count, &size));
  EXPECT_EQ(count, 5);
  EXPECT_EQ(size, 10000u);
  EXPECT_FALSE(ParseStat("+OK", &count, &size));
  EXPECT_FALSE(ParseStat("-ERR 5 10000", &count, &size));
  EXPECT_FALSE(ParseStat("+OK five 10", &count, &size));
}

TEST(Pop3ParseTest, ScanLine) {
  int64_t n = 0;
  uint64_t size = 0;
  EXPECT_TRUE(ParseScanLine("3 2000\r\n", &n, &size));
  EXPECT_EQ(n, 3);
  EXPECT_EQ(size, 2000u);
  EXPECT_TRUE(ParseScanLine("+OK 1 10485760", &n, &size));
  EXPECT_EQ(size, 10485760u);
  EXPECT_TRUE(ParseScanLine("4 77\r", &n, &size));
  EXPECT_FALSE(ParseScanLine("x 1", &n, &size));
  EXPECT_FALSE(ParseScanLine("1", &n, &size));
}

}  // namespace
}  // namespace popgate::loadgen
