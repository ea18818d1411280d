// systemd socket activation (sd_listen_fds(3)): the listening sockets a
// popgate.socket unit opened, passed as fds 3.. with LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES in the environment.
//
// Parsed here rather than through libsystemd: three environment variables
// and a fixed fd range (a protocol systemd documents as stable) do not
// justify a library dependency for every build; the same code then also
// works with any other launcher that speaks the protocol.
#ifndef POPGATE_SERVER_SOCKET_ACTIVATION_H_
#define POPGATE_SERVER_SOCKET_ACTIVATION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace popgate {

// When LISTEN_PID is this process and LISTEN_FDS is set: fds 3..3+n-1,
// made close-on-exec and owned by the result, and the three variables
// unset (a child must not think they are for it). Empty when the variables
// are absent or name another process. InvalidArgument for malformed values
// (the error says which variable).
absl::StatusOr<std::vector<UniqueFd>> TakeActivatedSockets();

}  // namespace popgate

#endif  // POPGATE_SERVER_SOCKET_ACTIVATION_H_
