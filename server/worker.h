// A worker: one thread, one io_uring, its own SO_REUSEPORT listening
// sockets, and every session accepted on them for their whole life
// (shared-nothing on the hot path).
#ifndef POPGATE_SERVER_WORKER_H_
#define POPGATE_SERVER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "auth/hash_pool.h"
#include "base/unique_fd.h"
#include "metrics/session_metrics.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "server/fd_budget.h"
#include "server/listener_set.h"
#include "server/log_writer.h"
#include "session/session_env.h"
#include "session/snapshot.h"
#include "store/limit_store.h"
#include "store/redis_limit_store.h"

namespace popgate {

class Worker final : public SessionEnv {
 public:
  // `fd_budget`: the process's, shared by every worker.
  Worker(int index, SnapshotStore& store, auth::HashPool& pool, LogWriter& log,
         SessionFdBudget& fd_budget, std::vector<ListenFd> listeners);
  ~Worker();

  void Start();
  // Thread-safe. Shuts the listening sockets down at once (from the calling
  // thread, so the kernel refuses new connections, or hands them to another
  // instance, without waiting for this worker's loop), then lets sessions
  // run until `deadline` and cuts what remains.
  //
  // kRelease: the sockets are shared with another process that goes on
  // accepting on them (a hand-over, or systemd holding them for socket
  // activation): only this worker's accepts are cancelled and its fds
  // closed, the sockets keep listening and nothing queued is lost.
  enum class StopMode { kShutdownListeners, kRelease };
  void RequestStop(absl::Time deadline,
                   StopMode mode = StopMode::kShutdownListeners);
  void Join();

  // Thread-safe: sessions running now (for the memory housekeeping).
  int live_sessions() const {
    return live_sessions_.load(std::memory_order_relaxed);
  }
  uint64_t sessions_ended() const {
    return sessions_ended_.load(std::memory_order_relaxed);
  }

  // --- Issue 11, the admin API.
  // Thread-safe: runs `fn` on this worker's thread at its next loop turn
  // (the admin server's way to read sessions or cut one). False, and `fn`
  // never runs, when 64 are queued already or the worker has stopped.
  bool RunOnLoop(std::function<void(Worker&)> fn);
  // This worker's thread only (inside RunOnLoop): the live sessions, and
  // cutting one as the shutdown grace does (no QUIT).
  const absl::flat_hash_set<LiveSession*>& live() const { return sessions_; }
  void CutSession(LiveSession* s);
  // Thread-safe: at its next loop turn the worker gives its cached
  // pooled blocks back to malloc (before the process trims its heap).
  void ReleaseCachedBlocks() {
    release_blocks_.store(true, std::memory_order_release);
    ring_.Wake();
  }
  int index() const { return index_; }
  // Before Start: where RecordSessionEnd goes (null: nowhere).
  void SetSessionMetrics(metrics::SessionMetrics* m) { session_metrics_ = m; }
  void RecordSessionEnd(const metrics::SessionEnd& end) override {
    if (session_metrics_ != nullptr) {
      session_metrics_->RecordSessionEnd(index_, end);
    }
  }

  // --- For sessions, on this worker's thread only.
  Ring& ring() override { return ring_; }
  std::shared_ptr<const Snapshot> snapshot() const override {
    return store_.Get();
  }
  auth::HashPool& hash_pool() override { return pool_; }
  PipePool& pipes() override { return pipes_; }
  BufferRing& buffers() override { return buffers_; }
  void Register(LiveSession* s) override;
  void Unregister(LiveSession* s) override;
  // Queues a line for stderr. The lines of one loop turn go to the log
  // writer together at the start of the next turn (one lock, at most one
  // wake-up per turn); nothing is dropped.
  void Log(std::string line) override;
  void AppendLog(absl::FunctionRef<void(std::string*)> append) override;
  std::string NewSessionId() override;
  store::LimitStore& limit_store() override { return *limit_store_; }

 private:
  struct Acceptor {
    Worker* worker;
    int listener_index;
    UniqueFd fd;
    Completion completion;
    Completion retry;
    __kernel_timespec retry_ts{};
    bool armed = false;          // an accept is in flight
    bool multishot = false;      // and it is a multishot one
    bool cancelling = false;     // and a cancel for it was submitted
    bool retry_pending = false;  // a back-off timer is in flight
  };

  void Run();
  bool WantAccepting() const {
    return !stopping_ && !log_pressure_.paused() && !fd_paused_;
  }
  // Arms every listener not armed yet, when WantAccepting().
  void ResumeAccepting();
  void ArmAccept(Acceptor& a);
  void CancelAccept(Acceptor& a);
  static void OnAccept(void* ctx, int result, uint32_t flags);
  static void OnRetry(void* ctx, int result, uint32_t flags);
  // Hands queued lines to the writer and pauses or resumes accepting by
  // the writer's backlog.
  void FlushLog();
  void BeginStop();
  // After a reload: cuts the sessions on backends the new config sets
  // state = "down" (no QUIT; the client's DELE marks are discarded).
  void CutForcedDown();
  // The process holds as many sessions as its descriptor limit allows:
  // stop accepting (logged at most once a minute), until it has room.
  void PauseForFds();
  void ResumeIfFdRoom();
  // [limits] store = "redis": this worker's RedisLimitStore on its ring.
  void MakeRedisStore();

  int index_;
  SnapshotStore& store_;
  auth::HashPool& pool_;
  LogWriter& log_;
  Ring ring_;
  // 256 KiB pipes: one splice moves a big chunk of a RETR; pipe pages exist
  // only while data is in flight. Up to 64 idle pipes are kept for reuse
  // (counted in the descriptor budget's reserve).
  PipePool pipes_{256 * 1024, kIdlePipesPerWorker};
  // Provided receive buffers for TLS reads (declared after ring_: it is
  // unregistered from the ring before the ring goes away).
  BufferRing buffers_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  absl::flat_hash_set<LiveSession*> sessions_;
  std::atomic<int> live_sessions_{0};
  std::atomic<uint64_t> sessions_ended_{0};
  // RunOnLoop's queue (bounded; closed when the loop ends).
  void RunPosted();
  std::mutex posted_mu_;
  std::vector<std::function<void(Worker&)>> posted_;
  bool posted_closed_ = false;
  std::atomic<bool> has_posted_{false};
  metrics::SessionMetrics* session_metrics_ = nullptr;
  std::string log_queue_;  // lines of this loop turn
  // While stderr cannot keep up, stop taking new connections (the kernel
  // queues them) instead of dropping lines or growing without bound.
  LogBackpressure log_pressure_;
  SessionFdBudget& fd_budget_;
  bool fd_paused_ = false;  // not accepting for fd_budget_
  std::thread thread_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> release_blocks_{false};
  std::atomic<int64_t> deadline_unix_ns_{0};
  bool stopping_ = false;
  uint64_t snapshot_generation_ = 0;  // the store's, last looked at
  uint64_t session_counter_ = 0;
  // This worker's view of the login counters (local, or its own
  // connection to Redis on this ring).
  std::unique_ptr<store::LimitStore> limit_store_;
  // limit_store_ when [limits] store = "redis" (else null): started and
  // stopped with the loop.
  store::RedisLimitStore* redis_store_ = nullptr;
};

}  // namespace popgate

#endif  // POPGATE_SERVER_WORKER_H_
