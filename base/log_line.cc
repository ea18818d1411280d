#include "base/log_line.h"

#include <string.h>

#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/absl_view.h"

namespace popgate {

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

namespace {

// 1000-01-01 .. 9999-12-31 as Unix seconds: the range the fast path
// formats (four-digit years, which absl does not pad below 1000); anything
// else goes through absl.
constexpr int64_t kMinSeconds = -30610224000;
constexpr int64_t kMaxSeconds = 253402300799;

// Days since 1970-01-01 to a proleptic Gregorian date (the civil_from_days
// algorithm: eras of 400 years, March-based years).
void CivilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

void PutDigits(char* out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

// "YYYY-MM-DDTHH:MM:SS" of one second, remembered per thread: every line
// of a second shares it, and absl::FormatTime (a format-string walk and a
// time-zone lookup) cost about as much as the rest of a session's log
// line.
struct SecondPrefix {
  int64_t second = INT64_MIN;
  char text[19];
};
thread_local SecondPrefix t_prefix;

}  // namespace

void AppendLogTime(std::string* out, absl::Time t) {
  const int64_t ms = absl::ToUnixMillis(t);  // rounds toward -infinity
  const int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  if (sec < kMinSeconds || sec > kMaxSeconds) {
    out->append(
        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
    return;
  }
  SecondPrefix& p = t_prefix;
  if (p.second != sec) {
    const int64_t days = sec >= 0 ? sec / 86400 : (sec - 86399) / 86400;
    const unsigned secs_of_day = static_cast<unsigned>(sec - days * 86400);
    int64_t y;
    unsigned m, d;
    CivilFromDays(days, y, m, d);
    PutDigits(p.text, static_cast<unsigned>(y), 4);
    p.text[4] = '-';
    PutDigits(p.text + 5, m, 2);
    p.text[7] = '-';
    PutDigits(p.text + 8, d, 2);
    p.text[10] = 'T';
    PutDigits(p.text + 11, secs_of_day / 3600, 2);
    p.text[13] = ':';
    PutDigits(p.text + 14, secs_of_day / 60 % 60, 2);
    p.text[16] = ':';
    PutDigits(p.text + 17, secs_of_day % 60, 2);
    p.second = sec;
  }
  char text[sizeof(p.text) + 5];
  memcpy(text, p.text, sizeof(p.text));
  char* frac = text + sizeof(p.text);
  frac[0] = '.';
  PutDigits(frac + 1, static_cast<unsigned>(ms - sec * 1000), 3);
  frac[4] = 'Z';
  out->append(text, sizeof(text));
}

std::string FormatLogTime(absl::Time t) {
  std::string out;
  AppendLogTime(&out, t);
  return out;
}

void AppendLogFrame(std::string* out, LogLevel level, std::string_view event,
                    absl::Time t) {
  out->append("{\"time\":\"");
  AppendLogTime(out, t);
  absl::StrAppend(out, "\",\"level\":\"", AbslView(LogLevelName(level)),
                  "\",\"event\":\"", AbslView(event), "\"");
}

std::string LogFrame(LogLevel level, std::string_view event, absl::Time t) {
  std::string out;
  AppendLogFrame(&out, level, event, t);
  return out;
}

std::string LogLine(LogLevel level, std::string_view event,
                    std::string_view fields, absl::Time t) {
  std::string line = LogFrame(level, event, t);
  absl::StrAppend(&line, AbslView(fields), "}\n");
  return line;
}

}  // namespace popgate
