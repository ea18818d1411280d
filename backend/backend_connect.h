// Opening a POP3 connection to a backend: connect, an optional preamble (a
// PROXY protocol header), implicit TLS or STLS, and the +OK greeting. Shared
// by real logins (backend_login.h) and health checks (health_checker.h), so
// a check tests exactly the path a login takes.
#ifndef POPGATE_BACKEND_BACKEND_CONNECT_H_
#define POPGATE_BACKEND_BACKEND_CONNECT_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "forward/read_line.h"
#include "net/socket_address.h"
#include "pop3/line_reader.h"
#include "runtime/buffer_ring.h"
#include "runtime/ring.h"
#include "runtime/stream.h"
#include "runtime/task.h"
#include "tls/tls_context.h"

namespace popgate {

// RFC 2449: responses are at most 512 octets including CRLF.
inline constexpr size_t kMaxBackendResponse = 512;

// TLS towards the backend (mode kNone: plain).
struct BackendTlsParams {
  BackendTls mode = BackendTls::kNone;
  std::shared_ptr<const tls::ClientContext> ctx;
  std::string name;  // SNI and the name verified in the certificate
  BufferRing* buffers = nullptr;
  absl::Duration handshake_timeout = absl::Seconds(10);
};

struct BackendConnectParams {
  const SocketAddress* addr = nullptr;
  // Bounds connect, preamble, TLS handshake, greeting and STLS together.
  absl::Duration timeout = absl::Seconds(10);
  const BackendTlsParams* tls = nullptr;  // null = plain
  // Sent right after connect, before anything is read (a PROXY protocol v2
  // header); empty = nothing.
  std::string_view preamble;
  // Set to the socket while it is open (the worker cuts it at shutdown);
  // may be null.
  int* fd_slot = nullptr;
};

struct BackendConnection {
  bool ok = false;
  // The failure says the backend is not serving: connect refused, reset or
  // timed out, no greeting in time, a greeting that is not +OK. (A TLS
  // certificate that fails verification is a configuration problem, not
  // ill health: false.) Passive health marking counts these.
  bool health_failure = false;
  std::string error;  // for the log; names the step ("connect: ...")
  UniqueFd fd;
  std::unique_ptr<Stream> stream;      // plain or TLS; set when ok
  std::unique_ptr<LineReader> reader;  // holds what came after the greeting
  std::string greeting;                // the +OK line, without CRLF
};

Task<BackendConnection> ConnectBackend(Ring& ring,
                                       const BackendConnectParams& p);

// A LineStatus in words, for errors ("timeout", "connection closed"...).
const char* DescribeLineStatus(LineStatus status);

}  // namespace popgate

#endif  // POPGATE_BACKEND_BACKEND_CONNECT_H_
