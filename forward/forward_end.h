// How a forwarded session ended: one value, named for the log, saying which
// side ended it and how. The session turns it into its own result.
#ifndef POPGATE_FORWARD_FORWARD_END_H_
#define POPGATE_FORWARD_FORWARD_END_H_

#include <string_view>

namespace popgate {

enum class ForwardEnd {
  kQuit,           // the client sent QUIT, the backend answered and closed
  kClientClosed,   // the client closed first, without QUIT (DELE discarded)
  kClientReset,    // the client reset or its socket failed
  kBackendClosed,  // the backend closed without the client's QUIT (it died
                   // mid-response, or ended the session on its own)
  kBackendReset,   // the backend reset or its socket failed
  kIdleTimeout,    // no byte either way for forward_idle_timeout
  kProxyError,     // our side failed (no pipe, kernel TLS error)
};

// Stable names for logs and metrics ("quit", "client_closed", ...).
constexpr std::string_view ForwardEndName(ForwardEnd e) {
  switch (e) {
    case ForwardEnd::kQuit:
      return "quit";
    case ForwardEnd::kClientClosed:
      return "client_closed";
    case ForwardEnd::kClientReset:
      return "client_reset";
    case ForwardEnd::kBackendClosed:
      return "backend_closed";
    case ForwardEnd::kBackendReset:
      return "backend_reset";
    case ForwardEnd::kIdleTimeout:
      return "idle_timeout";
    case ForwardEnd::kProxyError:
      return "proxy_error";
  }
  return "proxy_error";
}

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_END_H_
