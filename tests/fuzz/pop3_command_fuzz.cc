// POP3 command parsing (pop3/pop3_command): ParseCommand and
// HasForbiddenBytes on one client line (the line reader has removed CRLF).
#include <strings.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pop3/pop3_command.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::Verb;

std::string_view NameOf(Verb v) {
  switch (v) {
    case Verb::kCapa:
      return "CAPA";
    case Verb::kUser:
      return "USER";
    case Verb::kPass:
      return "PASS";
    case Verb::kQuit:
      return "QUIT";
    case Verb::kAuth:
      return "AUTH";
    case Verb::kStls:
      return "STLS";
    case Verb::kNoop:
      return "NOOP";
    case Verb::kUnknown:
      return "";
  }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const popgate::Command cmd = popgate::ParseCommand(line);

  // The keyword is the line up to the first space, the argument everything
  // after it; both are views into the line itself.
  FUZZ_CHECK(cmd.keyword.data() == line.data());
  FUZZ_CHECK(cmd.keyword.find(' ') == std::string_view::npos);
  if (cmd.keyword.size() < line.size()) {
    FUZZ_CHECK(line[cmd.keyword.size()] == ' ');
    FUZZ_CHECK(cmd.arg.data() == line.data() + cmd.keyword.size() + 1);
    FUZZ_CHECK(cmd.arg.size() == line.size() - cmd.keyword.size() - 1);
  } else {
    FUZZ_CHECK(cmd.arg.empty());
  }
  // A known verb is exactly its keyword, in any case.
  const std::string_view name = NameOf(cmd.verb);
  if (cmd.verb != Verb::kUnknown) {
    FUZZ_CHECK(cmd.keyword.size() == name.size() &&
               strncasecmp(cmd.keyword.data(), name.data(), name.size()) == 0);
  } else {
    for (Verb v : {Verb::kCapa, Verb::kUser, Verb::kPass, Verb::kQuit,
                   Verb::kAuth, Verb::kStls, Verb::kNoop}) {
      const std::string_view n = NameOf(v);
      FUZZ_CHECK(!(cmd.keyword.size() == n.size() &&
                   strncasecmp(cmd.keyword.data(), n.data(), n.size()) == 0));
    }
  }

  // Forbidden: any control character but TAB, and DEL. In particular CR,
  // LF and NUL, which would let client bytes split a line popgate sends.
  bool forbidden = false;
  for (unsigned char c : line) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) forbidden = true;
  }
  FUZZ_CHECK(popgate::HasForbiddenBytes(line) == forbidden);
  return 0;
}
