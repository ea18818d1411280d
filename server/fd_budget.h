// How many proxied sessions the process's descriptor limit holds, and the
// start-up warning when [limits] max_connections asks for more: past that
// point a backend connect fails with EMFILE and the login gets
// -ERR [SYS/TEMP] after the client sent its password.
#ifndef POPGATE_SERVER_FD_BUDGET_H_
#define POPGATE_SERVER_FD_BUDGET_H_

#include <cstdint>
#include <optional>
#include <string>

namespace popgate {

// Descriptors kept for everything but the sessions' sockets: rings,
// listeners, the log, the splice pipe pool, the admin API, health checks,
// Redis, and sessions that end while their successors start.
inline constexpr uint64_t kFdReserve = 1024;

// Each proxied session holds a client and a backend socket.
uint64_t SessionsForFdLimit(uint64_t nofile);

// The JSON log line (event "fd_limit") when `max_connections` (0 = no
// limit) may need more descriptors than `nofile` allows; nullopt if it fits.
std::optional<std::string> FdLimitWarning(int max_connections, uint64_t nofile);

}  // namespace popgate

#endif  // POPGATE_SERVER_FD_BUDGET_H_
