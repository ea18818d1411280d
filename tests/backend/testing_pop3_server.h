// A scripted POP3 server on 127.0.0.1 for backend/ tests, on its own thread
// with blocking sockets (so it never shares the ring under test): it greets,
// answers each command line through a script, and records every byte it
// receives, so a test can check exactly what popgate sent, and that it
// sent nothing at all.
#ifndef POPGATE_TESTS_BACKEND_TESTING_POP3_SERVER_H_
#define POPGATE_TESTS_BACKEND_TESTING_POP3_SERVER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "base/unique_fd.h"
#include "net/socket_address.h"

namespace popgate::testing {

struct Pop3Reply {
  std::string bytes;   // sent as is (CRLFs included); may be empty
  bool close = false;  // then close the connection
};

struct Pop3Script {
  // Sent when a connection is accepted (after the PROXY header, with
  // expect_proxy_v2); nullopt: never greet (a backend that hangs).
  std::optional<std::string> greeting = "+OK scripted POP3 server ready\r\n";
  // A binary PROXY v2 header comes first: it is recorded, then skipped
  // before lines are parsed (it contains CR LF bytes of its own).
  bool expect_proxy_v2 = false;
  // The answer to one command line (without its CRLF). Default:
  // DefaultPop3Reply.
  std::function<Pop3Reply(const std::string& line)> respond;
};

// CAPA -> "+OK / USER / PIPELINING / IMPLEMENTATION scripted / .", USER ->
// +OK, PASS secret -> +OK, other PASS -> -ERR [AUTH], AUTH PLAIN -> +OK,
// QUIT -> +OK and close, anything else -ERR.
Pop3Reply DefaultPop3Reply(const std::string& line);

class TestingPop3Server {
 public:
  explicit TestingPop3Server(Pop3Script script = {});
  // Stops accepting, closes any connection, joins the thread.
  ~TestingPop3Server();
  TestingPop3Server(const TestingPop3Server&) = delete;
  TestingPop3Server& operator=(const TestingPop3Server&) = delete;

  uint16_t port() const { return port_; }
  // 127.0.0.1:port()
  const SocketAddress& address() const { return address_; }

  // Every byte received so far, over all connections, in order.
  std::string received() const;
  // Every command line received (PROXY header excluded), without CRLF.
  std::vector<std::string> lines() const;
  int connections() const;
  // Waits until every accepted connection has ended (the peer closed, or
  // the script closed it); false after `limit`.
  bool WaitUntilIdle(absl::Duration limit = absl::Seconds(10)) const;

 private:
  void Run();
  void Serve(UniqueFd fd);
  // Waits for `fd` to be readable or the stop pipe; false on stop.
  bool WaitReadable(int fd);

  Pop3Script script_;
  UniqueFd listener_;
  UniqueFd stop_read_, stop_write_;
  uint16_t port_ = 0;
  SocketAddress address_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string received_;
  std::vector<std::string> lines_;
  int connections_ = 0;
  bool serving_ = false;

  std::thread thread_;
};

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_BACKEND_TESTING_POP3_SERVER_H_
