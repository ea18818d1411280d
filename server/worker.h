// A worker: one thread, one io_uring, its own SO_REUSEPORT listening
// sockets, and every session accepted on them for their whole life
// (shared-nothing on the hot path).
#ifndef POPGATE_SERVER_WORKER_H_
#define POPGATE_SERVER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "auth/hash_pool.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "session/session_env.h"
#include "session/snapshot.h"
#include "base/unique_fd.h"

namespace popgate {

class Worker final : public SessionEnv {
 public:
  Worker(int index, SnapshotStore& store, auth::HashPool& pool,
         std::vector<UniqueFd> listeners);
  ~Worker();

  void Start();
  // Thread-safe: stop accepting now, cut remaining sessions at `deadline`.
  void RequestStop(absl::Time deadline);
  void Join();

  // --- For sessions, on this worker's thread only.
  Ring& ring() override { return ring_; }
  std::shared_ptr<const Snapshot> snapshot() const override {
    return store_.Get();
  }
  auth::HashPool& hash_pool() override { return pool_; }
  PipePool& pipes() override { return pipes_; }
  BufferRing& buffers() override { return buffers_; }
  void Register(LiveSession* s) override { sessions_.insert(s); }
  void Unregister(LiveSession* s) override { sessions_.erase(s); }
  // Writes a line to stderr through the ring (never blocks the worker).
  // Lines that come while a write is in flight go out together in the next
  // one: under load one write carries many session lines.
  void Log(std::string line) override;

 private:
  struct Acceptor {
    Worker* worker;
    int listener_index;
    UniqueFd fd;
    Completion completion;
    Completion retry;
    __kernel_timespec retry_ts{};
    bool armed = false;
  };

  void Run();
  void ArmAccept(Acceptor& a);
  static void OnAccept(void* ctx, int result, uint32_t flags);
  static void OnRetry(void* ctx, int result, uint32_t flags);
  void FlushLog();
  static void OnLogWritten(void* ctx, int result, uint32_t flags);
  void BeginStop();

  int index_;
  SnapshotStore& store_;
  auth::HashPool& pool_;
  Ring ring_;
  // 256 KiB pipes: one splice moves a big chunk of a RETR; pipe pages exist
  // only while data is in flight. Up to 64 idle pipes are kept for reuse.
  PipePool pipes_{256 * 1024, 64};
  // Provided receive buffers for TLS reads (declared after ring_: it is
  // unregistered from the ring before the ring goes away).
  BufferRing buffers_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  absl::flat_hash_set<LiveSession*> sessions_;
  std::string log_queue_;    // lines waiting for the next write
  std::string log_writing_;  // the write in flight (empty: none)
  Completion log_done_;
  uint64_t dropped_logs_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<int64_t> deadline_unix_ns_{0};
  bool stopping_ = false;
};

}  // namespace popgate

#endif  // POPGATE_SERVER_WORKER_H_
