#include "tests/session/test_env.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "session/session.h"
#include "tests/runtime/test_util.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::testing {

absl::Status TestEnv::Init() {
  if (absl::Status s = ring_.Init(256); !s.ok()) return s;
  return buffers_.Init(ring_.raw(), 1, 8);
}

int TestEnv::CutLiveSessions() {
  int backends = 0;
  for (LiveSession* s : live_) {
    if (s->client_fd >= 0) ::shutdown(s->client_fd, SHUT_RDWR);
    if (s->backend_fd >= 0) {
      ::shutdown(s->backend_fd, SHUT_RDWR);
      ++backends;
    }
  }
  return backends;
}

std::string WriteTestFile(const std::string& name,
                          const std::string& contents) {
  static const std::string dir = [] {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "popgate-session-test-XXXXXX")
            .string();
    const char* made = ::mkdtemp(tmpl.data());
    return std::string(made != nullptr ? made : "/tmp");
  }();
  const std::string path = dir + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> SnapshotFromToml(
    const std::string& toml) {
  absl::StatusOr<Config> config = ParseConfig(toml, "test.toml", "/");
  if (!config.ok()) return config.status();
  return Snapshot::Build(*std::move(config), SnapshotDeps{});
}

std::string JsonField(const std::string& line, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":\"";
  size_t at = line.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  size_t end = line.find('"', at);
  return end == std::string::npos ? "" : line.substr(at, end - at);
}

SessionHarness::SessionHarness(std::string toml, BackendScript script)
    : toml_(std::move(toml)), script_(std::move(script)) {}

SessionHarness::~SessionHarness() {
  if (thread_.joinable()) {
    if (!Wait(absl::Seconds(15))) ::shutdown(client_.get(), SHUT_RDWR);
    thread_.join();
  }
}

bool SessionHarness::Start() {
  Listener backend = ListenLoopback();
  backend_address_ = absl::StrCat("127.0.0.1:", backend.port);
  closed_address_ = absl::StrCat("127.0.0.1:", ClosedLoopbackPort());
  std::string toml = absl::StrReplaceAll(
      toml_, {{"{BACKEND}", backend_address_}, {"{CLOSED}", closed_address_}});
  if (toml.find("{CERT}") != std::string::npos) {
    const tls::testing::TestPki& pki = tls::testing::Pki();
    toml = absl::StrReplaceAll(
        toml, {{"{CERT}", pki.ecdsa.cert_file}, {"{KEY}", pki.ecdsa.key_file}});
  }
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap = SnapshotFromToml(toml);
  EXPECT_TRUE(snap.ok()) << snap.status();
  if (!snap.ok()) return false;
  auto [client, server_side] = TcpPair();
  if (!client.valid() || !server_side.valid()) {
    ADD_FAILURE() << "no TCP pair";
    return false;
  }
  client_ = std::move(client);
  SetIoTimeout(client_.get(), absl::Seconds(10));
  thread_ =
      std::thread([this, s = *std::move(snap), fd = std::move(server_side),
                   l = std::move(backend.fd)]() mutable {
        Run(std::move(s), std::move(fd), std::move(l));
      });
  return true;
}

