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
// address, a session id with other than [A-Za-z0-9+/=_.-] or longer than
// 64 bytes, a port 0, a TTL below 1, an empty field), so nothing a client
// sent can add a word to the line.
//
// What Dovecot 2.3 (checked against 2.3.19's pop3-login) does with it: the
// command is honoured only from login_trusted_networks; from anyone else
// the reply is "+OK You are not from trusted IP - ignoring", so a +OK alone
// does not prove the values were taken (hence: send only when CAPA offers
// XCLIENT; a trusted peer also sees "[XCLIENT]" at the start of the
// greeting). Keys are matched without case, words split on single spaces;
// one bad value gets "-ERR Invalid parameters" and changes nothing.
//   ADDR     net_addr2ip: the client IP it logs (rip=) and applies its
//            per-IP auth penalty and limits to; IPv6 is sent bare.
//   PORT     net_str2port (1..65535): the logged rport.
//   SESSION  the session id in its logs (session=<...>); one longer than
//            64 bytes is ignored silently, so we refuse those instead.
//   TTL      str_to_uint: the proxy TTL; when that Dovecot proxies further
//            it refuses once the TTL is down to 1 ("TTL reached zero -
//            proxies appear to be looping?") and passes TTL-1 on.
//   FORWARD  base64 forward fields (not sent by us).
//   DESTADDR, DESTPORT  our address as the client saw it: taken by newer
//            Dovecot versions as the local ip/port; 2.3's pop3-login skips
//            keys it does not know, so they are harmless there.
absl::StatusOr<std::string> FormatXclient(const XclientParams& p);

// True if one line of a CAPA answer offers XCLIENT ("XCLIENT", or
// "XCLIENT" followed by a space and arguments; case-insensitive).
bool CapaOffersXclient(std::string_view capa_line);

}  // namespace popgate

#endif  // POPGATE_POP3_XCLIENT_H_
