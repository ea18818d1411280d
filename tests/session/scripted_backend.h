// A POP3 backend for session tests that runs as coroutines on the same ring
// as the session: it accepts on a loopback listener, greets, and answers
// each command line through a script. Every line it receives is recorded,
// so a test can check what popgate sent (and what it never sent).
#ifndef POPGATE_TESTS_SESSION_SCRIPTED_BACKEND_H_
#define POPGATE_TESTS_SESSION_SCRIPTED_BACKEND_H_

#include <functional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate::testing {

struct BackendReply {
  std::string bytes;         // sent as is (CRLFs included)
  bool close_after = false;  // then close the connection
  bool reset = false;        // close with a reset instead of a FIN
};

struct BackendScript {
  std::string greeting = "+OK scripted backend ready\r\n";
  // The answer to one command line (without its CRLF).
  std::function<BackendReply(const std::string& line)> respond;
};

// The mailbox the default script serves: one message.
std::string TestMessage();

// USER anything -> +OK; PASS secret -> +OK, else -ERR [AUTH]; STAT, LIST,
// RETR 1 (TestMessage, dot-stuffed), NOOP, CAPA, QUIT (+OK, then close).
BackendScript DefaultScript();

class ScriptedBackend {
 public:
  // `listener`: a listening socket (ListenLoopback).
  ScriptedBackend(Ring& ring, UniqueFd listener, BackendScript script);
  ScriptedBackend(const ScriptedBackend&) = delete;
  ScriptedBackend& operator=(const ScriptedBackend&) = delete;

  // Starts accepting (on the ring's thread).
  void Start();
  // No new connections: the accept loop ends (open connections run on
  // until their peer closes).
  void Stop();
  // True once every coroutine of this backend has finished.
  bool done() const { return active_ == 0; }

  // Every line received, over all connections, in order.
  const std::vector<std::string>& lines() const { return lines_; }
  int connections() const { return connections_; }

 private:
  struct Conn;
  Detached AcceptLoop();
  Detached Serve(int fd);

  Ring& ring_;
  UniqueFd listener_;
  BackendScript script_;
  int active_ = 0;
  int connections_ = 0;
  std::vector<std::string> lines_;
};

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_SESSION_SCRIPTED_BACKEND_H_
