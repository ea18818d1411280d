// POP3 line framing (pop3/line_reader): arbitrary bytes, split into reads of
// arbitrary sizes. Property: the lines (and overlong-line reports) depend only
// on the bytes, never on how they were split, and match a reference model of
// RFC 2449 framing (LF or CRLF ends a line; at most max_line octets with the
// line end counted as two). With a max_discard bound, an endless line is
// reported (kEndless, once per line) only if it runs long enough: never for
// one of max_discard octets or fewer, always past max_discard plus the
// buffer's capacity (what one read may hold).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pop3/line_reader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::LineReader;

constexpr size_t kCapacity = 1024;

// One event: a line (its content), "overlong" (kTooLong) or "endless".
struct Event {
  bool too_long;
  std::string line;
  bool endless = false;
  bool operator==(const Event&) const = default;
};

// Feeds `input` in reads whose sizes come from `sizes` (cycled; 0 means as
// much as fits), collecting events. `pending` gets Pending() at the end.
std::vector<Event> Run(std::string_view input, std::string_view sizes,
                       size_t max_line, size_t max_discard,
                       std::string* pending) {
  LineReader reader(kCapacity, max_line, max_discard);
  std::vector<Event> events;
  size_t pos = 0;
  size_t k = 0;
  while (true) {
    std::string_view line;
    LineReader::Result r = reader.Next(line);
    if (r == LineReader::Result::kLine) {
      FUZZ_CHECK(line.size() + 2 <= max_line);
      FUZZ_CHECK(line.find('\n') == std::string_view::npos);
      events.push_back({false, std::string(line)});
      continue;
    }
    if (r == LineReader::Result::kTooLong) {
      events.push_back({true, ""});
      continue;
    }
    if (r == LineReader::Result::kEndless) {
      FUZZ_CHECK(max_discard != 0);
      events.push_back({false, "", true});
      continue;
    }
    if (pos == input.size()) break;
    std::span<char> space = reader.WritableSpace();
    FUZZ_CHECK(!space.empty());
    size_t n = space.size();
    if (!sizes.empty()) {
      size_t want = static_cast<unsigned char>(sizes[k++ % sizes.size()]);
      if (want != 0) n = std::min(n, want);
    }
    n = std::min(n, input.size() - pos);
    std::memcpy(space.data(), input.data() + pos, n);
    reader.Commit(n);
    pos += n;
  }
  *pending = std::string(reader.Pending());
  return events;
}

// The reference: split at LF, drop one CR before it, and apply the limit;
// an unterminated tail is overlong once it reaches max_line octets.
std::vector<Event> Model(std::string_view input, size_t max_line,
                         std::string* pending) {
  std::vector<Event> events;
  while (true) {
    size_t nl = input.find('\n');
    if (nl == std::string_view::npos) break;
    std::string_view line = input.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() + 2 > max_line) {
      events.push_back({true, ""});
    } else {
      events.push_back({false, std::string(line)});
    }
    input.remove_prefix(nl + 1);
  }
  if (input.size() >= max_line) {
    events.push_back({true, ""});
    pending->clear();
  } else {
    *pending = std::string(input);
  }
  return events;
}

// Without the kEndless reports (which depend on how reads fall).
std::vector<Event> Framing(const std::vector<Event>& events, int* endless) {
  std::vector<Event> out;
  *endless = 0;
  for (const Event& e : events) {
    if (e.endless) {
      ++*endless;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // Byte 0: bit 0 which limit (client commands or server responses), the
  // other bits the endless-line bound (0: none); byte 1: how many of the
  // following bytes are read sizes; the rest is the stream.
  const size_t max_line = (data[0] & 1) ? 512 : LineReader::kMaxLine;
  const size_t max_discard = static_cast<size_t>(data[0] >> 1) * 64;
  const size_t n_sizes = std::min<size_t>(data[1] % 16, size - 2);
  std::string_view sizes(reinterpret_cast<const char*>(data) + 2, n_sizes);
  std::string_view input(reinterpret_cast<const char*>(data) + 2 + n_sizes,
                         size - 2 - n_sizes);

  std::string pending_split, pending_whole, pending_model;
  int endless_split = 0, endless_whole = 0;
  std::vector<Event> split = Framing(
      Run(input, sizes, max_line, max_discard, &pending_split), &endless_split);
  std::vector<Event> whole = Framing(
      Run(input, "", max_line, max_discard, &pending_whole), &endless_whole);
  std::vector<Event> model = Model(input, max_line, &pending_model);
  FUZZ_CHECK(split == model);
  FUZZ_CHECK(whole == model);
  FUZZ_CHECK(pending_split == pending_model);
  FUZZ_CHECK(pending_whole == pending_model);

  // Lines (terminated or not, without their LF) long enough to be reported
  // as endless, and long enough that they must be.
  int may = 0, must = 0;
  for (size_t start = 0; start <= input.size();) {
    size_t nl = input.find('\n', start);
    if (nl == std::string_view::npos) nl = input.size();
    if (max_discard != 0 && nl - start > max_discard) ++may;
    if (max_discard != 0 && nl - start > max_discard + kCapacity) ++must;
    start = nl + 1;
  }
  for (int endless : {endless_split, endless_whole}) {
    FUZZ_CHECK(endless <= may);
    FUZZ_CHECK(endless >= must);
  }
  return 0;
}
