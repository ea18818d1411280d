// How many proxied sessions the process's descriptor limit holds, the
// process-wide count that keeps the workers within it, and the start-up
// warning when [limits] max_connections asks for more.
//
// Without the bound, a process at its descriptor limit still accepts (the
// client socket may fit) and then fails the backend socket() with EMFILE:
// the login gets -ERR [SYS/TEMP] after the client sent its password. With
// it, the workers stop accepting while the process holds as many sessions
// as fit, and new connections wait in the kernel's listen backlog until
// sessions end (as HAProxy does at its maxconn, which it also derives
// from the descriptor limit).
#ifndef POPGATE_SERVER_FD_BUDGET_H_
#define POPGATE_SERVER_FD_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace popgate {

// Idle splice pipes each worker's pool keeps for reuse (two descriptors
// each).
inline constexpr size_t kIdlePipesPerWorker = 64;

// What the process holds besides its sessions' sockets, from its config.
struct FdOverhead {
  int workers = 1;
  uint64_t listening_sockets = 0;  // every worker's, all listeners
  uint64_t backends = 0;           // a health check holds one connection each
  uint64_t admin_connections = 0;  // the admin API's bound (0: not on)
};

// Descriptors kept for everything but the sessions' sockets: 64 for the
// process (stdio, the log, the health checker's ring, the hand-over
// socket, files read at a reload); per worker its ring, its eventfd, its
// Redis connection, one connection accepted past the bound and its idle
// pipes; the listening sockets, one health check per backend and the
// admin API's connections. At most half of `nofile`, so that a small
// limit still serves.
uint64_t FdReserve(uint64_t nofile, const FdOverhead& o);

// Each proxied session holds a client and a backend socket.
uint64_t SessionsForFdLimit(uint64_t nofile, const FdOverhead& o);

// The JSON log line (event "fd_limit") when `max_connections` (0 = no
// limit) may need more descriptors than `nofile` allows; nullopt if it fits.
std::optional<std::string> FdLimitWarning(int max_connections, uint64_t nofile,
                                          const FdOverhead& o);

// The sessions of the whole process against SessionsForFdLimit (every
// worker's sessions share one descriptor table). Thread-safe; one atomic
// add per session start and end.
class SessionFdBudget {
 public:
  // For a descriptor limit of `nofile` (RLIMIT_NOFILE's soft limit once
  // raised); 0: no bound (never full). The most connections the workers'
  // multishot accepts may take in one go: a wake drains a socket's whole
  // backlog, kListenBacklog for each of `o.listening_sockets`.
  SessionFdBudget(uint64_t nofile, const FdOverhead& o);

  // A session started (its client socket is open); true when the process
  // now holds as many as fit.
  bool Add();
  // A session ended (its sockets are closed, or about to be on this turn).
  void Remove();
  bool full() const;
  // Room again: below the resume mark, 1/64 under the bound (at 64
  // sessions and more), so that a process at its bound does not stop and
  // restart accepting with every session that ends.
  bool has_room() const;
  // Close enough to the bound that one multishot accept's burst could
  // pass it: accept one connection per operation (each worker then takes
  // at most one past the bound, which the reserve holds).
  bool one_at_a_time() const;

  uint64_t nofile() const { return nofile_; }
  uint64_t max_sessions() const { return max_; }
  uint64_t live() const { return live_.load(std::memory_order_relaxed); }
  // Times a worker stopped accepting for this bound (the metric).
  uint64_t pauses() const { return pauses_.load(std::memory_order_relaxed); }

  // A worker stopped accepting. The warning's count of pauses when one is
  // due (the first, then at most one a minute for the process: at its
  // bound a process stops and resumes often), else nullopt.
  std::optional<uint64_t> NotePause(absl::Time now);

 private:
  const uint64_t nofile_;
  const uint64_t max_;
  const uint64_t resume_below_;
  const uint64_t burst_;
  std::atomic<uint64_t> live_{0};
  std::atomic<uint64_t> pauses_{0};
  std::atomic<int64_t> next_warning_ns_{0};
};

// The warning line (event "fd_limit_reached") a worker logs when it stops
// accepting: `pauses` since start, the bound and the sessions now.
std::string FdLimitReachedLine(int worker, const SessionFdBudget& budget,
                               uint64_t pauses);

}  // namespace popgate

#endif  // POPGATE_SERVER_FD_BUDGET_H_
