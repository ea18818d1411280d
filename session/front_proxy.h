// The front load balancer's PROXY header (listener proxy_protocol = true):
// who the client really is.
#ifndef POPGATE_SESSION_FRONT_PROXY_H_
#define POPGATE_SESSION_FRONT_PROXY_H_

#include "runtime/task.h"

namespace popgate {

struct SessionState;

// Refuses a source outside the listener's proxy_trusted_networks
// (kProxyUntrusted), then reads the v1 or v2 header within
// [server] proxy_protocol_timeout (and the login deadline), taking exactly
// its bytes from the socket (whatever follows it, a TLS ClientHello or
// pipelined POP3, stays in the stream). A missing, malformed, truncated or
// late header is kProxyHeaderError. On success the header's source is the
// session's client from here on: s.peer, s.rec.client, s.trusted_client,
// s.front_dst (for client_identity). A LOCAL command (the balancer's own
// health check) keeps the socket's addresses and sets s.front_local.
// False = close at once, without a word (s.rec.result and detail set).
// Runs before anything else, the implicit-TLS handshake included.
Task<bool> ReadFrontProxy(SessionState& s);

}  // namespace popgate

#endif  // POPGATE_SESSION_FRONT_PROXY_H_
