// What a client is told, and what the log says, when a backend refuses a
// login: pure functions on the backend's reply line (no I/O), so that the
// rewriting can be tested and fuzzed on its own.
#ifndef POPGATE_SESSION_BACKEND_REPLY_H_
#define POPGATE_SESSION_BACKEND_REPLY_H_

#include <string>
#include <string_view>

namespace popgate {

// ASCII case-insensitive, as POP3 keywords and response codes are.
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);

// A backend's -ERR, relayed with a response code the client can act on:
// the backend's own code ([IN-USE], [SYS/TEMP]...) if it gave one, else
// [AUTH]. Always exactly one line ending in CRLF: control bytes in the
// backend's text (CR, LF, NUL...) are blanked.
std::string RefusalReply(std::string_view backend_line);

// RFC 2449/3206: [IN-USE] (the mailbox is locked by another session) and
// [SYS/TEMP] (try again later) say nothing about the credentials.
bool IsTemporaryRefusal(std::string_view backend_line);

// For the log: a backend's line, at most 200 bytes, with control bytes
// blanked (it is escaped again as JSON; this keeps it one readable line).
std::string LoggableReply(std::string_view backend_line);

}  // namespace popgate

#endif  // POPGATE_SESSION_BACKEND_REPLY_H_
