// A SessionEnv of the test's own (ring, provided buffers, pipes, hash pool,
// snapshot, a log sink that collects lines), and a harness that runs one
// session against a ScriptedBackend on that ring, in a thread of its own,
// while the test thread plays the client over a loopback TCP pair.
#ifndef POPGATE_TESTS_SESSION_TEST_ENV_H_
#define POPGATE_TESTS_SESSION_TEST_ENV_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "auth/hash_pool.h"
#include "runtime/buffer_ring.h"
#include "runtime/pipe_pool.h"
#include "runtime/ring.h"
#include "session/session_env.h"
#include "session/snapshot.h"
#include "store/local_limit_store.h"
#include "tests/session/scripted_backend.h"
#include "tls/tls_engine.h"

namespace popgate::testing {

class TestEnv final : public SessionEnv {
 public:
  explicit TestEnv(std::shared_ptr<const Snapshot> snap)
      : snap_(std::move(snap)), pipes_(64 * 1024, 4), pool_(1) {}
  ~TestEnv() override { buffers_.Reset(); }
  // On the thread that runs the ring (it is single-issuer).
  absl::Status Init();

  Ring& ring() override { return ring_; }
  BufferRing& buffers() override { return buffers_; }
  PipePool& pipes() override { return pipes_; }
  auth::HashPool& hash_pool() override { return pool_; }
  std::shared_ptr<const Snapshot> snapshot() const override { return snap_; }
  void Register(LiveSession* s) override { live_.insert(s); }
  void Unregister(LiveSession* s) override { live_.erase(s); }
  void Log(std::string line) override { log_.push_back(std::move(line)); }
  void AppendLog(absl::FunctionRef<void(std::string*)> append) override {
    std::string line;
    append(&line);
    log_.push_back(std::move(line));
  }
  store::LimitStore& limit_store() override { return limit_store_; }
  std::string NewSessionId() override {
    return "test-" + std::to_string(++session_ids_);
  }

  const std::vector<std::string>& log() const { return log_; }
  size_t live() const { return live_.size(); }
  // What the worker does when the shutdown grace is over: shut down every
  // registered session's sockets. Returns how many backend sockets were
  // registered (open) at that moment.
  int CutLiveSessions();

 private:
  std::shared_ptr<const Snapshot> snap_;
  store::LocalLimitStore limit_store_;
  Ring ring_;
  BufferRing buffers_;
  PipePool pipes_;
  auth::HashPool pool_;
  std::set<LiveSession*> live_;
  std::vector<std::string> log_;
  int session_ids_ = 0;
};

// Writes `contents` to a fresh file under a per-process temp directory.
std::string WriteTestFile(const std::string& name, const std::string& contents);

// Builds a snapshot from TOML text.
absl::StatusOr<std::shared_ptr<const Snapshot>> SnapshotFromToml(
    const std::string& toml);

// The value of a string field in a one-line JSON object ("" if absent).
std::string JsonField(const std::string& line, std::string_view name);

// What one session did, once it ended.
struct SessionOutcome {
  std::string log_line;                    // its session log line
  std::vector<std::string> backend_lines;  // what the backend received
  int backend_connections = 0;
  size_t live_after = 0;  // registered sessions left
  std::string result() const { return JsonField(log_line, "result"); }
};

class SessionHarness {
 public:
  // `toml`: the config, where "{BACKEND}" becomes the scripted backend's
  // address and "{CLOSED}" an address where nothing listens.
  SessionHarness(std::string toml, BackendScript script = DefaultScript());
  ~SessionHarness();

  // Builds the snapshot and starts the ring thread with the session on
  // one end of a TCP pair; false (and a test failure) if it could not.
  bool Start();
  // Before Start: keeps the hash pool's one thread busy and one job queued
  // until the session ended, so that a login finds the queue full.
  void BlockHashPool() { block_hash_pool_ = true; }
  // From the test thread: asks the ring thread to CutLiveSessions() (as a
  // worker does once shutdown_grace is over) and waits for it; returns the
  // number of backend sockets it cut, or -1.
  int CutLiveSessions();
  // The client's end (blocking, I/O bounded by 10 s timeouts).
  int client() const { return client_.get(); }
  // After Start: what {BACKEND} and {CLOSED} became ("127.0.0.1:port").
  const std::string& backend_address() const { return backend_address_; }
  const std::string& closed_address() const { return closed_address_; }
  UniqueFd& client_fd() { return client_; }
  // Waits for the session to end; nullopt if it did not within `limit`.
  std::optional<SessionOutcome> Wait(absl::Duration limit = absl::Seconds(15));

 private:
  void Run(std::shared_ptr<const Snapshot> snap, UniqueFd server_side,
           UniqueFd listener);

  std::string toml_;
  BackendScript script_;
  std::string backend_address_;
  std::string closed_address_;
  bool block_hash_pool_ = false;
  bool cut_requested_ = false;
  int cut_backends_ = -1;
  UniqueFd client_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::optional<SessionOutcome> outcome_;
};

// The client's byte stream: plain, or TLS once StartTls succeeded.
class Client {
 public:
  explicit Client(int fd) : fd_(fd) {}
  ~Client();

  bool Send(std::string_view data);
  // One line without its CRLF; "<eof>" on EOF, "<error>" on an error or
  // timeout.
  std::string Line();
  // A multi-line response after its status line, up to (not including)
  // the final ".", dot-unstuffed, lines joined with CRLF.
  std::string Body();
  // Reads until EOF; true if the connection ended (EOF or reset) with no
  // further bytes.
  bool AtEof();
  // TLS handshake as a client over the same socket (after STLS +OK).
  bool StartTls(const std::string& server_name);
  std::string tls_error() const;

 private:
  int Recv(char* buf, size_t len);  // bytes, 0 EOF, -1 error
  bool Flush();
  bool Fill();

  int fd_;
  std::string buf_;
  std::unique_ptr<tls::TlsEngine> tls_;
};

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_SESSION_TEST_ENV_H_
