#include "pop3/line_safety.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace popgate {

bool SafeForLine(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) ==
         std::string_view::npos;
}

absl::Status CheckLineArgument(std::string_view keyword,
                               std::string_view value) {
  if (!SafeForLine(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(keyword), " argument contains CR, LF or NUL"));
  }
  // keyword SP value CRLF
  const size_t line = keyword.size() + 1 + value.size() + 2;
  if (line > kMaxCommandLine) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(keyword), " line would be ", line,
                     " octets, more than ", kMaxCommandLine));
  }
  return absl::OkStatus();
}

}  // namespace popgate
