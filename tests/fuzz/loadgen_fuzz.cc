// The load generator's parsers (bench/loadgen): the incremental POP3
// response parser (pop3_client), which reads whatever the server under test
// sends, and the command line (options), including the loopback-only
// target rule.
//
// Input: byte 0 picks the kinds of the responses expected (bit i: response i
// is multi-line), byte 1 how many of the next bytes are read sizes, then the
// server's bytes; the same bytes, split at NUL, are also a command line.
//
// Properties: responses, bodies and errors do not depend on how the bytes
// were split; a body has no terminator left in it and dot-unstuffing
// matches a reference; FindLfDot agrees with a plain search; a parsed
// STAT/scan line prints and parses back to itself; an accepted command line
// is within the hard caps and targets a loopback address.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen/options.h"
#include "bench/loadgen/pop3_client.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::loadgen::ResponseParser;
using popgate::loadgen::StringSink;

struct Response {
  ResponseParser::Result result;
  bool ok = false;
  std::string status, body, error;
  uint64_t body_bytes = 0;
  bool operator==(const Response&) const = default;
};

// Parses up to 8 responses of the kinds in `kinds`, feeding reads of
// `sizes` (cycled; 0 = all that is left).
std::vector<Response> Run(uint8_t kinds, std::string_view sizes,
                          std::string_view input) {
  std::vector<Response> out;
  ResponseParser p;
  size_t k = 0;
  for (int i = 0; i < 8 && !input.empty(); ++i) {
    StringSink sink;
    p.Begin((kinds >> i) & 1 ? ResponseParser::Kind::kMultiLine
                             : ResponseParser::Kind::kSingleLine,
            &sink);
    Response r;
    r.result = ResponseParser::Result::kNeedMore;
    while (!input.empty()) {
      size_t n = input.size();
      if (!sizes.empty()) {
        const size_t want =
            static_cast<unsigned char>(sizes[k++ % sizes.size()]);
        if (want != 0) n = std::min(n, want);
      }
      size_t consumed = 0;
      r.result = p.Feed(input.substr(0, n), &consumed);
      FUZZ_CHECK(consumed <= n);
      if (r.result == ResponseParser::Result::kNeedMore) {
        FUZZ_CHECK(consumed == n);
      }
      input.remove_prefix(consumed);
      if (r.result != ResponseParser::Result::kNeedMore) break;
    }
    if (r.result == ResponseParser::Result::kDone) {
      r.ok = p.ok();
      r.status = p.status_line();
      r.body_bytes = p.body_bytes();
      FUZZ_CHECK(r.status.find('\n') == std::string::npos);
      FUZZ_CHECK(sink.text.size() == r.body_bytes);
    } else if (r.result == ResponseParser::Result::kError) {
      r.error = p.error();
      FUZZ_CHECK(!r.error.empty());
    }
    r.body = sink.text;
    out.push_back(r);
    if (r.result != ResponseParser::Result::kDone) break;
  }
  return out;
}

bool IsLoopback(const popgate::loadgen::Target& t) {
  if (t.addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&t.addr);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (t.addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&t.addr);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
            in6->sin6_addr.s6_addr[12] == 127);
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t kinds = data[0];
  const size_t n_sizes = std::min<size_t>(data[1] % 8, size - 2);
  const std::string_view sizes(reinterpret_cast<const char*>(data) + 2,
                               n_sizes);
  const std::string_view input(
      reinterpret_cast<const char*>(data) + 2 + n_sizes, size - 2 - n_sizes);

  // Responses: split reads vs one read.
  const std::vector<Response> split = Run(kinds, sizes, input);
  const std::vector<Response> whole = Run(kinds, "", input);
  FUZZ_CHECK(split == whole);

  // FindLfDot: the first LF at or after pos followed by '.'.
  for (size_t pos : {size_t{0}, input.size() / 2}) {
    size_t want = std::string_view::npos;
    for (size_t i = pos; i + 1 < input.size(); ++i) {
      if (input[i] == '\n' && input[i + 1] == '.') {
        want = i;
        break;
      }
    }
    FUZZ_CHECK(popgate::loadgen::FindLfDot(input, pos) == want);
  }

  // STAT and scan lines.
  int64_t count = 0, n = 0;
  uint64_t bytes = 0;
  if (popgate::loadgen::ParseStat(input, &count, &bytes)) {
    int64_t c2 = 0;
    uint64_t b2 = 0;
    FUZZ_CHECK(popgate::loadgen::ParseStat(
        "+OK " + std::to_string(count) + " " + std::to_string(bytes), &c2,
        &b2));
    FUZZ_CHECK(c2 == count && b2 == bytes);
  }
  if (popgate::loadgen::ParseScanLine(input, &n, &bytes)) {
    int64_t n2 = 0;
    uint64_t b2 = 0;
    FUZZ_CHECK(popgate::loadgen::ParseScanLine(
        std::to_string(n) + " " + std::to_string(bytes), &n2, &b2));
    FUZZ_CHECK(n2 == n && b2 == bytes);
  }

  // The command line.
  std::vector<std::string> args;
  std::string_view rest = input;
  while (!rest.empty()) {
    const size_t nul = rest.find('\0');
    args.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view()
                                         : rest.substr(nul + 1);
  }
  popgate::loadgen::Options options;
  std::string error;
  if (popgate::loadgen::ParseOptions(args, &options, &error) && !options.help) {
    FUZZ_CHECK(options.concurrency <= popgate::loadgen::kMaxConcurrency);
    FUZZ_CHECK(options.threads <= popgate::loadgen::kMaxThreads);
    FUZZ_CHECK(options.duration_s <= popgate::loadgen::kMaxDurationS);
    FUZZ_CHECK(IsLoopback(options.target));
  }
  popgate::loadgen::Target target;
  if (popgate::loadgen::ParseTarget(input, &target, &error)) {
    FUZZ_CHECK(IsLoopback(target));
  }
  return 0;
}
