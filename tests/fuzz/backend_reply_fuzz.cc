// The backend's replies as popgate's backend login reads them
// (session/backend_login): greeting, STLS reply, USER reply, PASS reply,
// each one line of at most 512 octets (RFC 2449) framed by the same
// LineReader, then whatever the backend sent after its PASS reply, which is
// handed to the client as the start of the session. And the loop token a
// popgate backend names in its USER reply (FindLoopToken).
//
// LoginToBackend itself does I/O on the ring; this target replays its
// reading on bytes in memory, split into reads of fuzzed sizes.
//
// Properties: no line longer than the limit or holding a LF; the bytes
// left over after the PASS reply are exactly those after its line end in
// the input, whatever the read sizes; a loop token found is 16 lowercase
// hex digits right after "popgate-id=" in the line; our own token is one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "pop3/line_reader.h"
#include "backend/backend_login.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr size_t kMaxResponse = 512;  // as in backend_login.cc

void CheckToken(std::string_view line) {
  std::optional<std::string_view> token = popgate::FindLoopToken(line);
  const size_t at = line.find(popgate::kLoopTokenTag);
  if (!token.has_value()) {
    if (at != std::string_view::npos) {
      FUZZ_CHECK(!popgate::IsLoopToken(line.substr(
          at + popgate::kLoopTokenTag.size(), popgate::kLoopTokenLength)));
    }
    return;
  }
  FUZZ_CHECK(at != std::string_view::npos);
  FUZZ_CHECK(token->data() == line.data() + at + popgate::kLoopTokenTag.size());
  FUZZ_CHECK(token->size() == popgate::kLoopTokenLength);
  for (char c : *token) {
    FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool starttls = data[0] & 1;
  const size_t n_sizes = std::min<size_t>(data[1] % 8, size - 2);
  const std::string_view sizes(reinterpret_cast<const char*>(data) + 2,
                               n_sizes);
  const std::string_view input(
      reinterpret_cast<const char*>(data) + 2 + n_sizes, size - 2 - n_sizes);

  popgate::LineReader reader(1024, kMaxResponse);
  size_t pos = 0;  // input bytes handed to the reader
  size_t k = 0;
  // ReadLine (forward/read_line.h) on memory: true with a line, false when
  // the backend's bytes end first or the line is too long.
  auto read_line = [&](std::string_view& line) {
    while (true) {
      switch (reader.Next(line)) {
        case popgate::LineReader::Result::kLine:
          FUZZ_CHECK(line.size() + 2 <= kMaxResponse);
          FUZZ_CHECK(line.find('\n') == std::string_view::npos);
          return true;
        case popgate::LineReader::Result::kNeedMore:
          break;
        default:
          return false;
      }
      if (pos == input.size()) return false;
      std::span<char> space = reader.WritableSpace();
      FUZZ_CHECK(!space.empty());
      size_t n = std::min(space.size(), input.size() - pos);
      if (!sizes.empty()) {
        const size_t want = static_cast<unsigned char>(sizes[k++ % n_sizes]);
        if (want != 0) n = std::min(n, want);
      }
      std::memcpy(space.data(), input.data() + pos, n);
      reader.Commit(n);
      pos += n;
    }
  };

  // Where the input's n-th line ends (after its LF).
  auto end_of_line = [&](int n) {
    size_t at = 0;
    for (int i = 0; i < n; ++i) at = input.find('\n', at) + 1;
    return at;
  };

  std::string_view line;
  int lines = 0;
  if (!read_line(line) || !line.starts_with("+OK")) return 0;  // greeting
  ++lines;
  if (starttls) {
    if (!read_line(line) || !line.starts_with("+OK")) return 0;
    // What follows would be TLS: a new reader starts there.
    return 0;
  }
  if (!read_line(line)) return 0;  // reply to USER
  ++lines;
  CheckToken(line);
  if (!line.starts_with("+OK")) return 0;
  if (!read_line(line)) return 0;  // reply to PASS
  ++lines;
  CheckToken(line);
  // The rest goes to the client as is: exactly what followed the PASS
  // reply, however the reads fell.
  const std::string_view leftover = reader.Pending();
  FUZZ_CHECK(leftover ==
             input.substr(end_of_line(lines), pos - end_of_line(lines)));

  FUZZ_CHECK(popgate::IsLoopToken(popgate::ProcessLoopToken()));
  return 0;
}
