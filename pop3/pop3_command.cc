#include "pop3/pop3_command.h"

#include <strings.h>

namespace popgate {

Command ParseCommand(std::string_view line) {
  Command cmd;
  size_t sp = line.find(' ');
  cmd.keyword = line.substr(0, sp);
  cmd.arg =
      sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  struct Entry {
    std::string_view name;
    Verb verb;
  };
  static constexpr Entry kVerbs[] = {
      {"CAPA", Verb::kCapa}, {"USER", Verb::kUser}, {"PASS", Verb::kPass},
      {"QUIT", Verb::kQuit}, {"AUTH", Verb::kAuth}, {"STLS", Verb::kStls},
      {"NOOP", Verb::kNoop},
  };
  for (const Entry& e : kVerbs) {
    if (cmd.keyword.size() == e.name.size() &&
        strncasecmp(cmd.keyword.data(), e.name.data(), e.name.size()) == 0) {
      cmd.verb = e.verb;
      break;
    }
  }
  return cmd;
}

bool HasForbiddenBytes(std::string_view line) {
  for (unsigned char c : line) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

}  // namespace popgate
