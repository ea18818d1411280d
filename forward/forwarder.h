// Forwarding after login between two plain sockets: IORING_OP_SPLICE
// through one pipe per direction, so mail bytes never enter user space.
#ifndef POPGATE_FORWARD_FORWARDER_H_
#define POPGATE_FORWARD_FORWARDER_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate {

struct ForwardStats {
  uint64_t client_to_backend = 0;
  uint64_t backend_to_client = 0;
  // "closed" (both sides finished), or what broke first: "client_error",
  // "backend_error", "pipe_error", "idle_timeout".
  std::string end = "closed";
};

// Returns when both directions have ended. A FIN from one side becomes
// shutdown(SHUT_WR) towards the other (half-close); an error on either side
// cuts both. Nothing is ever injected: if the client vanishes the backend
// just sees its connection close, so DELE marks are discarded (RFC 1939).
// Backpressure: each direction reads again only after its pipe has drained
// to the other side. Pipes come from `pool` only while bytes are in flight.
// `idle_timeout`: no byte either way for this long ends the session.
// `client_ktls`: the client's TLS was handed to the kernel (TlsStream::
// HandOffToKernel): its close_notify counts as EOF and it gets one before
// our FIN.
// `buffers` (may be null): the worker's provided receive buffers, used for
// the short lines between bursts.
Task<ForwardStats> ForwardSplice(Ring& ring, PipePool& pool,
                                 BufferRing* buffers, int client_fd,
                                 int backend_fd, absl::Duration idle_timeout,
                                 bool client_ktls = false);

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARDER_H_
