// Parsing of POP3 command lines in the AUTHORIZATION state.
#ifndef POPGATE_POP3_POP3_COMMAND_H_
#define POPGATE_POP3_POP3_COMMAND_H_

#include <string>
#include <string_view>

namespace popgate {

enum class Verb { kUnknown, kCapa, kUser, kPass, kQuit, kAuth, kStls, kNoop };

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view keyword;  // as sent
  std::string_view arg;      // everything after the first space (PASS may
                             // contain spaces, RFC 1939 section 7)
};

// Keywords are case-insensitive. The line has no CRLF.
Command ParseCommand(std::string_view line);

// True if `line` contains a NUL or another control character that no POP3
// command may carry (TAB excepted).
bool HasForbiddenBytes(std::string_view line);

}  // namespace popgate

#endif  // POPGATE_POP3_POP3_COMMAND_H_
