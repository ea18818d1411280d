// The POP3 listening sockets of one process, made at start before anything
// else runs (so a bad or busy address fails at once). They come from, in
// this order of preference:
//   - systemd socket activation (LISTEN_FDS: fds 3..),
//   - the running popgate, by hand-over (`[server] handover_socket`),
//   - or are opened here, one SO_REUSEPORT socket per listener per worker.
// Inherited sockets are matched to config listeners by local address (and
// IPV6_V6ONLY); a listener none matches is opened fresh, an inherited
// socket no listener wants is closed.
#ifndef POPGATE_SERVER_LISTENER_SET_H_
#define POPGATE_SERVER_LISTENER_SET_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "server/handover.h"

namespace popgate {

// A socket a worker accepts on, for config.listeners[listener_index].
struct ListenFd {
  int listener_index = 0;
  UniqueFd fd;
};

struct ListenerSet {
  // per_worker[w]: what worker w accepts on (at least one socket per
  // listener; several when more sockets than workers were inherited).
  std::vector<std::vector<ListenFd>> per_worker;
  // One fd per distinct socket (what a later hand-over passes on).
  std::vector<UniqueFd> sockets;
  // The JSON array body for the "listening" event: "\"a\",\"b\"".
  std::string listening_json;
  // Fields for the "listening" event: where the sockets came from.
  std::string origin_json;
  // systemd holds the sockets: a stop must leave them listening.
  bool release_on_stop = false;
  // A hand-over in progress: Confirm() once the workers accept.
  std::optional<HandoverClient> handover;
  // Events for the log once it runs: (event, JSON fields).
  std::vector<std::pair<std::string, std::string>> events;
};

// Unless `server.takeover_listeners` is set, refuses (FailedPrecondition,
// naming the address) to open a socket where another process already
// listens.
absl::StatusOr<ListenerSet> OpenListenerSet(const Config& config, int workers);

}  // namespace popgate

#endif  // POPGATE_SERVER_LISTENER_SET_H_
