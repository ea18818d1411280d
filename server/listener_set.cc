#include "server/listener_set.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/json_escape.h"
#include "net/listener.h"
#include "net/socket_address.h"
#include "server/socket_activation.h"

namespace popgate {
namespace {

struct Inherited {
  UniqueFd fd;
  SocketAddress addr;
  bool ipv6_only = false;
  bool used = false;
};

// Address and port only (an IPv6 flow label or scope never differ between
// two binds of one config line).
bool SameAddress(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family() || a.port() != b.port()) return false;
  if (a.family() == AF_INET) {
    return memcmp(&reinterpret_cast<const sockaddr_in*>(a.get())->sin_addr,
                  &reinterpret_cast<const sockaddr_in*>(b.get())->sin_addr,
                  sizeof(in_addr)) == 0;
  }
  if (a.family() == AF_INET6) {
    return memcmp(&reinterpret_cast<const sockaddr_in6*>(a.get())->sin6_addr,
                  &reinterpret_cast<const sockaddr_in6*>(b.get())->sin6_addr,
                  sizeof(in6_addr)) == 0;
  }
  return false;
}

// A listening TCP socket's address and IPV6_V6ONLY; an error names `what`.
absl::StatusOr<Inherited> Inspect(UniqueFd fd, const std::string& what) {
  Inherited in;
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(type);
  getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len);
  len = sizeof(listening);
  getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  sockaddr_storage ss{};
  socklen_t ss_len = sizeof(ss);
  if (type != SOCK_STREAM || listening == 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &ss_len) != 0 ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " is not a listening TCP socket: a popgate.socket unit needs "
        "ListenStream= lines with the addresses of the config's listeners"));
  }
  in.addr =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), ss_len);
  if (ss.ss_family == AF_INET6) {
    int v6only = 0;
    len = sizeof(v6only);
    getsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    in.ipv6_only = v6only != 0;
  }
  in.fd = std::move(fd);
  return in;
}

// Two fds of one socket (sockfs gives every socket its own inode).
bool SameSocket(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

absl::StatusOr<UniqueFd> Dup(int fd) {
  UniqueFd d(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!d.valid()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "dup of a listening socket: ", strerror(errno),
        " (raise the open files limit, LimitNOFILE= under systemd)"));
  }
  return d;
}

}  // namespace

