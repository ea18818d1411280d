// Reads one line from a Stream through a LineReader.
#ifndef POPGATE_FORWARD_READ_LINE_H_
#define POPGATE_FORWARD_READ_LINE_H_

#include <errno.h>

#include <algorithm>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "pop3/line_reader.h"
#include "runtime/stream.h"
#include "runtime/task.h"

namespace popgate {

// kEndless: an overlong line went on without a newline past the reader's
// discard bound (LineReader's max_discard): the peer is not speaking POP3,
// close.
enum class LineStatus { kLine, kTooLong, kEndless, kEof, kTimeout, kError };

// On kLine, `line` points into `reader` until its next use. Each read waits
// at most `idle`, and none goes past `deadline`: a peer trickling one byte
// per `idle` is still cut at the deadline (a per-read timer alone restarts
// on every byte). kTimeout says either ran out; the caller compares
// absl::Now() with its deadline to tell which.
inline Task<LineStatus> ReadLine(Stream& stream, LineReader& reader,
                                 std::string_view& line, absl::Duration idle,
                                 absl::Time deadline) {
  while (true) {
    switch (reader.Next(line)) {
      case LineReader::Result::kLine:
        co_return LineStatus::kLine;
      case LineReader::Result::kTooLong:
        co_return LineStatus::kTooLong;
      case LineReader::Result::kEndless:
        co_return LineStatus::kEndless;
      case LineReader::Result::kNeedMore:
        break;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) co_return LineStatus::kTimeout;
    std::span<char> space = reader.WritableSpace();
    int n = co_await stream.Read(space, std::min(idle, left));
    if (n == 0) co_return LineStatus::kEof;
    if (n == -ECANCELED) co_return LineStatus::kTimeout;
    if (n < 0) co_return LineStatus::kError;
    reader.Commit(static_cast<size_t>(n));
  }
}

// The same with a per-read timeout only, for callers bounded otherwise (the
// backend login: a few lines from a server the operator chose).
inline Task<LineStatus> ReadLine(Stream& stream, LineReader& reader,
                                 std::string_view& line,
                                 absl::Duration timeout) {
  return ReadLine(stream, reader, line, timeout, absl::InfiniteFuture());
}

}  // namespace popgate

#endif  // POPGATE_FORWARD_READ_LINE_H_
