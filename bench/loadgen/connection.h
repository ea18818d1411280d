// One POP3 client connection driven by completions from the worker's ring:
// connect, greeting, USER/PASS, then what the mode asks for, QUIT, and a
// clean close (we wait for the server's FIN, so the TIME_WAIT stays on the
// server side and a long run does not exhaust our ephemeral ports).
//
// At most ONE operation of a connection is in flight at any time (commands
// are sent one at a time, as a real mail client does), so the completion
// handler is the only place that advances it and nothing can complete on a
// connection that is being closed or reused.
#ifndef POPGATE_BENCH_LOADGEN_CONNECTION_H_
#define POPGATE_BENCH_LOADGEN_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen/options.h"
#include "bench/loadgen/pop3_client.h"
#include "bench/loadgen/ring_loop.h"
#include "bench/loadgen/stats.h"
#include "bench/loadgen/tls_transport.h"
#include "bench/loadgen/transport.h"
#include "bench/loadgen/verifier.h"

namespace popgate::loadgen {

class Connection;

// What a connection needs from the worker that runs it.
class ConnectionHost {
 public:
  virtual RingLoop& ring() = 0;
  virtual const Options& options() const = 0;
  virtual Stats& stats() = 0;
  virtual ExpectedContent& expected() = 0;
  // The run's TLS client context; null without --tls.
  virtual const TlsClient* tls() const = 0;
  // Throughput mode: true once the run should wind down (finish the
  // current message, then QUIT).
  virtual bool stopping() const = 0;
  // Hold mode: the session is logged in and now idles until StartQuit().
  virtual void OnLoggedIn(Connection* c) = 0;
  // The session is over (socket closed); `ok` = no error was counted.
  virtual void OnSessionEnd(Connection* c, bool ok) = 0;
  // A RETR finished and verified (for the throughput time window).
  virtual void OnMessageDone() = 0;
  // --source: the source address (IPv4, host byte order) of the next
  // session; only called when options().sources is not empty.
  virtual uint32_t NextSource() = 0;

 protected:
  ~ConnectionHost() = default;
};

class Connection final : public Completion {
 public:
  Connection(ConnectionHost* host, size_t recv_buffer_size);

  // Starts a session as user index `user`. The connection must be idle.
  // Its latency counts from `scheduled_ns` (--rate: when the session was due,
  // which may be earlier than now) if given, else from now.
  void Start(int user, int64_t scheduled_ns = 0);
  // Hold mode: ends an idle logged-in session with QUIT.
  void StartQuit();
  // Shuts the socket down so the operation in flight completes now (used
  // when the run overstays its time). The session then ends as a timeout.
  void Abort();
  // The ring failed: end the session now, as an I/O error, without waiting
  // for the operation in flight (it will never complete).
  void Abandon();

  void OnComplete(int result) override;

  bool idle() const { return step_ == Step::kIdle; }
  bool held() const { return step_ == Step::kHeld; }
  int user() const { return user_; }

 private:
  enum class Step {
    kIdle,      // no session
    kConnect,
    kGreeting,
    kStls,       // STLS sent, waiting for +OK
    kHandshake,  // TLS handshake in progress
    kUser,
    kPass,
    kStat,
    kList,      // sessions mode, sizes unknown: multi-line LIST
    kListOne,   // throughput mode, size unknown: LIST n
    kRetr,
    kHeld,      // hold mode: logged in, idle, nothing in flight
    kQuit,
    kAwaitEof,  // QUIT answered; waiting for the server to close
  };
  enum class Io { kNone, kConnect, kSend, kRecv };

  void Fail(ErrorKind kind);
  // A transport call failed: a TLS error (logged) when TLS is on.
  void FailTransport(const std::string& error);
  // Switches to TLS and sends the ClientHello.
  void BeginTls();
  void OnHandshakeDone();
  // After QUIT's +OK: waits for the server to close the connection.
  void AwaitEof();
  void Finish();
  void Close();

  // Sends `command` (CRLF added) and then reads a response of `kind` into
  // `sink`, moving to `next`.
  void Command(std::string_view command, Step next,
               ResponseParser::Kind kind = ResponseParser::Kind::kSingleLine,
               BodySink* sink = nullptr);
  void ContinueSend();
  void ReadResponse();
  void ArmRecv();
  // Feeds pending_ to the parser; dispatches a complete response.
  void Parse();
  void OnResponse();
  void AfterLogin();
  void NextRetrOrQuit();
  void SendRetr();

  ConnectionHost* host_;
  const Options& options_;
  std::unique_ptr<char[]> buf_;
  size_t buf_size_;
  UniqueFd fd_;
  // The transport in use: plain_, or tls_ once TLS has begun (tls_ and
  // tls_session_ live as long as the connection slot: the SSL_SESSION kept
  // for resumption belongs to the slot, and the buffers are reused).
  Transport* transport_ = &plain_;
  PlainTransport plain_;
  std::unique_ptr<TlsTransport> tls_;
  TlsSession tls_session_;
  bool first_tls_reply_ = false;  // the next reply is the first over TLS
  Step step_ = Step::kIdle;
  Io io_ = Io::kNone;
  bool aborted_ = false;
  int user_ = -1;
  std::string user_name_;
  int64_t start_ns_ = 0;

  std::string out_;             // command being sent
  std::string_view out_wire_;   // its wire bytes not yet sent
  std::string_view pending_;    // received application bytes not parsed
  ResponseParser parser_;
  StringSink list_sink_;
  MessageVerifier verifier_;

  // RETR plan for this session: message numbers and their sizes.
  std::vector<uint64_t> sizes_;  // sizes_[i] = size of message i + 1
  int next_retr_ = 0;            // sessions mode: index into 1..retr
  int retr_number_ = 0;          // message being retrieved
  uint64_t retr_size_ = 0;
};

int64_t NowNs();

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_CONNECTION_H_
