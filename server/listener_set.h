// The POP3 listening sockets of one process: opened at start, before
// anything else runs, so a bad or busy address fails at once.
#ifndef POPGATE_SERVER_LISTENER_SET_H_
#define POPGATE_SERVER_LISTENER_SET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "config/config.h"

namespace popgate {

struct ListenerSet {
  // per_worker[w][i]: worker w's socket for config.listeners[i].
  std::vector<std::vector<UniqueFd>> per_worker;
  // The JSON array body for the "listening" event: "\"a\",\"b\"".
  std::string listening_json;
};

// One SO_REUSEPORT socket per listener per worker. Unless
// `server.takeover_listeners` is set, refuses (FailedPrecondition, naming
// the address) when another process already listens on one of them.
absl::StatusOr<ListenerSet> OpenListenerSet(const Config& config, int workers);

}  // namespace popgate

#endif  // POPGATE_SERVER_LISTENER_SET_H_
