// The one check for client bytes that popgate puts inside a line it sends
// itself (USER and PASS to a backend today; a future XCLIENT or AUTH line
// tomorrow). A value with CR or LF would end our line early and let the
// client append commands of its own (the "demo\r\nDELE 1" SASL password);
// NUL cuts the line short in many servers. Every such place calls
// CheckLineArgument: nothing is escaped or repaired, the value is refused.
#ifndef POPGATE_POP3_LINE_SAFETY_H_
#define POPGATE_POP3_LINE_SAFETY_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace popgate {

// RFC 2449: a command line is at most 255 octets including CRLF.
inline constexpr size_t kMaxCommandLine = 255;

// True if `value` has no CR, LF or NUL.
bool SafeForLine(std::string_view value);

// OK if "`keyword` `value`\r\n" is a single command line within
// kMaxCommandLine octets. The error says what is wrong (which byte class,
// or the length) and never contains the value: it may be a password.
absl::Status CheckLineArgument(std::string_view keyword,
                               std::string_view value);

}  // namespace popgate

#endif  // POPGATE_POP3_LINE_SAFETY_H_
