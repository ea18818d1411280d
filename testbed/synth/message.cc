#include "testbed/synth/message.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "testbed/synth/str_util.h"

namespace popgate::synth {
namespace {

// RFC 5322 2.1.1: lines must not exceed 998 characters excluding CRLF.
constexpr size_t kMaxLineLength = 998;

// splitmix64: tiny, fast and - unlike std:: distributions - specified
// exactly, so bodies are identical across compilers and standard libraries.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// A fixed block of prose that body lines are sliced from. Copying slices is
// what makes generating 100 MB take tens of milliseconds rather than seconds.
const std::string& TextSource() {
  static const std::string* const text = [] {
    static constexpr std::array<std::string_view, 24> kWords = {
        "pop3",      "synthetic", "message", "body",    "line",  "proxy",
        "mail",      "octets",    "dot",     "stuffed", "RETR",  "TOP",
        "benchmark", "popgate",   "backend", "user",    "quick", "brown",
        "fox",       "jumps",     "over",    "lazy",    "dog",   "42"};
    constexpr size_t kSize = 64 * 1024;
    auto* s = new std::string;
    s->reserve(kSize + 16);
    SplitMix64 rng(0x706f7033);  // "pop3"
    while (s->size() < kSize) {
      uint64_t r = rng.Next();
      s->append(kWords[r % kWords.size()]);
      // Mostly spaces, sometimes punctuation, so that dots also appear in
      // the middle and at the end of lines.
      switch ((r >> 8) % 16) {
        case 0:
          s->append(". ");
          break;
        case 1:
          s->append(", ");
          break;
        case 2:
          s->append(".");
          break;
        default:
          s->push_back(' ');
      }
    }
    s->resize(kSize);
    return s;
  }();
  return *text;
}

// The first body lines, so that every body (of at least kMinBodySize
// octets) has the lines a stuffing bug would break.
constexpr std::array<std::string_view, 5> kPrelude = {
    ".", "..", ".a line starting with one dot",
    "..a line starting with two dots", "..."};

// Writes a body of exactly `size` raw octets to `out`, dot-stuffed if
// `stuffed`. Both forms come from the same line sequence, so the stuffed
// form is exactly DotStuff() of the raw one.
void GenerateBody(size_t size, bool stuffed, std::string* out) {
  out->clear();
  // Dot lines are ~1/12 of all lines of ~60 octets: 1/256 is generous.
  out->reserve(size + (stuffed ? size / 256 + 64 : 0));
  if (size == 1) {  // Cannot hold a CRLF; only reachable for 1-octet bodies.
    out->push_back('\n');
    return;
  }
  const std::string& text = TextSource();
  SplitMix64 rng(0x73796e7468ULL ^ (static_cast<uint64_t>(size) * 0x9e37ULL));
  size_t remaining = size;
  size_t line_no = 0;
  while (remaining > 0) {
    // Pick the line: a prefix (dot variants) plus `text_len` octets of text.
    std::string_view prefix;
    size_t text_len = 0;
    uint64_t r = rng.Next();
    if (line_no < kPrelude.size()) {
      prefix = kPrelude[line_no];
    } else {
      switch (r % 24) {
        case 0:
          prefix = ".";
          break;
        case 1:
          prefix = "..";
          break;
        case 2:
          prefix = ".";
          text_len = 1 + (r >> 8) % 70;
          break;
        case 3:
          prefix = "..";
          text_len = 1 + (r >> 8) % 70;
          break;
        case 4:
          break;  // empty line
        case 5:
          text_len = 200 + (r >> 8) % (kMaxLineLength - 200 + 1);
          break;
        default:
          text_len = 1 + (r >> 8) % 78;
      }
    }
    ++line_no;
    size_t len = prefix.size() + text_len;
    const size_t max_len = remaining - 2;
    // The last line takes whatever is left; a line that would leave exactly
    // one octet (too little for a CRLF) is grown by one to end the body.
    if (len > max_len || max_len - len == 1) len = max_len;
    prefix = prefix.substr(0, std::min(prefix.size(), len));
    text_len = len - prefix.size();
    size_t offset = (r >> 20) % (text.size() - text_len + 1);
    char first = !prefix.empty() ? prefix[0]
                 : text_len > 0  ? text[offset]
                                 : '\r';
    if (stuffed && first == '.') out->push_back('.');
    out->append(prefix);
    out->append(text, offset, text_len);
    out->append("\r\n");
    remaining -= len + 2;
  }
}

uint64_t Fnv1a(uint64_t h, std::string_view data) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

}  // namespace

MessageLayout SynthLayout(std::string_view user, int n, size_t size) {
  const uint64_t user_hash = Fnv1a(kFnvOffset, user);
  // Priority order: when a small message cannot hold them all, the later
  // ones are dropped first; To and Subject identify the message.
  const std::vector<std::string> fields = {
      Cat("To: ", user, "\r\n"),
      Cat("Subject: synth message ", n, " for ", user, "\r\n"),
      "From: pop3-synth <synth@pop3-synth.invalid>\r\n",
      "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n",
      Cat("Message-ID: <synth.", n, ".", Hex64(user_hash),
          "@pop3-synth.invalid>\r\n"),
  };
  std::string natural;
  for (const std::string& f : fields) natural += f;

  MessageLayout layout;
  constexpr std::string_view kPadField = "X-Synth-Pad: ";
  if (size >= kPaddedHeaderSize + kMinBodySize &&
      natural.size() + kPadField.size() + 1 + 2 + 2 <= kPaddedHeaderSize) {
    size_t pad = kPaddedHeaderSize - natural.size() - kPadField.size() - 4;
    layout.header_section = natural;
    layout.header_section += kPadField;
    for (size_t i = 0; i < pad; ++i) {
      layout.header_section.push_back("0123456789abcdef"[i % 16]);
    }
    layout.header_section += "\r\n\r\n";
  } else if (natural.size() + 2 + kMinBodySize <= size) {
    layout.header_section = natural + "\r\n";
  } else if (size >= kMinBodySize + 2) {
    // Small message: keep whole fields that fit; To and Subject may be
    // shortened (still CRLF-terminated) rather than dropped.
    size_t budget = size - kMinBodySize - 2;
    for (size_t i = 0; i < fields.size(); ++i) {
      const std::string& f = fields[i];
      if (f.size() <= budget) {
        layout.header_section += f;
        budget -= f.size();
      } else if (i < 2) {
        size_t name_len = f.find(' ') + 1;  // "To: " / "Subject: "
        if (budget >= name_len + 1 + 2) {
          layout.header_section.append(f, 0, budget - 2);
          layout.header_section += "\r\n";
          budget = 0;
        }
      }
    }
    layout.header_section += "\r\n";
  }
  // else: too small for any header; the message is all body.
  layout.body_size = size - layout.header_section.size();
  return layout;
}

std::string SynthBody(size_t size) {
  std::string out;
  GenerateBody(size, /*stuffed=*/false, &out);
  return out;
}

std::string SynthBodyWire(size_t size) {
  std::string out;
  GenerateBody(size, /*stuffed=*/true, &out);
  return out;
}

std::string SynthMessage(std::string_view user, int n, size_t size) {
  MessageLayout layout = SynthLayout(user, n, size);
  std::string out = std::move(layout.header_section);
  std::string body = SynthBody(layout.body_size);
  out += body;
  return out;
}

uint64_t SynthChecksum(std::string_view data) {
  return Fnv1a(kFnvOffset, data);
}

std::string SynthUidl(std::string_view user, int n, size_t size) {
  uint64_t h = Fnv1a(kFnvOffset, user);
  h = Fnv1a(h, std::string_view("\0", 1));
  h = Fnv1a(h, Cat(n, "/", size));
  return Cat("synth-", n, "-", Hex64(h));
}

}  // namespace popgate::synth
