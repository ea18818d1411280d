// Zero-downtime upgrade: the running process hands its listening sockets
// to a new one over a unix socket (`[server] handover_socket`), as
// HAProxy's `expose-fd listeners` does. The sockets stay open the whole
// time, so no connection waiting in an accept queue is lost.
//
// The conversation (SOCK_SEQPACKET: every message arrives whole, with the
// fd it carries; same-uid peers only, checked with SO_PEERCRED):
//   new -> old  "popgate-handover 1 hello"
//   old -> new  "popgate-handover 1 fds N pid P release R"
//                (R = 1: systemd holds the sockets too, see ListenerSet)
//   old -> new  N x "fd I" carrying one listening socket (SCM_RIGHTS)
//   new -> old  "taken"     (the new process accepts on every socket)
//   old -> new  "bye"       (the old one stops accepting and drains)
// A peer that does not speak within the time limits below is dropped and
// the old process goes on serving, as after any other failure.
#ifndef POPGATE_SERVER_HANDOVER_H_
#define POPGATE_SERVER_HANDOVER_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"

namespace popgate {

// Each step of the conversation (hello, each fd, "taken" after the fds,
// "bye") must happen within this long.
inline constexpr absl::Duration kHandoverStepTimeout = absl::Seconds(3);
// The new process's start-up between receiving the fds and "taken"
// (workers, health checker, admin API).
inline constexpr absl::Duration kHandoverTakeTimeout = absl::Seconds(10);

// The new process's side.
class HandoverClient {
 public:
  // Connects to `path` and receives the listening sockets. NotFound when
  // no process serves that path (no socket file, or nobody listening on
  // it): the caller opens its own sockets. Any other error: the hand-over
  // failed and the old process keeps serving.
  static absl::StatusOr<HandoverClient> Receive(const std::string& path);

  std::vector<UniqueFd>& sockets() { return sockets_; }
  pid_t old_pid() const { return old_pid_; }
  // The old process had its sockets from systemd: a stop must leave them
  // listening.
  bool release_on_stop() const { return release_on_stop_; }
  // Tells the old process its sockets are taken (call once this process
  // accepts on all of them) and waits for its "bye".
  absl::Status Confirm();

 private:
  UniqueFd conn_;
  std::vector<UniqueFd> sockets_;
  pid_t old_pid_ = 0;
  bool release_on_stop_ = false;
};

// The running process's side: a thread of its own (never a worker's)
// serving one connection at a time.
class HandoverServer {
 public:
  // `sockets`: one fd (a dup) per listening socket. `on_taken(pid)` runs on
  // the server's thread once a new process confirmed; the server then
  // serves no one any more. `log(event, fields)`: an event to log, its
  // JSON fields (each starting with ',').
  HandoverServer(std::string path, std::vector<UniqueFd> sockets,
                 bool release_on_stop, std::function<void(pid_t)> on_taken,
                 std::function<void(std::string, std::string)> log);
  ~HandoverServer();
  HandoverServer(const HandoverServer&) = delete;
  HandoverServer& operator=(const HandoverServer&) = delete;

  // Binds `path` (mode 0600: a temporary name, then renamed over the path,
  // so a new process replaces the old one's socket atomically) and starts
  // the thread.
  absl::Status Start();
  // Ends the thread (a conversation in progress is dropped) and closes the
  // fds; removes the socket file unless another process has replaced it.
  void Stop();
  // Thread-safe: fds went to some peer (even one that never confirmed):
  // it may hold the sockets, so a stop must not shut them down.
  bool sockets_sent() const { return sent_.load(); }

 private:
  void Run();
  // One connection; true when the peer took the sockets.
  bool Serve(int conn);

  std::string path_;
  std::vector<UniqueFd> sockets_;
  bool release_on_stop_;
  std::function<void(pid_t)> on_taken_;
  std::function<void(std::string, std::string)> log_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd: Stop() wakes the thread's poll
  ino_t inode_ = 0;   // of the socket file we created
  std::thread thread_;
  std::atomic<bool> sent_{false};
};

}  // namespace popgate

#endif  // POPGATE_SERVER_HANDOVER_H_
