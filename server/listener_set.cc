#include "server/listener_set.h"

#include "absl/strings/str_cat.h"
#include "base/json_escape.h"
#include "net/listener.h"
#include "net/socket_address.h"

namespace popgate {

absl::StatusOr<ListenerSet> OpenListenerSet(const Config& config, int workers) {
  std::vector<SocketAddress> addrs;
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<SocketAddress> addr = ResolveHostPort(l.address);
    if (!addr.ok()) return addr.status();
    addrs.push_back(*addr);
  }
  // Another process on one of our addresses would share it with us without
  // a word (SO_REUSEPORT): refuse unless the operator asked for a takeover.
  // Before any socket of ours exists, or the check would find itself.
  for (size_t i = 0; !config.server.takeover_listeners && i < addrs.size();
       ++i) {
    absl::Status s =
        CheckNobodyListens(addrs[i], config.listeners[i].ipv6_only);
    if (!s.ok()) return s;
  }
  ListenerSet set;
  set.per_worker.resize(workers);
  for (size_t i = 0; i < addrs.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    for (int w = 0; w < workers; ++w) {
      absl::StatusOr<UniqueFd> fd = OpenListener(addrs[i], 4096, l.ipv6_only);
      if (!fd.ok()) return fd.status();
      set.per_worker[w].push_back(*std::move(fd));
    }
    absl::StrAppend(&set.listening_json, set.listening_json.empty() ? "" : ",",
                    "\"", JsonEscape(l.address), "\"");
  }
  return set;
}

}  // namespace popgate
