// The one JSON string escaper every log line uses (RFC 8259).
#ifndef POPGATE_BASE_JSON_ESCAPE_H_
#define POPGATE_BASE_JSON_ESCAPE_H_

#include <string>
#include <string_view>

namespace popgate {

// JSON string escaping (RFC 8259); bytes >= 0x80 are written as \u00XX so
// the line stays ASCII whatever a client sent.
std::string JsonEscape(std::string_view s);

}  // namespace popgate

#endif  // POPGATE_BASE_JSON_ESCAPE_H_