absl::StatusOr<ListenerSet> OpenListenerSet(const Config& config, int workers) {
  std::vector<SocketAddress> addrs;
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<SocketAddress> addr = ResolveHostPort(l.address);
    if (!addr.ok()) return addr.status();
    addrs.push_back(*addr);
  }
  ListenerSet set;
  std::vector<Inherited> inherited;
  // A failed hand-over: said again if we cannot open the sockets ourselves.
  std::string handover_error;
  absl::StatusOr<std::vector<UniqueFd>> activated = TakeActivatedSockets();
  if (!activated.ok()) return activated.status();
  if (!activated->empty()) {
    set.origin_json = ",\"sockets_from\":\"systemd\"";
    set.release_on_stop = true;
    for (size_t i = 0; i < activated->size(); ++i) {
      absl::StatusOr<Inherited> in = Inspect(
          std::move((*activated)[i]), absl::StrCat("LISTEN_FDS: fd ", 3 + i));
      if (!in.ok()) return in.status();
      inherited.push_back(*std::move(in));
    }
  }
  // Also under socket activation: a popgate serving the hand-over socket
  // (one started beside the unit during an upgrade) accepts on these very
  // sockets and must be told to stop.
  if (!config.server.handover_socket.empty()) {
    absl::StatusOr<HandoverClient> got =
        HandoverClient::Receive(config.server.handover_socket);
    if (got.ok()) {
      if (activated->empty()) {
        set.origin_json = absl::StrCat(
            ",\"sockets_from\":\"handover\",\"old_pid\":", got->old_pid());
        // Sockets systemd opened stay systemd's through any number of
        // hand-overs.
        set.release_on_stop = got->release_on_stop();
      } else {
        absl::StrAppend(&set.origin_json, ",\"old_pid\":", got->old_pid());
      }
      for (size_t i = 0; i < got->sockets().size(); ++i) {
        absl::StatusOr<Inherited> in =
            Inspect(std::move(got->sockets()[i]),
                    absl::StrCat("handed-over socket ", i));
        if (!in.ok()) return in.status();
        // The same socket as one systemd passed: keep one fd of it.
        const bool dup = std::any_of(
            inherited.begin(), inherited.end(), [&](const Inherited& o) {
              return SameSocket(o.fd.get(), in->fd.get());
            });
        if (!dup) inherited.push_back(*std::move(in));
      }
      got->sockets().clear();
      set.handover = *std::move(got);
    } else if (!absl::IsNotFound(got.status())) {
      handover_error = absl::StrCat("hand-over from the running popgate on ",
                                    config.server.handover_socket, " failed (",
                                    got.status().message(),
                                    "); the running process keeps serving");
      set.events.emplace_back(
          "handover_failed",
          absl::StrCat(",\"error\":\"", JsonEscape(handover_error), "\""));
    }
  }
  if (set.origin_json.empty()) set.origin_json = ",\"sockets_from\":\"opened\"";

  // Which inherited sockets serve which listener.
  std::vector<std::vector<size_t>> matches(addrs.size());
  for (size_t i = 0; i < addrs.size(); ++i) {
    const bool v6only = config.listeners[i].ipv6_only;
    for (size_t j = 0; j < inherited.size(); ++j) {
      Inherited& in = inherited[j];
      if (in.used || !SameAddress(in.addr, addrs[i])) continue;
      if (addrs[i].family() == AF_INET6 && in.ipv6_only != v6only) continue;
      in.used = true;
      matches[i].push_back(j);
    }
  }
  // Another process on one of our addresses would share it with us without
  // a word (SO_REUSEPORT): refuse unless the operator asked for a takeover.
  // Before any socket of ours exists, or the check would find itself.
  for (size_t i = 0; i < addrs.size(); ++i) {
    if (!matches[i].empty() || config.server.takeover_listeners) continue;
    absl::Status s =
        CheckNobodyListens(addrs[i], config.listeners[i].ipv6_only);
    if (!s.ok()) {
      if (handover_error.empty()) return s;
      return absl::Status(s.code(),
                          absl::StrCat(handover_error, "; ", s.message()));
    }
  }
  set.per_worker.resize(workers);
  for (size_t i = 0; i < addrs.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    const int index = static_cast<int>(i);
    if (matches[i].empty()) {
      for (int w = 0; w < workers; ++w) {
        absl::StatusOr<UniqueFd> fd =
            OpenListener(addrs[i], kListenBacklog, l.ipv6_only);
        if (!fd.ok()) return fd.status();
        absl::StatusOr<UniqueFd> keep = Dup(fd->get());
        if (!keep.ok()) return keep.status();
        set.sockets.push_back(*std::move(keep));
        set.per_worker[w].push_back({index, *std::move(fd)});
      }
    } else {
      // Every inherited socket must have a worker accepting on it: a
      // socket of a SO_REUSEPORT group that nobody accepts on keeps the
      // connections the kernel hashes to it for ever. More sockets than
      // workers: some workers take several; fewer (one systemd socket, or
      // an old process with fewer workers): workers share a socket.
      const size_t k = matches[i].size();
      const size_t m = static_cast<size_t>(workers);
      for (size_t s = 0; s < std::max(k, m); ++s) {
        const Inherited& in = inherited[matches[i][s % k]];
        absl::StatusOr<UniqueFd> fd = Dup(in.fd.get());
        if (!fd.ok()) return fd.status();
        set.per_worker[s % m].push_back({index, *std::move(fd)});
      }
      for (size_t j : matches[i]) {
        set.sockets.push_back(std::move(inherited[j].fd));
      }
    }
    absl::StrAppend(&set.listening_json, set.listening_json.empty() ? "" : ",",
                    "\"", JsonEscape(l.address), "\"");
  }
  for (const Inherited& in : inherited) {
    if (in.used) continue;
    // Closed with `inherited`: the new config has no listener there.
    set.events.emplace_back(
        "listener_closed",
        absl::StrCat(",\"address\":\"", JsonEscape(in.addr.ToString()),
                     "\",\"reason\":\"no listener in the config has this "
                     "address any more\""));
  }
  return set;
}

}  // namespace popgate
