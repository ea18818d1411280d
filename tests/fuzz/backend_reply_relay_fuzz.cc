// A backend's refusal of a login as popgate relays it to the client
// (session/backend_reply): RefusalReply, IsTemporaryRefusal and the log's
// LoggableReply, on any bytes (backend_login hands over one line without
// its CRLF; this target does not rely on that).
//
// Properties: the relayed reply is exactly one line, "-ERR " ... CRLF, with
// no other CR, LF or NUL; a response code the backend gave ("[...") is kept
// as its first word, else [AUTH] is added; a temporary refusal's reply
// starts with its [IN-USE] or [SYS/TEMP]; the log's copy is at most 200
// bytes with no control byte.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "session/backend_reply.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const std::string reply = popgate::RefusalReply(line);

  FUZZ_CHECK(reply.starts_with("-ERR "));
  FUZZ_CHECK(reply.ends_with("\r\n"));
  const std::string_view body(reply.data(), reply.size() - 2);
  FUZZ_CHECK(body.find_first_of(std::string_view("\r\n\0", 3)) ==
             std::string_view::npos);

  // The backend's text, as the client sees it.
  std::string_view text = line;
  if (text.starts_with("-ERR")) text.remove_prefix(4);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  const std::string_view relayed = body.substr(5);
  if (!text.empty() && text.front() == '[') {
    FUZZ_CHECK(relayed.size() == text.size());
  } else {
    FUZZ_CHECK(relayed.starts_with("[AUTH] "));
  }

  if (popgate::IsTemporaryRefusal(line)) {
    FUZZ_CHECK(popgate::StartsWithIgnoreCase(relayed, "[IN-USE]") ||
               popgate::StartsWithIgnoreCase(relayed, "[SYS/TEMP]"));
  }

  const std::string logged = popgate::LoggableReply(line);
  FUZZ_CHECK(logged.size() <= 200 && logged.size() <= line.size());
  for (char c : logged) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);
  return 0;
}
