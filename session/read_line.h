// Reads one line from a Stream through a LineReader.
#ifndef POPGATE_SESSION_READ_LINE_H_
#define POPGATE_SESSION_READ_LINE_H_

#include <errno.h>

#include <string_view>

#include "absl/time/time.h"
#include "pop3/line_reader.h"
#include "runtime/stream.h"
#include "runtime/task.h"

namespace popgate {

enum class LineStatus { kLine, kTooLong, kEof, kTimeout, kError };

// On kLine, `line` points into `reader` until its next use. The timeout is
// per read, so a peer trickling bytes slower than it never hangs us for
// longer than one timeout per byte... which is why callers also bound the
// number of lines they accept.
inline Task<LineStatus> ReadLine(Stream& stream, LineReader& reader,
                                 std::string_view& line,
                                 absl::Duration timeout) {
  while (true) {
    switch (reader.Next(line)) {
      case LineReader::Result::kLine:
        co_return LineStatus::kLine;
      case LineReader::Result::kTooLong:
        co_return LineStatus::kTooLong;
      case LineReader::Result::kNeedMore:
        break;
    }
    std::span<char> space = reader.WritableSpace();
    int n = co_await stream.Read(space, timeout);
    if (n == 0) co_return LineStatus::kEof;
    if (n == -ECANCELED) co_return LineStatus::kTimeout;
    if (n < 0) co_return LineStatus::kError;
    reader.Commit(static_cast<size_t>(n));
  }
}

}  // namespace popgate

#endif  // POPGATE_SESSION_READ_LINE_H_
