// Forwarding after login when either side speaks TLS: bytes are decrypted
// and re-encrypted in user space, a chunk (up to one 16 KB record) at a
// time. Same contract as ForwardSplice: half-close is passed on, an error
// cuts both sides, the client drains after the backend's end, nothing is
// injected, a slow reader stalls its writer.
#ifndef POPGATE_FORWARD_FORWARD_COPY_H_
#define POPGATE_FORWARD_FORWARD_COPY_H_

#include "forward/forwarder.h"
#include "runtime/ring.h"
#include "runtime/stream.h"
#include "runtime/task.h"

namespace popgate {

Task<ForwardStats> ForwardCopy(Ring& ring, Stream& client, Stream& backend,
                               const ForwardOptions& options);

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_COPY_H_
