#include "server/fd_budget.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/log_line.h"
#include "net/listener.h"

namespace popgate {

uint64_t FdReserve(uint64_t nofile, const FdOverhead& o) {
  const uint64_t per_worker = 8 + 2 * kIdlePipesPerWorker;
  const uint64_t fixed = 64 + static_cast<uint64_t>(o.workers) * per_worker +
                         o.listening_sockets + o.backends + o.admin_connections;
  return std::min(fixed, nofile / 2);
}

uint64_t SessionsForFdLimit(uint64_t nofile, const FdOverhead& o) {
  return (nofile - FdReserve(nofile, o)) / 2;
}

std::optional<std::string> FdLimitWarning(int max_connections, uint64_t nofile,
                                          const FdOverhead& o) {
  const uint64_t fit = SessionsForFdLimit(nofile, o);
  if (max_connections > 0 && static_cast<uint64_t>(max_connections) <= fit) {
    return std::nullopt;
  }
  const std::string asked = max_connections > 0
                                ? absl::StrCat("is ", max_connections)
                                : std::string("is 0 (no limit)");
  return LogLine(
      LogLevel::kWarning, "fd_limit",
      absl::StrCat(
          ",\"nofile\":", nofile, ",\"max_connections\":", max_connections,
          ",\"sessions_that_fit\":", fit,
          ",\"warning\":\"the descriptor limit (RLIMIT_NOFILE ", nofile,
          ") holds ", fit, " proxied sessions (two sockets each, ",
          FdReserve(nofile, o),
          " kept for the rest) and [limits] max_connections ", asked,
          ": at that many sessions popgate stops accepting and new "
          "connections wait in the listen backlog until sessions "
          "end. Raise the limit (systemd LimitNOFILE=, ulimit -n) or "
          "lower max_connections\""));
}

SessionFdBudget::SessionFdBudget(uint64_t nofile, const FdOverhead& o)
    : nofile_(nofile),
      max_(nofile > 0 ? SessionsForFdLimit(nofile, o) : 0),
      resume_below_(max_ - max_ / 64),
      burst_(o.listening_sockets * kListenBacklog) {}

bool SessionFdBudget::Add() {
  const uint64_t now = live_.fetch_add(1, std::memory_order_relaxed) + 1;
  return max_ > 0 && now >= max_;
}

void SessionFdBudget::Remove() {
  live_.fetch_sub(1, std::memory_order_relaxed);
}

bool SessionFdBudget::full() const { return max_ > 0 && live() >= max_; }

bool SessionFdBudget::has_room() const {
  return max_ == 0 || live() < resume_below_;
}

bool SessionFdBudget::one_at_a_time() const {
  return max_ > 0 && live() + burst_ >= max_;
}

std::optional<uint64_t> SessionFdBudget::NotePause(absl::Time now) {
  const uint64_t n = pauses_.fetch_add(1, std::memory_order_relaxed) + 1;
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t due = next_warning_ns_.load(std::memory_order_relaxed);
  if (now_ns < due) return std::nullopt;
  // One worker wins the minute's warning.
  if (!next_warning_ns_.compare_exchange_strong(
          due, absl::ToUnixNanos(now + absl::Minutes(1)),
          std::memory_order_relaxed)) {
    return std::nullopt;
  }
  return n;
}

std::string FdLimitReachedLine(int worker, const SessionFdBudget& budget,
                               uint64_t pauses) {
  return LogLine(
      LogLevel::kWarning, "fd_limit_reached",
      absl::StrCat(
          ",\"worker\":", worker, ",\"sessions\":", budget.live(),
          ",\"sessions_that_fit\":", budget.max_sessions(),
          ",\"nofile\":", budget.nofile(), ",\"pauses\":", pauses,
          ",\"warning\":\"as many sessions are open as the descriptor limit "
          "holds: not accepting new connections (they wait in the listen "
          "backlog) until some end. Raise the limit (systemd LimitNOFILE=, "
          "ulimit -n); popgate_accept_pauses_total counts these pauses, this "
          "line comes at most once a minute\""));
}

}  // namespace popgate
