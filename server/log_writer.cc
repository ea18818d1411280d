#include "server/log_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log_line.h"

namespace popgate {
namespace {

// A buffer that grew under a burst is given back once written, so the
// writer does not hold its peak for ever (see issue 8, item 17).
constexpr size_t kKeepCapacity = 256 * 1024;

// How long the writer lets lines gather once the first arrives: at most
// ~200 wake-ups and writes a second under load; a line waits at most this
// long (plus the write) before it is on stderr.
constexpr absl::Duration kGather = absl::Milliseconds(5);

// After a write the writer waits this long for more lines before it sleeps
// until woken. Lines appended meanwhile wake no one: far from saturation
// each session's line would otherwise wake the thread on its own, a futex
// wake and a context switch on the proxy's core per session (0.76 per
// session at 500 sessions/s, perf stat --per-thread). A line can so wait up
// to kLinger (or kGather, when it is the one that wakes the thread); more
// than kLingerBytes queued ends the wait at once.
// One queue for all workers: lines keep the order they were appended in.
constexpr absl::Duration kLinger = absl::Milliseconds(50);
constexpr size_t kLingerBytes = 64 * 1024;

uint64_t CountLines(std::string_view data) {
  return static_cast<uint64_t>(std::count(data.begin(), data.end(), '\n'));
}

}  // namespace

LogWriter::LogWriter(int fd, std::unique_ptr<LogSink> sink)
    : state_(std::make_shared<State>()) {
  state_->fd = fd;
  state_->sink = std::move(sink);
  struct stat st {};
  if (fstat(fd, &st) == 0) {
    state_->is_file = S_ISREG(st.st_mode);
    state_->is_pipe = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
  }
  if (state_->is_file) {
    // The file position is shared with whoever else writes to this file
    // (the shell that opened it, a second process): appending makes every
    // write land at the end instead of over someone's lines.
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_APPEND) == 0) {
      fcntl(fd, F_SETFL, flags | O_APPEND);
    }
  }
}

LogWriter::~LogWriter() {
  if (thread_.joinable()) Stop(absl::Seconds(5));
}

void LogWriter::Start() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->started = true;
  thread_ = std::thread(&LogWriter::Run, state_);
}

void LogWriter::Append(std::string_view lines) {
  if (lines.empty()) return;
  State& s = *state_;
  bool inline_write = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.started || s.done) {
      inline_write = true;
    } else {
      const size_t before = s.pending.size();
      s.pending.append(lines);
      s.backlog.fetch_add(lines.size(), std::memory_order_relaxed);
      // The writer checks `pending` before it sleeps: only the append that
      // makes it non-empty has to wake it (one futex wake per batch), and
      // none while it lingers, unless this append makes the batch big.
      if (s.lingering
              ? before < kLingerBytes && s.pending.size() >= kLingerBytes
              : before == 0) {
        s.cv.notify_one();
      }
    }
  }
  // Before Start() or after Stop(): only the main thread logs then.
  if (inline_write) WriteBatch(s, lines);
}

bool LogWriter::Stop(absl::Duration max_wait) {
  if (!thread_.joinable()) return true;
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.stop = true;
  s.cv.notify_one();
  const bool finished = s.done_cv.wait_for(
      lock, absl::ToChronoNanoseconds(max_wait), [&] { return s.done; });
  lock.unlock();
  if (finished) {
    thread_.join();
  } else {
    // Stuck in write(2) on a pipe nobody reads: the thread owns a share of
    // the state and dies with the process.
    thread_.detach();
  }
  return finished;
}

void LogWriter::Run(std::shared_ptr<State> sp) {
  pthread_setname_np(pthread_self(), "popgate-log");  // for top -H, perf
  State& s = *sp;
  std::string writing;
  std::unique_lock<std::mutex> lock(s.mu);
  // Whether the lines now pending gathered during a linger already.
  bool lingered = false;
  while (true) {
    s.cv.wait(lock, [&] { return !s.pending.empty() || s.stop; });
    if (s.pending.empty()) break;  // stop, and everything written
    if (!s.stop && !lingered) {
      // Let a batch gather: under load every worker turn appends a few
      // lines, and a wake-up plus a write per turn would cost more CPU
      // than the lines are worth. Idle, the thread sleeps in wait().
      lock.unlock();
      absl::SleepFor(kGather);
      lock.lock();
    }
    writing.swap(s.pending);
    lock.unlock();
    WriteBatch(s, writing);
    s.backlog.fetch_sub(writing.size(), std::memory_order_relaxed);
    writing.clear();
    if (writing.capacity() > kKeepCapacity) std::string().swap(writing);
    lock.lock();
    if (s.pending.capacity() > kKeepCapacity && s.pending.empty()) {
      std::string().swap(s.pending);
    }
    if (!s.stop) {
      s.lingering = true;
      s.cv.wait_for(lock, absl::ToChronoNanoseconds(kLinger),
                    [&] { return s.stop || s.pending.size() >= kLingerBytes; });
      s.lingering = false;
    }
    // Lines that gathered during the linger go at once, without kGather.
    lingered = !s.stop && !s.pending.empty();
  }
  s.done = true;
  s.done_cv.notify_all();
}

void LogWriter::WriteBatch(State& s, std::string_view data) {
  const uint64_t lost = s.lost_lines.load(std::memory_order_relaxed);
  if (lost > s.lost_reported) {
    // Say so once the fd works again (it may never: then nobody can read
    // it anyway).
    std::string warn = LogLine(
        LogLevel::kWarning, "warning",
        absl::StrCat(",\"warning\":\"log lines lost: ",
                     s.sink != nullptr ? "the log socket" : "stderr",
                     " failed; check the syslog daemon or journal (or the "
                     "pipe stderr goes to)\",\"count\":",
                     lost - s.lost_reported));
    if (s.sink != nullptr
            ? s.sink->Send(std::string_view(warn).substr(0, warn.size() - 1))
            : WriteAll(s, warn)) {
      s.lost_reported = lost;
    }
  }
  if (s.sink != nullptr) {
    SendLines(s, data);
    return;
  }
  if (!s.is_pipe) {
    if (!WriteAll(s, data)) {
      s.lost_lines.fetch_add(CountLines(data), std::memory_order_relaxed);
    }
    return;
  }
  // Pipes and sockets: writes of at most PIPE_BUF bytes are atomic, so
  // cut at the last line end within each PIPE_BUF (a single longer line
  // goes out whole).
  while (!data.empty()) {
    size_t n = data.size();
    if (n > PIPE_BUF) {
      size_t nl = data.rfind('\n', PIPE_BUF - 1);
      n = nl == std::string_view::npos ? data.find('\n') : nl;
      n = n == std::string_view::npos ? data.size() : n + 1;
    }
    if (!WriteAll(s, data.substr(0, n))) {
      s.lost_lines.fetch_add(CountLines(data.substr(0, n)),
                             std::memory_order_relaxed);
    }
    data.remove_prefix(n);
  }
}

void LogWriter::SendLines(State& s, std::string_view data) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    const size_t n = nl == std::string_view::npos ? data.size() : nl;
    if (n > 0 && !s.sink->Send(data.substr(0, n))) {
      s.lost_lines.fetch_add(1, std::memory_order_relaxed);
    }
    data.remove_prefix(nl == std::string_view::npos ? n : n + 1);
  }
}

bool LogWriter::WriteAll(State& s, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(s.fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Someone made the pipe non-blocking: wait until it has room.
      pollfd p{s.fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    return false;  // EPIPE, EBADF, EIO, ENOSPC: these lines cannot go out
  }
  return true;
}

}  // namespace popgate
