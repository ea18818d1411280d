// A loopback POP3 server for health-check tests, on its own thread with
// blocking sockets (bounded by short timeouts, so it cannot hang a test):
// greets (or not), answers CAPA, STLS and QUIT as told, and counts what
// each connection sent. One connection at a time, like the checker's
// checks of one backend.
#ifndef POPGATE_TESTS_BACKEND_TESTING_CHECK_SERVER_H_
#define POPGATE_TESTS_BACKEND_TESTING_CHECK_SERVER_H_

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "net/socket_address.h"

namespace popgate::testing {

struct CheckServerOptions {
  // The greeting line (CRLF added); empty: accept and never say anything.
  std::string greeting = "+OK ready";
  // The whole answer to CAPA, CRLFs included.
  std::string capa_reply = "+OK\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n";
  // Read a 16-byte PROXY v2 LOCAL header before greeting (a listener with
  // `haproxy = yes` needs it first).
  bool expect_proxy_v2 = false;
  // TLS with a throw-away self-signed certificate for "check.test":
  // kStartTls answers STLS with +OK and shakes hands; kImplicit shakes
  // hands before the greeting. kNone answers STLS with -ERR.
  enum class Tls { kNone, kStartTls, kImplicit };
  Tls tls = Tls::kNone;
};

class CheckServer {
 public:
  explicit CheckServer(CheckServerOptions options = {});
  ~CheckServer();
  CheckServer(const CheckServer&) = delete;
  CheckServer& operator=(const CheckServer&) = delete;

  const SocketAddress& address() const { return address_; }
  std::string address_string() const { return address_.ToString(); }

  int connections() const { return connections_.load(); }
  int capas() const { return capas_.load(); }
  int quits() const { return quits_.load(); }
  int stls() const { return stls_.load(); }
  // TLS handshakes that completed.
  int handshakes() const { return handshakes_.load(); }
  // Connections the peer closed (EOF) while we were still listening.
  int closed_by_peer() const { return closed_by_peer_.load(); }
  bool connection_open() const { return open_.load(); }
  // With expect_proxy_v2: the first 16 bytes of each connection.
  std::vector<std::string> preambles() const;

 private:
  void Run();
  void Serve(int fd);

  const CheckServerOptions options_;
  UniqueFd listener_;
  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> capas_{0};
  std::atomic<int> quits_{0};
  std::atomic<int> stls_{0};
  std::atomic<int> handshakes_{0};
  void* ssl_ctx_ = nullptr;  // SSL_CTX* with tls != kNone
  std::atomic<int> closed_by_peer_{0};
  std::atomic<bool> open_{false};
  mutable std::mutex mu_;
  std::vector<std::string> preambles_;
  std::thread thread_;
};

// An address on loopback where nothing listens (connect is refused).
SocketAddress ClosedLoopbackAddress();

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_BACKEND_TESTING_CHECK_SERVER_H_
