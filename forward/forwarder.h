// Forwarding after login between two plain sockets: IORING_OP_SPLICE
// through one pipe per direction, so mail bytes never enter user space.
#ifndef POPGATE_FORWARD_FORWARDER_H_
#define POPGATE_FORWARD_FORWARDER_H_

#include <cstdint>

#include "absl/time/time.h"
#include "forward/forward_end.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate {

struct ForwardStats {
  uint64_t client_to_backend = 0;
  uint64_t backend_to_client = 0;
  // Which side ended the session and how (forward/forward_end.h).
  ForwardEnd end = ForwardEnd::kProxyError;
};

// The settings one forwarded session runs with (server.* in the config).
struct ForwardOptions {
  // forward_idle_timeout: no byte either way for this long ends the session.
  absl::Duration idle_timeout = absl::Minutes(30);
  // client_drain_timeout: once the backend has ended (EOF or reset), the
  // client gets at most this long to read what was sent and close; then
  // both sides are closed (with a reset if the client left bytes unread, so
  // the kernel frees them at once).
  absl::Duration client_drain_timeout = absl::Seconds(10);
  // forward_socket_buffer (bytes): once forwarding starts, what a client
  // that stops reading can make popgate hold in kernel memory is about
  // this much in the client's send queue (TCP_NOTSENT_LOWAT) plus the
  // backend's receive buffer (SO_RCVBUF; the kernel doubles the value for
  // its bookkeeping and caps it at net.core.rmem_max). See
  // BoundSocketBuffers. 0: keep the kernel's autotuning.
  int socket_buffer = 0;
  // What the client sent before forwarding started and the session already
  // passed on (commands pipelined behind PASS): feed them so that a QUIT
  // among them counts (see QuitTracker).
  QuitTracker client_lines;
};

// Sets forward_socket_buffer on one forwarded socket (both directions; see
// the .cc for which option on which side). No-op for `bytes` <= 0. Best
// effort: a kernel that refuses keeps its own sizes.
enum class SocketSide { kClient, kBackend };
void BoundSocketBuffers(int fd, int bytes, SocketSide side);

// Returns when both directions have ended. A FIN from one side becomes
// shutdown(SHUT_WR) towards the other (half-close); an error on either side
// cuts both; after the backend's end the client gets client_drain_timeout.
// Nothing is ever injected: if the client vanishes the backend just sees
// its connection close, so DELE marks are discarded (RFC 1939).
// Backpressure: each direction reads again only after its pipe has drained
// to the other side. Pipes come from `pool` only while bytes are in flight.
// `client_ktls`: the client's TLS was handed to the kernel
// (Stream::HandOffToKernel): its close_notify counts as EOF and it gets one
// before our FIN.
// `buffers` (may be null): the worker's provided receive buffers, used for
// the short lines between bursts and for every client byte: the client's
// direction (commands) is never spliced, so the QUIT check sees it all;
// the backend's bursts (mail) are, and are never looked at.
Task<ForwardStats> ForwardSplice(Ring& ring, PipePool& pool,
                                 BufferRing* buffers, int client_fd,
                                 int backend_fd, const ForwardOptions& options,
                                 bool client_ktls = false);

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARDER_H_