void SessionHarness::Run(std::shared_ptr<const Snapshot> snap,
                         UniqueFd server_side, UniqueFd listener) {
  std::optional<SessionOutcome> out;
  // Declared before the env: its hash pool's thread may still be inside the
  // blocking job (woken, not yet returned) until the env joins it.
  std::mutex block_mu;
  std::condition_variable block_cv;
  bool released = false;
  {
    TestEnv env(std::move(snap));
    if (absl::Status s = env.Init(); !s.ok()) {
      ADD_FAILURE() << s;
    } else {
      ScriptedBackend backend(env.ring(), std::move(listener), script_);
      backend.Start();
      if (block_hash_pool_) {
        env.hash_pool().Submit([&] {
          std::unique_lock<std::mutex> lock(block_mu);
          block_cv.wait(lock, [&] { return released; });
        });
        env.hash_pool().Submit([] {});
      }
      RunSession(env, std::move(server_side), /*listener_index=*/0);
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (env.log().empty() && absl::Now() < deadline) {
        env.ring().RunOnce(absl::Milliseconds(20));
        std::lock_guard<std::mutex> lock(mu_);
        if (cut_requested_ && cut_backends_ < 0) {
          cut_backends_ = env.CutLiveSessions();
          cv_.notify_all();
        }
      }
      {
        std::lock_guard<std::mutex> lock(block_mu);
        released = true;
        block_cv.notify_all();
      }
      backend.Stop();
      while (!backend.done() && absl::Now() < deadline) {
        env.ring().RunOnce(absl::Milliseconds(20));
      }
      if (!env.log().empty() && backend.done()) {
        out.emplace();
        out->log_line = env.log().front();
        out->backend_lines = backend.lines();
        out->backend_connections = backend.connections();
        out->live_after = env.live();
      }
      // Otherwise coroutines are still suspended on this ring: their frames
      // are leaked on purpose (the test fails on the missing outcome).
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  outcome_ = std::move(out);
  finished_ = true;
  cv_.notify_all();
}

int SessionHarness::CutLiveSessions() {
  std::unique_lock<std::mutex> lock(mu_);
  cut_requested_ = true;
  cv_.wait_for(lock, std::chrono::seconds(10),
               [this] { return cut_backends_ >= 0 || finished_; });
  return cut_backends_;
}

std::optional<SessionOutcome> SessionHarness::Wait(absl::Duration limit) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoMilliseconds(limit),
               [this] { return finished_; });
  return outcome_;
}

Client::~Client() = default;

bool Client::Flush() {
  while (true) {
    std::span<const char> out = tls_->PendingOutput();
    if (out.empty()) return true;
    ssize_t n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    tls_->ConsumeOutput(static_cast<size_t>(n));
  }
}

bool Client::Fill() {
  char buf[16384];
  ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) return false;
  tls_->FeedCiphertext({buf, static_cast<size_t>(n)});
  return true;
}

int Client::Recv(char* buf, size_t len) {
  if (!tls_) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    return n < 0 ? -1 : static_cast<int>(n);
  }
  while (true) {
    size_t n = 0;
    tls::TlsResult r = tls_->Read({buf, len}, &n);
    if (!Flush()) return -1;
    if (n > 0) return static_cast<int>(n);
    if (r == tls::TlsResult::kClosed) return 0;
    if (r == tls::TlsResult::kError) return -1;
    if (r == tls::TlsResult::kWantRead && !Fill()) return 0;
  }
}

bool Client::Send(std::string_view data) {
  if (!tls_) return WriteAllBlocking(fd_, data);
  if (tls_->Write(data) != tls::TlsResult::kOk) return false;
  return Flush();
}

std::string Client::Line() {
  while (true) {
    size_t nl = buf_.find("\r\n");
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 2);
      return line;
    }
    char chunk[16384];
    int n = Recv(chunk, sizeof(chunk));
    if (n == 0) return "<eof>";
    if (n < 0) return "<error>";
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

std::string Client::Body() {
  std::string body;
  while (true) {
    std::string line = Line();
    if (line == "." || line == "<eof>" || line == "<error>") return body;
    if (line.starts_with(".")) line.erase(0, 1);
    body += line;
    body += "\r\n";
  }
}

bool Client::AtEof() {
  if (!buf_.empty()) return false;
  char c;
  return Recv(&c, 1) <= 0;
}

bool Client::StartTls(const std::string& server_name) {
  absl::StatusOr<std::unique_ptr<tls::TlsEngine>> engine =
      tls::TlsEngine::NewClient(tls::testing::TestClientContext(), server_name);
  if (!engine.ok()) return false;
  tls_ = *std::move(engine);
  while (true) {
    tls::TlsResult r = tls_->Handshake();
    if (!Flush()) return false;
    if (r == tls::TlsResult::kOk) return true;
    if (r != tls::TlsResult::kWantRead || !Fill()) return false;
  }
}

std::string Client::tls_error() const { return tls_ ? tls_->error() : ""; }

}  // namespace popgate::testing
