#include "pop3/line_reader.h"

#include <cstring>

namespace popgate {

LineReader::LineReader(size_t capacity, size_t max_line, size_t max_discard)
    : buf_(capacity),
      capacity_(capacity),
      max_line_(max_line),
      max_discard_(max_discard) {}

std::span<char> LineReader::WritableSpace() {
  if (start_ > 0 && (end_ == capacity_ || start_ == end_)) {
    std::memmove(buf_.get(), buf_.get() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  return {buf_.get() + end_, capacity_ - end_};
}

void LineReader::Commit(size_t n) { end_ += n; }

LineReader::Result LineReader::Next(std::string_view& line) {
  while (true) {
    const char* begin = buf_.get() + start_;
    size_t avail = end_ - start_;
    const void* nl = std::memchr(begin, '\n', avail);
    if (discarding_) {
      if (nl == nullptr) {
        discarded_ += avail;
        start_ = end_ = 0;  // drop everything, keep discarding
        if (max_discard_ != 0 && discarded_ > max_discard_ &&
            !endless_reported_) {
          endless_reported_ = true;
          return Result::kEndless;
        }
        return Result::kNeedMore;
      }
      start_ += static_cast<const char*>(nl) - begin + 1;
      discarding_ = false;
      discarded_ = 0;
      endless_reported_ = false;
      continue;
    }
    if (nl == nullptr) {
      if (avail >= max_line_) {
        // No newline within the limit: the line is overlong whatever comes.
        discarding_ = true;
        discarded_ = avail;
        start_ = end_ = 0;
        return Result::kTooLong;
      }
      return Result::kNeedMore;
    }
    size_t len = static_cast<const char*>(nl) - begin;  // without LF
    start_ += len + 1;
    // LF alone counts as CRLF for the limit, so both spellings of one
    // command are accepted or refused alike.
    bool has_cr = len > 0 && begin[len - 1] == '\r';
    size_t content = has_cr ? len - 1 : len;
    if (content + 2 > max_line_) return Result::kTooLong;
    line = std::string_view(begin, content);
    return Result::kLine;
  }
}

}  // namespace popgate
