#include "server/worker.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backend/backend_login.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "config/config.h"
#include "net/socket_address.h"
#include "base/block_pool.h"
#include "session/session.h"
#include "session/session_log.h"
#include "store/local_limit_store.h"

namespace popgate {
namespace {

// Enough SQEs for every session's linked pairs in one loop iteration;
// GetSqe() submits early when it runs out anyway.
constexpr unsigned kRingEntries = 4096;

// Log backlog (all workers together, bytes) above which workers stop
// accepting until it is back under the low mark. Session lines are ~400
// bytes: 16 MiB is some 40,000 lines, far more than a working stderr ever
// holds (the writer takes everything queued in one write).
constexpr size_t kLogBacklogHigh = 16 << 20;
constexpr size_t kLogBacklogLow = 4 << 20;

}  // namespace

Worker::Worker(int index, SnapshotStore& store, auth::HashPool& pool,
               LogWriter& log, SessionFdBudget& fd_budget,
               std::vector<ListenFd> listeners)
    : index_(index),
      store_(store),
      pool_(pool),
      log_(log),
      log_pressure_(kLogBacklogHigh, kLogBacklogLow),
      fd_budget_(fd_budget),
      limit_store_(std::make_unique<store::LocalLimitStore>()) {
  MakeRedisStore();
  for (ListenFd& l : listeners) {
    auto a = std::make_unique<Acceptor>();
    a->worker = this;
    a->listener_index = l.listener_index;
    a->fd = std::move(l.fd);
    acceptors_.push_back(std::move(a));
  }
}

Worker::~Worker() { Join(); }

void Worker::MakeRedisStore() {
  // On the main thread, before the loop runs: the one place a name may be
  // resolved and a file read. The settings hold for the process's life (a
  // reload does not reconnect; the thresholds come from each snapshot).
  const LimitsConfig& limits = store_.Get()->config.limits;
  if (!limits.redis) return;
  auto warn = [&](std::string_view what) {
    Log(LogLine(LogLevel::kWarning, "warning",
                absl::StrCat(",\"worker\":", index_, ",\"warning\":\"",
                             JsonEscape(std::string(what)), "\"")));
  };
  store::RedisStoreOptions o;
  constexpr char kUnix[] = "unix:";
  if (absl::StartsWith(limits.redis_address, kUnix)) {
    o.connection.unix_path = limits.redis_address.substr(sizeof(kUnix) - 1);
  } else if (absl::StatusOr<SocketAddress> addr =
                 ResolveHostPort(limits.redis_address);
             addr.ok()) {
    std::string text = addr->ToString();  // "1.2.3.4:6379" or "[::1]:6379"
    text.resize(text.rfind(':'));
    if (!text.empty() && text.front() == '[')
      text = text.substr(1, text.size() - 2);
    o.connection.host = text;
    o.connection.port = addr->port();
  } else {
    // Unresolvable at start: every call fails and the policy answers.
    warn(absl::StrCat("redis_address: ", std::string(addr.status().message())));
    o.connection.host = "0.0.0.0";
    o.connection.port = 1;
  }
  if (!limits.redis_password_file.empty()) {
    absl::StatusOr<std::string> pw =
        store::ReadRedisPassword(limits.redis_password_file);
    if (pw.ok()) {
      o.connection.password = std::move(*pw);
    } else {
      warn(std::string(pw.status().message()));
    }
  }
  o.connection.user = limits.redis_user;
  o.connection.db = limits.redis_db;
  o.connection.timeout = limits.redis_timeout;
  o.prefix = limits.redis_prefix;
  o.fail_closed = limits.redis_down == StoreDownPolicy::kFailClosed;
  auto redis = std::make_unique<store::RedisLimitStore>(
      ring_, std::move(o), [this](std::string line) { Log(std::move(line)); });
  redis_store_ = redis.get();
  limit_store_ = std::move(redis);
}

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::RequestStop(absl::Time deadline, StopMode mode) {
  // A listening socket that is shut down leaves the listen state at once:
  // new connections are refused (or go to another instance's socket on the
  // same port) instead of waiting in our backlog for a reset. The fd stays
  // open until this worker's accept is done with it; the worker closes it
  // only after it has seen stop_requested_, so the fd is still ours here.
  // kRelease: shutdown() would stop the socket itself, for the other
  // process too (and drop its queue): BeginStop only cancels our accepts.
  for (auto& a : acceptors_) {
    if (mode == StopMode::kShutdownListeners && a->fd.valid()) {
      ::shutdown(a->fd.get(), SHUT_RDWR);
    }
  }
  deadline_unix_ns_.store(absl::ToUnixNanos(deadline));
  stop_requested_.store(true);
  ring_.Wake();
}

void Worker::Register(LiveSession* s) {
  sessions_.insert(s);
  live_sessions_.store(static_cast<int>(sessions_.size()),
                       std::memory_order_relaxed);
  if (fd_budget_.Add() && !fd_paused_) {
    PauseForFds();
  } else if (fd_budget_.one_at_a_time()) {
    // Near the bound: a multishot accept is re-armed one at a time
    // (OnAccept re-arms after the cancel).
    for (auto& a : acceptors_) {
      if (a->multishot) CancelAccept(*a);
    }
  }
}

void Worker::Unregister(LiveSession* s) {
  sessions_.erase(s);
  sessions_ended_.fetch_add(1, std::memory_order_relaxed);
  live_sessions_.store(static_cast<int>(sessions_.size()),
                       std::memory_order_relaxed);
  fd_budget_.Remove();
  if (fd_paused_) ResumeIfFdRoom();
}

void Worker::PauseForFds() {
  fd_paused_ = true;
  // Connections the kernel completed before the cancel lands are still
  // taken (OnAccept): the reserve in the budget is for them.
  for (auto& a : acceptors_) CancelAccept(*a);
  if (std::optional<uint64_t> pauses = fd_budget_.NotePause(absl::Now())) {
    Log(FdLimitReachedLine(index_, fd_budget_, *pauses));
  }
}

void Worker::ResumeIfFdRoom() {
  if (!fd_budget_.has_room()) return;
  fd_paused_ = false;
  ResumeAccepting();
}

void Worker::ResumeAccepting() {
  if (!WantAccepting() || stop_requested_.load()) return;
  for (auto& a : acceptors_) {
    if (!a->armed && !a->retry_pending && a->fd.valid()) ArmAccept(*a);
  }
}

void Worker::ArmAccept(Acceptor& a) {
  a.completion.callback = &Worker::OnAccept;
  a.completion.ctx = &a;
  io_uring_sqe* sqe = ring_.GetSqe();
  // One operation takes every connection that arrives, unless the process
  // is near its descriptor budget: one wake would drain the whole backlog
  // past it. There one accept per operation, re-armed after each.
  a.multishot = !fd_budget_.one_at_a_time();
  if (a.multishot) {
    io_uring_prep_multishot_accept(sqe, a.fd.get(), nullptr, nullptr,
                                   SOCK_CLOEXEC);
  } else {
    io_uring_prep_accept(sqe, a.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data(sqe, &a.completion);
  a.armed = true;
  a.cancelling = false;
}

void Worker::CancelAccept(Acceptor& a) {
  if (!a.armed || a.cancelling) return;
  io_uring_sqe* sqe = ring_.GetSqe();
  io_uring_prep_cancel(sqe, &a.completion, 0);
  io_uring_sqe_set_data(sqe, nullptr);
  a.cancelling = true;
}

void Worker::OnAccept(void* ctx, int result, uint32_t flags) {
  auto* a = static_cast<Acceptor*>(ctx);
  Worker* w = a->worker;
  if (result >= 0) {
    // Also while paused for the log or stopping: the kernel accepted it
    // before the socket was shut down, so it is a session in progress and
    // gets the grace period like the others.
    RunSession(*w, UniqueFd(result), a->listener_index);
  }
  if (flags & IORING_CQE_F_MORE) return;
  a->armed = false;
  a->cancelling = false;
  if (w->stopping_) {
    a->fd.Reset();  // the kernel is done with it: close it now
    return;
  }
  // Shut down by RequestStop (the accept then fails): BeginStop closes it.
  if (w->stop_requested_.load() || !w->WantAccepting()) return;
  if (result < 0 && result != -ECANCELED) {
    // EMFILE, ENOBUFS...: back off briefly instead of spinning on the error.
    a->retry.callback = &Worker::OnRetry;
    a->retry.ctx = a;
    a->retry_ts = ToKernelTimespec(absl::Milliseconds(100));
    io_uring_sqe* sqe = w->ring_.GetSqe();
    io_uring_prep_timeout(sqe, &a->retry_ts, 0, 0);
    io_uring_sqe_set_data(sqe, &a->retry);
    a->retry_pending = true;
    return;
  }
  w->ArmAccept(*a);
}

void Worker::OnRetry(void* ctx, int /*result*/, uint32_t /*flags*/) {
  auto* a = static_cast<Acceptor*>(ctx);
  a->retry_pending = false;
  Worker* w = a->worker;
  if (w->WantAccepting() && !w->stop_requested_.load() && !a->armed &&
      a->fd.valid()) {
    w->ArmAccept(*a);
  }
}

void Worker::BeginStop() {
  stopping_ = true;
  for (auto& a : acceptors_) {
    if (a->armed) {
      CancelAccept(*a);  // OnAccept closes the fd when the cancel lands
    } else {
      a->fd.Reset();
    }
  }
}

void Worker::Log(std::string line) {
  // The queue keeps its capacity from turn to turn (FlushLog clears it):
  // take the line's buffer only when it is the larger.
  if (log_queue_.empty() && log_queue_.capacity() < line.size()) {
    log_queue_ = std::move(line);
  } else {
    log_queue_ += line;
  }
}

void Worker::AppendLog(absl::FunctionRef<void(std::string*)> append) {
  append(&log_queue_);
}

void Worker::FlushLog() {
  if (!log_queue_.empty()) {
    log_.Append(log_queue_);
    log_queue_.clear();
    if (log_queue_.capacity() > 64 * 1024) std::string().swap(log_queue_);
  }
  const bool was_paused = log_pressure_.paused();
  const size_t backlog = log_.backlog();
  if (log_pressure_.Update(backlog) == was_paused) return;
  if (!was_paused) {
    // Lines are never dropped; new connections wait in the kernel's
    // backlog instead until stderr catches up.
    for (auto& a : acceptors_) CancelAccept(*a);
    log_queue_ += absl::StrCat(
        LogFrame(LogLevel::kWarning, "warning", absl::Now()),
        ",\"worker\":", index_,
        ",\"warning\":\"the log output (stderr, syslog or the journal) is not "
        "keeping up: not accepting new connections until it does\","
        "\"backlog_bytes\":",
        backlog, "}\n");
  } else {
    ResumeAccepting();
    log_queue_ += LogLine(
        LogLevel::kInfo, "log_caught_up",
        absl::StrCat(",\"worker\":", index_, ",\"backlog_bytes\":", backlog));
  }
}

std::string Worker::NewSessionId() {
  // Unique in this process run (token, worker, counter); the token part
  // tells runs and instances apart in a shared log. Only characters
  // XCLIENT's SESSION allows.
  return absl::StrCat(ProcessLoopToken().substr(0, 8), "-", index_, "-",
                      absl::Hex(++session_counter_));
}

void Worker::CutForcedDown() {
  snapshot_generation_ = store_.generation();
  const std::shared_ptr<const Snapshot> snap = store_.Get();
  if (snap->forced_down.empty()) return;
  for (LiveSession* s : sessions_) {
    if (s->backend == nullptr ||
        std::find(snap->forced_down.begin(), snap->forced_down.end(),
                  s->backend) == snap->forced_down.end()) {
      continue;
    }
    // As at the end of the shutdown grace: every pending operation on the
    // sockets completes and the session unwinds through its normal exit.
    s->cut_backend_down = true;
    if (s->client_fd >= 0) ::shutdown(s->client_fd, SHUT_RDWR);
    if (s->backend_fd >= 0) ::shutdown(s->backend_fd, SHUT_RDWR);
  }
}

void Worker::Run() {
  pthread_setname_np(pthread_self(),
                     absl::StrCat("popgate-w", index_).substr(0, 15).c_str());
  // The ring is created on its own thread: it is single-issuer. main()
  // tried one already, so this fails only for want of memory or fds.
  if (absl::Status s = ring_.Init(kRingEntries); !s.ok()) {
    std::string line =
        LogLine(LogLevel::kError, "startup_error",
                absl::StrCat(",\"error\":\"worker ", index_, ": ",
                             JsonEscape(std::string(s.message())),
                             " (raise the memlock or open-files limit)\""));
    [[maybe_unused]] ssize_t n =
        ::write(STDERR_FILENO, line.data(), line.size());
    // Other threads are running: exit without running destructors.
    ::_exit(1);
  }
  // 64 x 16.5 KiB receive buffers shared by this worker's TLS sessions; if
  // the kernel lacks buffer rings, TLS reads use private buffers instead.
  if (absl::Status s = buffers_.Init(ring_.raw(), 1, 64); !s.ok()) {
    Log(LogLine(LogLevel::kWarning, "warning",
                absl::StrCat(",\"worker\":", index_,
                             ",\"warning\":\"no provided buffers (TLS reads "
                             "use private ones): ",
                             JsonEscape(std::string(s.message())), "\"")));
  }
  for (auto& a : acceptors_) ArmAccept(*a);
  if (redis_store_ != nullptr) redis_store_->Start();
  snapshot_generation_ = store_.generation();
  while (true) {
    FlushLog();
    // While paused for the log, look at the backlog more often than once
    // a second: it can drain in milliseconds. While paused for the
    // descriptors, sessions of other workers may end: look every 10 ms
    // (this worker's own ending sessions resume it at once).
    absl::Duration wait = fd_paused_               ? absl::Milliseconds(10)
                          : log_pressure_.paused() ? absl::Milliseconds(20)
                                                   : absl::Seconds(1);
    if (stopping_) {
      // Wake at the deadline; past it, re-cut every 100 ms at most.
      absl::Duration left =
          absl::FromUnixNanos(deadline_unix_ns_.load()) - absl::Now();
      wait = left > absl::ZeroDuration() ? std::min(wait, left)
                                         : absl::Milliseconds(100);
    }
    ring_.RunOnce(wait);
    if (fd_paused_) ResumeIfFdRoom();
    if (release_blocks_.load(std::memory_order_relaxed) &&
        release_blocks_.exchange(false, std::memory_order_acquire)) {
      internal::ReleaseFreeBlocks();
    }
    if (has_posted_.load(std::memory_order_acquire)) RunPosted();
    if (store_.generation() != snapshot_generation_) CutForcedDown();
    if (stop_requested_.load() && !stopping_) BeginStop();
    if (!stopping_) continue;
    if (sessions_.empty()) {
      bool busy = false;
      for (auto& a : acceptors_) busy |= a->armed || a->retry_pending;
      if (!busy) break;
    }
    if (absl::Now() >= absl::FromUnixNanos(deadline_unix_ns_.load())) {
      // Grace period over: cut what is left (again each turn, for sessions
      // that opened a backend socket since). Shutting the sockets down
      // completes every pending operation on them, so each session unwinds
      // through its normal exit path (no QUIT is sent to any backend).
      for (LiveSession* s : sessions_) {
        if (s->client_fd >= 0) ::shutdown(s->client_fd, SHUT_RDWR);
        if (s->backend_fd >= 0) ::shutdown(s->backend_fd, SHUT_RDWR);
      }
    }
  }
  if (redis_store_ != nullptr) {
    // Its connection's operations end on this ring (bounded: a cancel
    // completes at once).
    redis_store_->Stop();
    const absl::Time until = absl::Now() + absl::Seconds(1);
    while (!redis_store_->idle() && absl::Now() < until) {
      ring_.RunOnce(absl::Milliseconds(10));
    }
  }
  {
    // Nothing runs here any more: what was queued runs now (it sees no
    // sessions), later posts are refused.
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_closed_ = true;
  }
  RunPosted();
  FlushLog();
  buffers_.Reset();
}

bool Worker::RunOnLoop(std::function<void(Worker&)> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    if (posted_closed_ || posted_.size() >= 64) return false;
    posted_.push_back(std::move(fn));
    has_posted_.store(true, std::memory_order_release);
  }
  ring_.Wake();
  return true;
}

void Worker::RunPosted() {
  std::vector<std::function<void(Worker&)>> run;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    run.swap(posted_);
    has_posted_.store(false, std::memory_order_release);
  }
  for (auto& fn : run) fn(*this);
}

void Worker::CutSession(LiveSession* s) {
  // As at the end of the shutdown grace: every pending operation on the
  // sockets completes and the session unwinds through its normal exit.
  s->cut_by_admin = true;
  if (s->client_fd >= 0) ::shutdown(s->client_fd, SHUT_RDWR);
  if (s->backend_fd >= 0) ::shutdown(s->backend_fd, SHUT_RDWR);
}

}  // namespace popgate
