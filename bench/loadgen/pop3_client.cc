#include "bench/loadgen/pop3_client.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <charconv>
#include <cstring>

namespace popgate::loadgen {
namespace {

// Splits off the next space-separated token of `*text`.
std::string_view NextToken(std::string_view* text) {
  size_t start = text->find_first_not_of(' ');
  if (start == std::string_view::npos) {
    *text = {};
    return {};
  }
  text->remove_prefix(start);
  size_t end = text->find(' ');
  std::string_view token = text->substr(0, end);
  text->remove_prefix(end == std::string_view::npos ? text->size() : end);
  return token;
}

template <typename T>
bool ParseNumber(std::string_view token, T* out) {
  auto [end, ec] =
      std::from_chars(token.data(), token.data() + token.size(), *out);
  return !token.empty() && ec == std::errc() &&
         end == token.data() + token.size();
}

}  // namespace

size_t FindLfDot(std::string_view data, size_t pos) {
  const size_t n = data.size();
  const char* p = data.data();
#if defined(__SSE2__)
  // Compare 16 bytes with '\n' and the 16 bytes one further with '.'; a
  // set bit in both masks is an LF followed by a dot.
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dot = _mm_set1_epi8('.');
  while (pos + 17 <= n) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + pos));
    __m128i b =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + pos + 1));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, lf), _mm_cmpeq_epi8(b, dot))));
    if (mask != 0) return pos + static_cast<size_t>(__builtin_ctz(mask));
    pos += 16;
  }
#endif
  for (; pos + 1 < n; ++pos) {
    if (p[pos] == '\n' && p[pos + 1] == '.') return pos;
  }
  return std::string_view::npos;
}

void ResponseParser::Begin(Kind kind, BodySink* sink) {
  kind_ = kind;
  sink_ = sink;
  state_ = State::kStatus;
  ok_ = false;
  status_.clear();
  body_bytes_ = 0;
  error_.clear();
}

ResponseParser::Result ResponseParser::Fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
  return Result::kError;
}

void ResponseParser::Emit(std::string_view data) {
  if (data.empty()) return;
  body_bytes_ += data.size();
  if (sink_ != nullptr) sink_->OnBodyData(data);
}

ResponseParser::Result ResponseParser::Feed(std::string_view data,
                                            size_t* consumed) {
  size_t pos = 0;
  const size_t n = data.size();
  while (true) {
    switch (state_) {
      case State::kStatus: {
        const char* lf = static_cast<const char*>(
            std::memchr(data.data() + pos, '\n', n - pos));
        size_t end = lf == nullptr ? n : static_cast<size_t>(lf - data.data());
        status_.append(data.data() + pos, end - pos);
        if (status_.size() > kMaxStatusLine) {
          *consumed = end;
          return Fail("status line longer than " +
                      std::to_string(kMaxStatusLine) + " octets");
        }
        if (lf == nullptr) {
          *consumed = n;
          return Result::kNeedMore;
        }
        pos = end + 1;
        if (!status_.empty() && status_.back() == '\r') status_.pop_back();
        if (status_.starts_with("+OK")) {
          ok_ = true;
        } else if (status_.starts_with("-ERR")) {
          ok_ = false;
        } else {
          *consumed = pos;
          return Fail("status line is neither +OK nor -ERR: '" +
                      status_.substr(0, 80) + "'");
        }
        // -ERR never has a body (RFC 1939 3).
        state_ = kind_ == Kind::kMultiLine && ok_ ? State::kLineStart
                                                  : State::kDone;
        break;
      }
      case State::kLineStart:
        if (pos == n) {
          *consumed = n;
          return Result::kNeedMore;
        }
        if (data[pos] == '.') {
          ++pos;  // the byte-stuffed (or terminating) dot is never data
          state_ = State::kLineStartDot;
        } else {
          state_ = State::kInLine;
        }
        break;
      case State::kLineStartDot:
        if (pos == n) {
          *consumed = n;
          return Result::kNeedMore;
        }
        if (data[pos] == '\r') {
          ++pos;
          state_ = State::kLineStartDotCr;
        } else {
          state_ = State::kInLine;
        }
        break;
      case State::kLineStartDotCr:
        if (pos == n) {
          *consumed = n;
          return Result::kNeedMore;
        }
        if (data[pos] == '\n') {
          ++pos;
          state_ = State::kDone;
        } else {
          // ".\r<x>": a stuffed line whose data starts with a bare CR.
          Emit("\r");
          state_ = State::kInLine;
        }
        break;
      case State::kInLine: {
        if (pos == n) {
          *consumed = n;
          return Result::kNeedMore;
        }
        // The hot path for big messages. Only lines that start with a dot
        // need attention (stuffing or the terminator), so scan for "\n."
        // sixteen bytes at a time and hand everything before it to the sink
        // as ONE view: a 10 MB message costs a few hundred sink calls, not
        // one per line.
        size_t dot_line = FindLfDot(data, pos);
        if (dot_line != std::string_view::npos) {
          Emit(data.substr(pos, dot_line + 1 - pos));
          pos = dot_line + 1;  // at the dot
          state_ = State::kLineStart;
          break;
        }
        Emit(data.substr(pos));
        // A chunk ending in LF leaves the next chunk at a line start.
        if (data.back() == '\n') state_ = State::kLineStart;
        *consumed = n;
        return Result::kNeedMore;
      }
      case State::kDone:
        *consumed = pos;
        return Result::kDone;
      case State::kError:
        *consumed = pos;
        return Result::kError;
    }
  }
}

bool ParseStat(std::string_view status_line, int64_t* count, uint64_t* size) {
  if (!status_line.starts_with("+OK")) return false;
  status_line.remove_prefix(3);
  return ParseNumber(NextToken(&status_line), count) &&
         ParseNumber(NextToken(&status_line), size);
}

bool ParseScanLine(std::string_view line, int64_t* n, uint64_t* size) {
  if (line.starts_with("+OK")) line.remove_prefix(3);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  return ParseNumber(NextToken(&line), n) && ParseNumber(NextToken(&line), size);
}

}  // namespace popgate::loadgen
