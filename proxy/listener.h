// Listening sockets: one per worker per configured address, bound with
// SO_REUSEPORT so the kernel spreads connections across workers.
#ifndef POPGATE_PROXY_LISTENER_H_
#define POPGATE_PROXY_LISTENER_H_

#include "absl/status/statusor.h"
#include "proxy/socket_address.h"
#include "proxy/unique_fd.h"

namespace popgate {

absl::StatusOr<UniqueFd> OpenListener(const SocketAddress& addr, int backlog);

}  // namespace popgate

#endif  // POPGATE_PROXY_LISTENER_H_
