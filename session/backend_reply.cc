#include "session/backend_reply.h"

#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// The text after "-ERR" and its spaces.
std::string_view RefusalText(std::string_view backend_line) {
  std::string_view rest = backend_line;
  if (rest.starts_with("-ERR")) rest.remove_prefix(4);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return rest;
}

}  // namespace

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(s[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string RefusalReply(std::string_view backend_line) {
  std::string text;
  for (char c : RefusalText(backend_line)) {
    text += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  if (!text.empty() && text.front() == '[') {
    return absl::StrCat("-ERR ", text, "\r\n");
  }
  if (text.empty()) text = "Authentication failed.";
  return absl::StrCat("-ERR [AUTH] ", text, "\r\n");
}

bool IsTemporaryRefusal(std::string_view backend_line) {
  std::string_view rest = RefusalText(backend_line);
  return StartsWithIgnoreCase(rest, "[IN-USE]") ||
         StartsWithIgnoreCase(rest, "[SYS/TEMP]");
}

std::string LoggableReply(std::string_view backend_line) {
  std::string out(backend_line.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

}  // namespace popgate
