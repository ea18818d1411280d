#include "server/fd_budget.h"

#include "absl/strings/str_cat.h"
#include "base/log_line.h"

namespace popgate {

uint64_t SessionsForFdLimit(uint64_t nofile) {
  return nofile > kFdReserve ? (nofile - kFdReserve) / 2 : 0;
}

std::optional<std::string> FdLimitWarning(int max_connections,
                                          uint64_t nofile) {
  const uint64_t fit = SessionsForFdLimit(nofile);
  if (max_connections > 0 && static_cast<uint64_t>(max_connections) <= fit) {
    return std::nullopt;
  }
  const std::string asked = max_connections > 0
                                ? absl::StrCat("is ", max_connections)
                                : std::string("is 0 (no limit)");
  return LogLine(
      LogLevel::kWarning, "fd_limit",
      absl::StrCat(",\"nofile\":", nofile, ",\"max_connections\":",
                   max_connections, ",\"sessions_that_fit\":", fit,
                   ",\"warning\":\"the descriptor limit (RLIMIT_NOFILE ",
                   nofile, ") holds about ", fit,
                   " proxied sessions (two sockets each, ", kFdReserve,
                   " kept for the rest) and [limits] max_connections ", asked,
                   ": beyond that, backend connects fail with EMFILE and "
                   "those logins get -ERR [SYS/TEMP]. Raise the limit (systemd "
                   "LimitNOFILE=, ulimit -n) or lower max_connections\""));
}

}  // namespace popgate
