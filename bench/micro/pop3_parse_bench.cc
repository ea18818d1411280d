// pop3_parse_bench: what popgate's front end spends per client command line
// before login: HasForbiddenBytes + ParseCommand on one line, and
// LineReader framing a read that carries several pipelined lines.
//
// ParseCommand only knows the AUTHORIZATION-state verbs (USER, PASS, AUTH,
// ...); STAT/RETR/LIST come out as kUnknown, which is still the full cost
// the front end pays before it refuses them (after login they are forwarded
// as bytes and never parsed).
//
// Run: pop3_parse_bench [--benchmark_min_time=0.1]
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "pop3/line_reader.h"
#include "pop3/pop3_command.h"

namespace popgate {
namespace {

// The longest line RFC 2449 allows: 253 octets + CRLF = 255.
std::string LongLine() {
  std::string line = "PASS ";
  line.resize(LineReader::kMaxLine - 2, 'x');
  return line;
}

// The lines measured; BENCHMARK_CAPTURE below names them by index.
const std::vector<std::string>& Lines() {
  static const std::vector<std::string>* const kLines =
      new std::vector<std::string>{
          "USER alice@example.com",
          "PASS correct horse battery staple",
          "STAT",
          "RETR 1",
          "LIST",
          // "\0alice@example.com\0demo" in base64: a typical SASL PLAIN
          // initial response.
          "AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGRlbW8=",
          LongLine(),
      };
  return *kLines;
}

void BM_ParseCommand(benchmark::State& state, size_t index) {
  const std::string& line = Lines()[index];
  for (auto _ : state) {
    // The session does both for every line: refuse control bytes, then
    // split verb and argument.
    std::string_view view = line;
    benchmark::DoNotOptimize(view);
    bool bad = HasForbiddenBytes(view);
    Command cmd = ParseCommand(view);
    benchmark::DoNotOptimize(bad);
    benchmark::DoNotOptimize(cmd);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(line.size()));
}
BENCHMARK_CAPTURE(BM_ParseCommand, USER, 0);
BENCHMARK_CAPTURE(BM_ParseCommand, PASS, 1);
BENCHMARK_CAPTURE(BM_ParseCommand, STAT, 2);
BENCHMARK_CAPTURE(BM_ParseCommand, RETR_1, 3);
BENCHMARK_CAPTURE(BM_ParseCommand, LIST, 4);
BENCHMARK_CAPTURE(BM_ParseCommand, AUTH_PLAIN, 5);
BENCHMARK_CAPTURE(BM_ParseCommand, 255_bytes, 6);

// A client that pipelines (RFC 2449 PIPELINING): `state.range(0)` command
// lines arrive in one read. Each iteration copies the read into the
// reader's buffer (as recv would) and pulls out every line; items = lines.
void BM_LineReaderPipelined(benchmark::State& state) {
  const int lines = static_cast<int>(state.range(0));
  // A whole short session's commands, repeated; LineReader frames lines
  // whatever their verb.
  const char* const kMix[] = {"CAPA\r\n",      "USER alice@example.com\r\n",
                              "PASS demo\r\n", "STAT\r\n",
                              "LIST\r\n",      "RETR 1\r\n",
                              "DELE 1\r\n",    "QUIT\r\n"};
  std::string input;
  for (int i = 0; i < lines; ++i) input += kMix[i % 8];
  // The session's default 1024-byte buffer: 64 of these lines (600 bytes)
  // fit in one read.
  LineReader reader;
  if (input.size() > reader.capacity()) {
    state.SkipWithError("input larger than the reader's buffer");
    return;
  }
  for (auto _ : state) {
    std::span<char> space = reader.WritableSpace();
    std::memcpy(space.data(), input.data(), input.size());
    reader.Commit(input.size());
    std::string_view line;
    int got = 0;
    while (reader.Next(line) == LineReader::Result::kLine) {
      benchmark::DoNotOptimize(line);
      ++got;
    }
    if (got != lines) {
      state.SkipWithError("wrong line count");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * lines);
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(input.size()));
}
BENCHMARK(BM_LineReaderPipelined)->Arg(1)->Arg(8)->Arg(64);

}  // namespace
}  // namespace popgate

BENCHMARK_MAIN();
