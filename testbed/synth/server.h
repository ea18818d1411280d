// The network side of pop3-synth: one thread, one level-triggered epoll
// set, non-blocking sockets. Each connection owns a Pop3Session and feeds
// it bytes; the session decides what to send, the server sends it with
// sendmsg() straight from the session's output queue (shared bodies
// included) and only asks for EPOLLOUT while the kernel's send buffer is
// full. Thousands of connections cost one small struct each.
#ifndef POPGATE_TESTBED_SYNTH_SERVER_H_
#define POPGATE_TESTBED_SYNTH_SERVER_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "testbed/synth/maildrop.h"
#include "testbed/synth/pop3_session.h"
#include "base/unique_fd.h"
#include "testbed/synth/wire_cache.h"

namespace popgate::synth {

struct ServerOptions {
  std::vector<std::string> listen;  // HOST:PORT, [V6]:PORT
  int idle_timeout_seconds = 600;
  bool verbose = false;
  // Every connection starts with a PROXY protocol header (v2 or v1),
  // read and skipped before the greeting; a malformed or over-long one
  // closes the connection (--proxy-protocol).
  bool proxy_protocol = false;
};

class Server {
 public:
  // All pointers must outlive the server.
  Server(MaildropStore* store, BodyWireCache* cache,
         const SessionOptions* session_options, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on every address. After success, bound_addresses()
  // has the real addresses (with the kernel-chosen port for port 0).
  absl::Status Listen();
  const std::vector<std::string>& bound_addresses() const { return bound_; }

  // Serves until SIGTERM or SIGINT arrives (they are blocked and read from
  // a signalfd, so a signal never interrupts a half-done send).
  absl::Status Run();

 private:
  struct Handler;
  struct Connection;

  void Accept(Handler* listener);
  void OnConnectionEvent(Connection* c, uint32_t events);
  // --proxy-protocol: reads the header; once it is whole, greets and hands
  // what followed it to the session.
  void OnProxyHeaderEvent(Connection* c, uint32_t events);
  // Reads, answers and writes until the connection would block.
  void Pump(Connection* c);
  // Writes queued output, at most *budget bytes (decremented). False if
  // the connection failed.
  bool Flush(Connection* c, size_t* budget);
  // The peer is gone: answer (into the void) what it already sent.
  void DrainCommands(Connection* c);
  void UpdateInterest(Connection* c);
  void Touch(Connection* c);
  void Close(Connection* c);
  void ExpireIdle();
  void SetListenersEnabled(bool enabled);

  MaildropStore* store_;
  BodyWireCache* cache_;
  const SessionOptions* session_options_;
  ServerOptions options_;

  UniqueFd epoll_;
  UniqueFd signal_fd_;
  std::vector<std::unique_ptr<Handler>> listeners_;
  std::unique_ptr<Handler> signal_handler_;
  std::vector<std::string> bound_;
  bool listeners_enabled_ = true;
  int64_t listeners_paused_until_ms_ = 0;

  // Owns the open connections, least recently active first, so idle
  // expiry only looks at the front.
  std::list<std::unique_ptr<Connection>> by_activity_;
  // Connections closed during the current epoll batch; freed after it, as
  // later events of the batch may still point at them.
  std::vector<std::unique_ptr<Connection>> graveyard_;
  size_t open_connections_ = 0;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_SERVER_H_
