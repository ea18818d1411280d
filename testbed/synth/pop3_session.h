// The POP3 protocol (RFC 1939, RFC 2449 CAPA/RESP-CODES/PIPELINING) for one
// client connection, as a pure state machine: bytes go in with Feed(),
// responses come out of output(). No sockets, no clock, so every protocol
// path is unit-testable; server.h moves the bytes.
#ifndef POPGATE_TESTBED_SYNTH_POP3_SESSION_H_
#define POPGATE_TESTBED_SYNTH_POP3_SESSION_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "testbed/synth/maildrop.h"
#include "testbed/synth/output_queue.h"
#include "testbed/synth/wire_cache.h"

namespace popgate::synth {

struct SessionOptions {
  std::string greeting = "pop3-synth ready.";
  // Logs commands (never PASS arguments) to stderr.
  bool verbose = false;
};

class Pop3Session {
 public:
  // RFC 2449 4: a command line is at most 255 octets including CRLF.
  static constexpr size_t kMaxCommandLine = 255;
  // Overlong lines tolerated before the connection is closed.
  static constexpr int kMaxOverlongLines = 3;

  // All pointers must outlive the session.
  Pop3Session(MaildropStore* store, BodyWireCache* cache,
              const SessionOptions* options);
  // Releases the maildrop lock WITHOUT entering UPDATE: a client that goes
  // away without QUIT keeps its messages (RFC 1939 6).
  ~Pop3Session();
  Pop3Session(const Pop3Session&) = delete;
  Pop3Session& operator=(const Pop3Session&) = delete;

  // Queues the greeting. Call once, first.
  void Start();
  // Appends client bytes. Call Process() afterwards.
  void Feed(std::string_view bytes);
  // Answers buffered complete commands in order, stopping early while the
  // output queue is full (the client is not reading): that is the
  // backpressure that keeps a pipelining client from growing our memory.
  void Process();

  // False while the unprocessed input is large: the server should stop
  // reading the socket until Process() has caught up.
  bool WantsInput() const;
  // True after QUIT (or too many bad lines): answer nothing more, close once
  // the output is flushed.
  bool closing() const { return closing_; }
  bool logged_in() const { return state_ == State::kTransaction; }
  // True if complete commands are buffered but not yet answered.
  bool HasPendingCommands() const;

  OutputQueue& output() { return output_; }
  // Everything queued so far. For tests.
  std::string TakeOutput() { return output_.TakeAll(); }

 private:
  enum class State { kAuthorization, kTransaction, kClosed };

  bool OutputFull() const;
  void HandleLine(std::string_view line);
  void HandleAuthorization(std::string_view cmd, std::string_view args);
  void HandleTransaction(std::string_view cmd, std::string_view args);
  void Pass(std::string_view password);
  void Quit();

  void Stat();
  void List(std::string_view args, bool uidl);
  void Top(std::string_view args);
  void Retr(std::string_view args);
  void Dele(std::string_view args);
  void Rset();

  // Parses a message-number argument and checks it refers to a message
  // that exists and is not deleted; on failure queues -ERR and returns -1.
  int MessageIndex(std::string_view arg);
  // Queues header section + first `body_lines` body lines (all if < 0),
  // dot-stuffed and terminated, for message `index`.
  void QueueMessage(size_t index, long body_lines);

  void Reply(std::string_view line);  // appends CRLF

  MaildropStore* store_;
  BodyWireCache* cache_;
  const SessionOptions* options_;

  State state_ = State::kAuthorization;
  bool closing_ = false;
  std::string pending_user_;      // from USER, until PASS
  Maildrop* maildrop_ = nullptr;  // locked by us while in TRANSACTION
  std::vector<bool> deleted_;

  std::string input_;
  size_t input_pos_ = 0;
  bool discarding_ = false;  // inside an overlong line, until its LF
  int overlong_lines_ = 0;

  OutputQueue output_;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_POP3_SESSION_H_
