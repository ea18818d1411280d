// Listening sockets: one per worker per configured address, bound with
// SO_REUSEPORT so the kernel spreads connections across workers.
#ifndef POPGATE_NET_LISTENER_H_
#define POPGATE_NET_LISTENER_H_

#include "absl/status/statusor.h"
#include "net/socket_address.h"
#include "base/unique_fd.h"

namespace popgate {

absl::StatusOr<UniqueFd> OpenListener(const SocketAddress& addr, int backlog);

}  // namespace popgate

#endif  // POPGATE_NET_LISTENER_H_
