#include "base/log_line.h"

#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// absl here predates its std::string_view alias: StrCat takes its own.
absl::string_view AV(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "error";
}

std::string FormatLogTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string LogFrame(LogLevel level, std::string_view event, absl::Time t) {
  return absl::StrCat("{\"time\":\"", FormatLogTime(t), "\",\"level\":\"",
                      AV(LogLevelName(level)), "\",\"event\":\"", AV(event),
                      "\"");
}

std::string LogLine(LogLevel level, std::string_view event,
                    std::string_view fields, absl::Time t) {
  std::string line = LogFrame(level, event, t);
  absl::StrAppend(&line, AV(fields), "}\n");
  return line;
}

}  // namespace popgate
