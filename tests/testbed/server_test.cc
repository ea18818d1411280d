// Runs the real pop3-synth binary on 127.0.0.1:0 and talks to it over TCP.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "testbed/synth/dot_stuffing.h"
#include "testbed/synth/message.h"
#include "gtest/gtest.h"

namespace popgate::synth {
namespace {

using std::chrono::steady_clock;

// A pop3-synth child process. The destructor kills and reaps it, so a
// failing test never leaves a server behind.
class SynthProcess {
 public:
  explicit SynthProcess(std::vector<std::string> args) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      static std::string bin = POP3_SYNTH_BIN;
      argv.push_back(bin.data());
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
  }
  ~SynthProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_ != nullptr) fclose(stdout_);
  }

  // The next "pop3-synth listening on ..." line; "" on EOF.
  std::string ReadListeningLine() {
    char line[256];
    if (stdout_ == nullptr || fgets(line, sizeof(line), stdout_) == nullptr) {
      return "";
    }
    return line;
  }
  // Sends `sig` and returns the exit status, or -1.
  int StopWith(int sig) {
    kill(pid_, sig);
    int status = 0;
    pid_t r = waitpid(pid_, &status, 0);
    pid_ = -1;
    if (r < 0 || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
};

int PortOf(const std::string& line) {
  size_t colon = line.rfind(':');
  return colon == std::string::npos ? -1 : std::stoi(line.substr(colon + 1));
}

class Client {
 public:
  Client(int family, int port) {
    fd_ = socket(family, SOCK_STREAM, 0);
    sockaddr_storage addr = {};
    socklen_t len;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    }
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }

  void Send(const std::string& s) {
    ASSERT_EQ(send(fd_, s.data(), s.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(s.size()));
  }
  // Reads until `suffix` has arrived (or EOF / 10 s); returns and consumes
  // everything up to and including its first occurrence.
  std::string ReadUntil(const std::string& suffix) {
    auto deadline = steady_clock::now() + std::chrono::seconds(10);
    size_t pos;
    while ((pos = buffer_.find(suffix)) == std::string::npos &&
           steady_clock::now() < deadline) {
      if (!ReadSome(100)) break;
    }
    if (pos == std::string::npos) return std::exchange(buffer_, "");
    std::string out = buffer_.substr(0, pos + suffix.size());
    buffer_.erase(0, pos + suffix.size());
    return out;
  }
  std::string ReadLine() { return ReadUntil("\r\n"); }
  // True if nothing arrived (and the connection stayed open) for `ms`.
  bool SilentFor(int ms) {
    auto deadline = steady_clock::now() + std::chrono::milliseconds(ms);
    while (steady_clock::now() < deadline && buffer_.empty()) {
      if (!ReadSome(50)) return false;
    }
    return buffer_.empty();
  }
  // True if the server closed the connection within `ms`.
  bool ClosedWithin(int ms) {
    auto deadline = steady_clock::now() + std::chrono::milliseconds(ms);
    while (steady_clock::now() < deadline) {
      if (!ReadSome(50)) return eof_;
    }
    return false;
  }

 private:
  bool ReadSome(int timeout_ms) {
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return true;  // keep waiting
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, n);
    return true;
  }

  int fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string RunDump(const std::vector<std::string>& args) {
  std::string cmd = POP3_SYNTH_BIN;
  for (const std::string& a : args) cmd += " '" + a + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  return out;
}

const std::vector<std::string> kUserFlags = {
    "--user",  "alice@example.com:demo", "--messages", "3",
    "--sizes", "2000,300000,250"};

std::vector<std::string> Flags(std::vector<std::string> extra) {
  std::vector<std::string> args = kUserFlags;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(Pop3SynthServerTest, RetrMatchesDumpAndLibrary) {
  SynthProcess server(Flags({"--listen", "127.0.0.1:0"}));
  std::string line = server.ReadListeningLine();
  ASSERT_TRUE(line.starts_with("pop3-synth listening on 127.0.0.1:")) << line;
  int port = PortOf(line);
  ASSERT_GT(port, 0);

  Client c(AF_INET, port);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
  c.Send("USER alice@example.com\r\nPASS demo\r\nRETR 2\r\n");
  EXPECT_EQ(c.ReadLine(), "+OK send PASS\r\n");
  EXPECT_EQ(c.ReadLine(),
            "+OK alice@example.com has 3 messages (302250 octets)\r\n");
  std::string retr = c.ReadUntil("\r\n.\r\n");
  ASSERT_TRUE(retr.starts_with("+OK 300000 octets\r\n")) << retr.substr(0, 80);
  size_t start = retr.find("\r\n") + 2;
  std::string message = DotUnstuff(retr.substr(start, retr.size() - start - 3));

  std::string dumped = RunDump(Flags({"--dump", "alice@example.com", "2"}));
  EXPECT_EQ(dumped.size(), 300000u);
  EXPECT_TRUE(message == dumped) << "RETR differs from --dump";
  EXPECT_EQ(SynthChecksum(message),
            SynthChecksum(SynthMessage("alice@example.com", 2, 300000)));
  EXPECT_TRUE(retr.substr(start) ==
              RunDump(Flags({"--dump-wire", "alice@example.com", "2"})))
      << "RETR differs from --dump-wire";
  c.Send("QUIT\r\n");
  EXPECT_EQ(c.ReadLine(), "+OK pop3-synth signing off (3 messages left)\r\n");
  EXPECT_TRUE(c.ClosedWithin(2000));
  EXPECT_EQ(server.StopWith(SIGTERM), 0);
}

TEST(Pop3SynthServerTest, LockReleasedOnDisconnectAndDeleWithQuit) {
  SynthProcess server(Flags({"--listen", "127.0.0.1:0"}));
  int port = PortOf(server.ReadListeningLine());
  ASSERT_GT(port, 0);
  const std::string login = "USER alice@example.com\r\nPASS demo\r\n";
  {
    Client a(AF_INET, port);
    a.ReadLine();
    a.Send(login + "DELE 1\r\n");
    EXPECT_EQ(a.ReadUntil("deleted\r\n"),
              "+OK send PASS\r\n"
              "+OK alice@example.com has 3 messages (302250 octets)\r\n"
              "+OK message 1 deleted\r\n");
    Client b(AF_INET, port);
    b.ReadLine();
    b.Send(login);
    EXPECT_EQ(b.ReadUntil(".\r\n"),
              "+OK send PASS\r\n-ERR [IN-USE] Mailbox locked.\r\n");
  }  // both vanish without QUIT
  // The server notices the disconnect asynchronously; retry briefly.
  std::string answer;
  for (int i = 0; i < 50; ++i) {
    Client c(AF_INET, port);
    c.ReadLine();
    c.Send(login);
    answer = c.ReadUntil("\r\n");
    answer += c.ReadUntil("\r\n");
    if (answer.find("IN-USE") == std::string::npos) {
      // No QUIT before: message 1 is still there. Now delete it for real.
      c.Send("DELE 1\r\nQUIT\r\n");
      EXPECT_EQ(c.ReadUntil("left)\r\n"),
                "+OK message 1 deleted\r\n"
                "+OK pop3-synth signing off (2 messages left)\r\n");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(answer,
            "+OK send PASS\r\n"
            "+OK alice@example.com has 3 messages (302250 octets)\r\n");
  Client d(AF_INET, port);
  d.ReadLine();
  d.Send(login);
  std::string after = d.ReadUntil("octets)\r\n");
  // QUIT and the next login race only in theory: QUIT is answered after
  // the update.
  EXPECT_NE(after.find("has 2 messages (300250 octets)"), std::string::npos)
      << after;
  EXPECT_EQ(server.StopWith(SIGINT), 0);
}

TEST(Pop3SynthServerTest, PipelinedRetrsWithSlowReader) {
  SynthProcess server(Flags({"--listen", "127.0.0.1:0"}));
  int port = PortOf(server.ReadListeningLine());
  ASSERT_GT(port, 0);
  Client c(AF_INET, port);
  c.ReadLine();
  std::string input = "USER alice@example.com\r\nPASS demo\r\n";
  for (int i = 0; i < 30; ++i) input += "RETR 2\r\n";
  input += "QUIT\r\n";
  c.Send(input);
  // Do not read for a while: the server must just wait.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string all = c.ReadUntil("left)\r\n");
  std::string one = "+OK 300000 octets\r\n" +
                    DotStuff(SynthMessage("alice@example.com", 2, 300000)) +
                    ".\r\n";
  const std::string login_answer =
      "+OK send PASS\r\n"
      "+OK alice@example.com has 3 messages (302250 octets)\r\n";
  ASSERT_TRUE(all.starts_with(login_answer));
  size_t head = login_answer.size();
  ASSERT_EQ(all.size(), head + 30 * one.size() +
                            std::string("+OK pop3-synth signing off (3 "
                                        "messages left)\r\n")
                                .size());
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(all.compare(head + i * one.size(), one.size(), one), 0) << i;
  }
  EXPECT_EQ(server.StopWith(SIGTERM), 0);
}

TEST(Pop3SynthServerTest, Ipv6AndSeveralListeners) {
  SynthProcess server(
      Flags({"--listen", "127.0.0.1:0", "--listen", "[::1]:0"}));
  std::string v4 = server.ReadListeningLine();
  std::string v6 = server.ReadListeningLine();
  ASSERT_TRUE(v4.starts_with("pop3-synth listening on 127.0.0.1:")) << v4;
  if (!v6.starts_with("pop3-synth listening on [::1]:")) {
    GTEST_SKIP() << "no IPv6 loopback: " << v6;
  }
  Client c(AF_INET6, PortOf(v6));
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
  EXPECT_EQ(server.StopWith(SIGTERM), 0);
}

TEST(Pop3SynthServerTest, IdleTimeoutClosesSilently) {
  SynthProcess server(
      Flags({"--listen", "127.0.0.1:0", "--idle-timeout", "1"}));
  int port = PortOf(server.ReadListeningLine());
  ASSERT_GT(port, 0);
  Client c(AF_INET, port);
  EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
  EXPECT_TRUE(c.ClosedWithin(4000));
  EXPECT_EQ(server.StopWith(SIGTERM), 0);
}

TEST(Pop3SynthServerTest, ProxyProtocolHeaderSkippedBeforeGreeting) {
  SynthProcess server(Flags({"--listen", "127.0.0.1:0", "--proxy-protocol"}));
  int port = PortOf(server.ReadListeningLine());
  ASSERT_GT(port, 0);
  const std::string sig("\r\n\r\n\0\r\nQUIT\n", 12);
  {
    // PROXY v2 TCP4 with the first command pipelined behind it.
    Client c(AF_INET, port);
    ASSERT_TRUE(c.connected());
    EXPECT_TRUE(c.SilentFor(200));  // no greeting before the header
    std::string header = sig + std::string("\x21\x11\x00\x0c", 4) +
                         std::string(
                             "\xc0\x00\x02\x01\x7f\x00\x00\x01"
                             "\xdc\x04\x00\x6e",
                             12);
    c.Send(header.substr(0, 7));  // split: the reader waits for the rest
    c.Send(header.substr(7) + "USER alice@example.com\r\n");
    EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
    EXPECT_EQ(c.ReadLine(), "+OK send PASS\r\n");
  }
  {
    // LOCAL, as popgate's health checks send it; then a whole session.
    Client c(AF_INET, port);
    c.Send(sig + std::string("\x20\x00\x00\x00", 4));
    EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
    c.Send("QUIT\r\n");
    EXPECT_TRUE(c.ReadLine().starts_with("+OK pop3-synth signing off"));
  }
  {
    Client c(AF_INET, port);
    c.Send("PROXY TCP4 192.0.2.1 127.0.0.1 56324 110\r\n");
    EXPECT_EQ(c.ReadLine(), "+OK pop3-synth ready.\r\n");
  }
  {
    // No header: closed without a greeting.
    Client c(AF_INET, port);
    c.Send("USER alice@example.com\r\n");
    EXPECT_TRUE(c.ClosedWithin(2000));
    EXPECT_EQ(c.ReadLine(), "");
  }
  {
    // A v2 header announcing more than 4096 bytes: closed at once.
    Client c(AF_INET, port);
    c.Send(sig + std::string("\x21\x11\x10\x00", 4));
    EXPECT_TRUE(c.ClosedWithin(2000));
    EXPECT_EQ(c.ReadLine(), "");
  }
  EXPECT_EQ(server.StopWith(SIGTERM), 0);
}

TEST(Pop3SynthServerTest, BadFlagsExitNonZero) {
  SynthProcess server({"--no-such-flag"});
  EXPECT_EQ(server.ReadListeningLine(), "");
  EXPECT_EQ(server.StopWith(0), 2);
}

}  // namespace
}  // namespace popgate::synth
