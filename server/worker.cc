#include "server/worker.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "session/session.h"

namespace popgate {
namespace {

// Enough SQEs for every session's linked pairs in one loop iteration;
// GetSqe() submits early when it runs out anyway.
constexpr unsigned kRingEntries = 4096;

}  // namespace

Worker::Worker(int index, SnapshotStore& store, auth::HashPool& pool,
               std::vector<UniqueFd> listeners)
    : index_(index), store_(store), pool_(pool) {
  for (size_t i = 0; i < listeners.size(); ++i) {
    auto a = std::make_unique<Acceptor>();
    a->worker = this;
    a->listener_index = static_cast<int>(i);
    a->fd = std::move(listeners[i]);
    acceptors_.push_back(std::move(a));
  }
}

Worker::~Worker() { Join(); }

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::RequestStop(absl::Time deadline) {
  deadline_unix_ns_.store(absl::ToUnixNanos(deadline));
  stop_requested_.store(true);
  ring_.Wake();
}

void Worker::ArmAccept(Acceptor& a) {
  a.completion.callback = &Worker::OnAccept;
  a.completion.ctx = &a;
  io_uring_sqe* sqe = ring_.GetSqe();
  io_uring_prep_multishot_accept(sqe, a.fd.get(), nullptr, nullptr,
                                 SOCK_CLOEXEC);
  io_uring_sqe_set_data(sqe, &a.completion);
  a.armed = true;
}

void Worker::OnAccept(void* ctx, int result, uint32_t flags) {
  auto* a = static_cast<Acceptor*>(ctx);
  Worker* w = a->worker;
  if (result >= 0) {
    if (w->stopping_) {
      ::close(result);
    } else {
      RunSession(*w, UniqueFd(result), a->listener_index);
    }
  }
  if (flags & IORING_CQE_F_MORE) return;
  a->armed = false;
  if (w->stopping_) return;
  if (result < 0 && result != -ECANCELED) {
    // EMFILE, ENOBUFS...: back off briefly instead of spinning on the error.
    a->retry.callback = &Worker::OnRetry;
    a->retry.ctx = a;
    a->retry_ts = ToKernelTimespec(absl::Milliseconds(100));
    io_uring_sqe* sqe = w->ring_.GetSqe();
    io_uring_prep_timeout(sqe, &a->retry_ts, 0, 0);
    io_uring_sqe_set_data(sqe, &a->retry);
    return;
  }
  w->ArmAccept(*a);
}

void Worker::OnRetry(void* ctx, int /*result*/, uint32_t /*flags*/) {
  auto* a = static_cast<Acceptor*>(ctx);
  if (!a->worker->stopping_) a->worker->ArmAccept(*a);
}

void Worker::BeginStop() {
  stopping_ = true;
  for (auto& a : acceptors_) {
    if (!a->armed) continue;
    io_uring_sqe* sqe = ring_.GetSqe();
    io_uring_prep_cancel(sqe, &a->completion, 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }
}

void Worker::Log(std::string line) {
  // A stuck stderr must not eat memory: past 4 MiB waiting, lines are
  // dropped (and the drop is said once the queue drains).
  constexpr size_t kMaxQueued = 4 << 20;
  if (log_queue_.size() + line.size() > kMaxQueued) {
    ++dropped_logs_;
    return;
  }
  log_queue_ += line;
  if (log_writing_.empty()) FlushLog();
}

void Worker::FlushLog() {
  if (log_queue_.empty() && dropped_logs_ > 0) {
    log_queue_ = absl::StrCat(
        "{\"event\":\"warning\",\"worker\":", index_,
        ",\"warning\":\"log lines dropped\",\"count\":", dropped_logs_, "}\n");
    dropped_logs_ = 0;
  }
  if (log_queue_.empty()) return;
  // Writes to a pipe are atomic only up to PIPE_BUF (4 KiB): cut at the
  // last whole line within it so lines of several workers never interleave.
  constexpr size_t kAtomicWrite = 4096;
  size_t n = log_queue_.size();
  if (n > kAtomicWrite) {
    size_t nl = log_queue_.rfind('\n', kAtomicWrite - 1);
    n = nl == std::string::npos ? log_queue_.find('\n') + 1 : nl + 1;
    if (n == 0) n = log_queue_.size();  // no newline at all
  }
  log_writing_.assign(log_queue_, 0, n);
  log_queue_.erase(0, n);
  log_done_.ctx = this;
  log_done_.callback = &Worker::OnLogWritten;
  io_uring_sqe* sqe = ring_.GetSqe();
  // offset -1: append at the file position (stderr may be a file or pipe).
  io_uring_prep_write(sqe, STDERR_FILENO, log_writing_.data(),
                      static_cast<unsigned>(log_writing_.size()), -1);
  io_uring_sqe_set_data(sqe, &log_done_);
}

void Worker::OnLogWritten(void* ctx, int result, uint32_t /*flags*/) {
  auto* w = static_cast<Worker*>(ctx);
  if (result > 0 && static_cast<size_t>(result) < w->log_writing_.size()) {
    // Short write: the rest goes first next time.
    w->log_queue_.insert(0, w->log_writing_, static_cast<size_t>(result));
  }
  // On an error the lines are lost: there is nowhere else to say so.
  w->log_writing_.clear();
  w->FlushLog();
}

void Worker::Run() {
  // The ring is created on its own thread: it is single-issuer.
  if (absl::Status s = ring_.Init(kRingEntries); !s.ok()) {
    std::fprintf(stderr,
                 "{\"event\":\"fatal\",\"worker\":%d,\"error\":\"%s\"}\n",
                 index_, std::string(s.message()).c_str());
    std::abort();
  }
  // 64 x 16.5 KiB receive buffers shared by this worker's TLS sessions; if
  // the kernel lacks buffer rings, TLS reads use private buffers instead.
  if (absl::Status s = buffers_.Init(ring_.raw(), 1, 64); !s.ok()) {
    Log(absl::StrCat("{\"event\":\"warning\",\"worker\":", index_,
                     ",\"warning\":\"no provided buffers: ",
                     std::string(s.message()), "\"}\n"));
  }
  for (auto& a : acceptors_) ArmAccept(*a);
  while (true) {
    ring_.RunOnce(absl::Seconds(1));
    if (stop_requested_.load() && !stopping_) BeginStop();
    if (!stopping_) continue;
    if (sessions_.empty() && log_writing_.empty() && log_queue_.empty()) {
      bool any_armed = false;
      for (auto& a : acceptors_) any_armed |= a->armed;
      if (!any_armed) break;
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
  buffers_.Reset();
}

}  // namespace popgate
