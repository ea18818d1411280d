// The process's one writer of stderr: a thread of its own that does
// blocking writes, so that no worker ever waits on a slow log and no line is
// ever dropped.
//
// Why not each worker's ring: a write submitted at the file position (-1)
// from two rings reads the same position, so with stderr a regular file
// opened without O_APPEND (`2> file`, systemd's StandardError=file:) lines
// of two workers overwrote each other; and one small write in flight per
// worker could not keep up at saturation. One writer makes every write
// position-safe for files, pipes and terminals alike; for regular files
// O_APPEND is set as well, so another process sharing the file (or a
// truncation by logrotate's copytruncate) does not make us overwrite.
//
// Nothing is dropped at a bound: producers see backlog() and stop taking
// new work (workers pause accepting) until the writer catches up.
#ifndef POPGATE_SERVER_LOG_WRITER_H_
#define POPGATE_SERVER_LOG_WRITER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/time/time.h"
#include "server/log_sink.h"

namespace popgate {

class LogWriter {
 public:
  // `fd` is not owned (stderr). A regular file gets O_APPEND here; a FIFO
  // or socket gets writes cut at line boundaries of at most PIPE_BUF bytes
  // (atomic, so other processes writing to the same pipe never split one
  // of our lines).
  //
  // With a `sink` (output = "syslog" or "journald": server/log_sink.h)
  // each line goes to it as one datagram instead, from the same thread.
  explicit LogWriter(int fd, std::unique_ptr<LogSink> sink = nullptr);
  ~LogWriter();  // Stop(5 s) if still running
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Starts the thread. Call with the signals the process handles blocked.
  void Start();

  // Thread-safe. `lines` is one or more complete lines (each ending in
  // '\n'). Never waits on I/O: the writer holds the lock only to swap
  // buffers. Before Start() (or after Stop()) the lines are written inline.
  void Append(std::string_view lines);

  // Bytes appended and not yet written. Relaxed: a hint for backpressure.
  size_t backlog() const {
    return state_->backlog.load(std::memory_order_relaxed);
  }

  // Writes what is queued, then ends the thread. If stderr does not take
  // it within `max_wait` (a stuck pipe), gives up and leaves the thread to
  // die with the process. Returns whether everything was written.
  bool Stop(absl::Duration max_wait);

  // For tests and the startup line.
  bool appends() const { return state_->is_file; }
  bool atomic_chunks() const { return state_->is_pipe; }
  uint64_t lost_lines() const {
    return state_->lost_lines.load(std::memory_order_relaxed);
  }

 private:
  // Shared with the thread, so that a thread left behind by Stop() never
  // touches freed memory.
  struct State {
    int fd = -1;
    std::unique_ptr<LogSink> sink;  // null: write to fd
    bool is_file = false;
    bool is_pipe = false;
    std::mutex mu;
    std::condition_variable cv;       // work arrived, or stop
    std::condition_variable done_cv;  // the thread finished
    std::string pending;              // guarded by mu
    bool started = false;             // guarded by mu
    bool stop = false;                // guarded by mu
    bool done = false;                // guarded by mu
    bool lingering = false;           // guarded by mu (see kLinger)
    std::atomic<size_t> backlog{0};
    std::atomic<uint64_t> lost_lines{0};
    uint64_t lost_reported = 0;  // writer thread only
  };

  static void Run(std::shared_ptr<State> s);
  // Writes all of `data` (looping on short writes, EINTR and EAGAIN).
  // False if the fd failed; the lines of `data` then count as lost.
  static bool WriteAll(State& s, std::string_view data);
  static void WriteBatch(State& s, std::string_view data);
  // A sink's batch: one Send per line.
  static void SendLines(State& s, std::string_view data);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

// Hysteresis for pausing new work while the log backlog is too big:
// pause above `high`, resume below `low`.
class LogBackpressure {
 public:
  LogBackpressure(size_t high, size_t low) : high_(high), low_(low) {}
  // Returns the new state given the current backlog.
  bool Update(size_t backlog) {
    if (paused_) {
      if (backlog < low_) paused_ = false;
    } else if (backlog > high_) {
      paused_ = true;
    }
    return paused_;
  }
  bool paused() const { return paused_; }

 private:
  size_t high_, low_;
  bool paused_ = false;
};

}  // namespace popgate

#endif  // POPGATE_SERVER_LOG_WRITER_H_
