// Logging in to the chosen backend: connect, greeting, USER, PASS.
#ifndef POPGATE_SESSION_BACKEND_LOGIN_H_
#define POPGATE_SESSION_BACKEND_LOGIN_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "runtime/buffer_ring.h"
#include "config/config.h"
#include "runtime/ring.h"
#include "net/socket_address.h"
#include "runtime/stream.h"
#include "runtime/task.h"
#include "tls/tls_context.h"
#include "base/unique_fd.h"

namespace popgate {

// TLS towards the backend (mode kNone: plain).
struct BackendTlsParams {
  BackendTls mode = BackendTls::kNone;
  std::shared_ptr<const tls::ClientContext> ctx;
  std::string name;  // SNI and the name verified in the certificate
  BufferRing* buffers = nullptr;
  absl::Duration handshake_timeout = absl::Seconds(10);
};

struct BackendLoginResult {
  enum class Outcome {
    kOk,           // logged in; `reply` is the backend's +OK line
    kRefused,      // the backend answered -ERR to USER or PASS; `reply` has it
    kUnavailable,  // connect/greeting failed or timed out; `error` says why
  };
  Outcome outcome = Outcome::kUnavailable;
  UniqueFd fd;
  // The byte stream to the backend (plain or TLS), set when kOk.
  std::unique_ptr<Stream> stream;
  std::string reply;     // without CRLF
  std::string error;     // for the log; never contains the password
  std::string leftover;  // bytes the backend sent after its reply
};

// `*fd_slot` is set to the backend socket while it is open, so the worker
// can cut it at shutdown. `connect_timeout` bounds connect, greeting, STLS
// and the USER reply; `auth_timeout` the PASS reply (backends delay failed
// logins on purpose, so this one is longer).
Task<BackendLoginResult> LoginToBackend(
    Ring& ring, const SocketAddress& addr, std::string_view user,
    std::string_view password, absl::Duration connect_timeout,
    absl::Duration auth_timeout, const BackendTlsParams& tls, int* fd_slot);

}  // namespace popgate

#endif  // POPGATE_SESSION_BACKEND_LOGIN_H_
