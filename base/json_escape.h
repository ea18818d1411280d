// The one JSON string escaper every log line uses (RFC 8259).
#ifndef POPGATE_BASE_JSON_ESCAPE_H_
#define POPGATE_BASE_JSON_ESCAPE_H_

#include <string>
#include <string_view>

namespace popgate {

// Appends `s` to `out`, JSON string escaped (RFC 8259); bytes >= 0x80 are
// written as \u00XX so the line stays ASCII whatever a client sent. Runs
// of bytes that need no escape are appended whole: a session's log line
// is formatted straight into its worker's log queue with this, with no
// string of its own per field.
void AppendJsonEscaped(std::string* out, std::string_view s);

// The same, as a new string.
std::string JsonEscape(std::string_view s);

}  // namespace popgate

#endif  // POPGATE_BASE_JSON_ESCAPE_H_
