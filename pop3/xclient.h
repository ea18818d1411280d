// Dovecot's POP3 XCLIENT command: a trusted proxy (the backend's
// login_trusted_networks) tells the backend the real client's address,
// port, session id and the proxy TTL before logging in. Backends offer it
// in CAPA only to trusted peers; popgate sends it only when offered.
#ifndef POPGATE_POP3_XCLIENT_H_
#define POPGATE_POP3_XCLIENT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace popgate {

struct XclientParams {
  std::string addr;  // the client's IP, numeric ("192.0.2.7", "2001:db8::1")
  uint16_t port = 0;
  std::string session;  // our session id
  int ttl = 5;          // proxy hops left; the backend refuses at 0 (loops)
  std::string dest_addr;  // the address the client connected to (ours)
  uint16_t dest_port = 0;
};

// "XCLIENT ADDR=... PORT=... SESSION=... TTL=... DESTADDR=... DESTPORT=...
// \r\n". Refuses values that are not what they claim (a non-numeric
// address, a session id with other than [A-Za-z0-9+/=_.-], an empty
// field), so nothing a client sent can add a word to the line.
absl::StatusOr<std::string> FormatXclient(const XclientParams& p);

// True if one line of a CAPA answer offers XCLIENT ("XCLIENT", or
// "XCLIENT" followed by a space and arguments; case-insensitive).
bool CapaOffersXclient(std::string_view capa_line);

}  // namespace popgate

#endif  // POPGATE_POP3_XCLIENT_H_
