// A real redis-server for the store tests: its own config in a temp dir,
// 127.0.0.1 on a free port, nothing saved, started as a child (killed with
// the test process) and stopped by PID. Kill/Pause/Resume/Restart for the
// outage cases; Sync() is a blocking hiredis client for assertions.
#ifndef POPGATE_TESTS_STORE_REDIS_TEST_SERVER_H_
#define POPGATE_TESTS_STORE_REDIS_TEST_SERVER_H_

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/runtime/test_util.h"

namespace popgate::testing {

inline std::string RedisServerBinary() {
  if (const char* env = ::getenv("REDIS_SERVER")) return env;
  for (const char* p :
       {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

struct RedisFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using SyncRedis = std::unique_ptr<redisContext, RedisFree>;
using SyncReply = std::unique_ptr<redisReply, ReplyFree>;

class RedisTestServer {
 public:
  explicit RedisTestServer(std::string password = "")
      : password_(std::move(password)) {
    char tmpl[] = "/tmp/popgate-redis-XXXXXX";
    dir_ = ::mkdtemp(tmpl) ? tmpl : "";
    port_ = ClosedLoopbackPort();
  }
  ~RedisTestServer() {
    Stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }
  // Lines appended to redis.conf by Start() (ACL users, ...).
  void AddConfig(std::string lines) { extra_ += lines; }
  // Also listen on a unix socket (mode 700) in the server's own dir.
  std::string EnableUnixSocket() {
    unix_socket_ = dir_ + "/redis.sock";
    return unix_socket_;
  }

  bool Start() {
    const std::string bin = RedisServerBinary();
    if (bin.empty() || dir_.empty()) return false;
    const std::string conf = dir_ + "/redis.conf";
    {
      std::ofstream f(conf);
      f << "port " << port_ << "\nbind 127.0.0.1\nprotected-mode no\n"
        << "save \"\"\nappendonly no\ndaemonize no\ndatabases 4\n"
        << "dir " << dir_ << "\nlogfile " << dir_ << "/redis.log\n";
      if (!password_.empty()) f << "requirepass " << password_ << "\n";
      if (!unix_socket_.empty()) {
        f << "unixsocket " << unix_socket_ << "\nunixsocketperm 700\n";
      }
      f << extra_;
    }
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execl(bin.c_str(), bin.c_str(), conf.c_str(), nullptr);
      ::_exit(127);
    }
    pid_ = pid;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      SyncRedis c = Sync();
      if (c) {
        SyncReply r(static_cast<redisReply*>(redisCommand(c.get(), "PING")));
        if (r && r->type == REDIS_REPLY_STATUS) return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  void Pause() { Signal(SIGSTOP); }
  void Resume() { Signal(SIGCONT); }
  // A crash: SIGKILL, no clean close of its connections.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // A blocking client (null when it cannot connect), authenticated.
  SyncRedis Sync(int db = 0) const {
    timeval tv{1, 0};
    SyncRedis c(redisConnectWithTimeout("127.0.0.1", port_, tv));
    if (!c || c->err) return nullptr;
    redisSetTimeout(c.get(), tv);
    if (!password_.empty()) {
      SyncReply r(static_cast<redisReply*>(
          redisCommand(c.get(), "AUTH %s", password_.c_str())));
      if (!r || r->type == REDIS_REPLY_ERROR) return nullptr;
    }
    if (db != 0) {
      SyncReply r(
          static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", db)));
      if (!r || r->type == REDIS_REPLY_ERROR) return nullptr;
    }
    return c;
  }

 private:
  std::string password_;
  std::string dir_;
  std::string extra_;
  std::string unix_socket_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_STORE_REDIS_TEST_SERVER_H_
