// The frame every log line popgate writes starts with, made in one place:
//   {"time":"2026-12-02T13:25:17.042Z","level":"info","event":"session"
// then the event's own fields, then "}\n". Operators' log queries (and the
// syslog/journald outputs, which read the level and event back from the
// line) rely on these three keys coming first, in this order.
#ifndef POPGATE_BASE_LOG_LINE_H_
#define POPGATE_BASE_LOG_LINE_H_

#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace popgate {

enum class LogLevel { kInfo, kWarning, kError };

// "info", "warning", "error".
std::string_view LogLevelName(LogLevel level);

// RFC 3339, UTC, milliseconds: "2026-12-02T13:25:17.042Z".
std::string FormatLogTime(absl::Time t);
void AppendLogTime(std::string* out, absl::Time t);

// `{"time":...,"level":...,"event":"EVENT"` without the closing brace, for
// callers that append their fields. `event` is one of popgate's own fixed
// names (docs/logging.md), never client text: it is not escaped.
std::string LogFrame(LogLevel level, std::string_view event, absl::Time t);
// The same, appended to `out` (a line formatted in place, as the session
// line is into its worker's log queue).
void AppendLogFrame(std::string* out, LogLevel level, std::string_view event,
                    absl::Time t);

// A whole line: the frame, `fields` (empty, or starting with ','; already
// JSON), "}\n".
std::string LogLine(LogLevel level, std::string_view event,
                    std::string_view fields, absl::Time t = absl::Now());

}  // namespace popgate

#endif  // POPGATE_BASE_LOG_LINE_H_
