#include "bench/loadgen/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

namespace popgate::loadgen {
namespace {

ErrorKind KindOfErrno(int err) {
  switch (err) {
    case ECANCELED:  // the linked timeout fired
    case ETIME:
      return ErrorKind::kTimeout;
    case ECONNRESET:
    case EPIPE:
      return ErrorKind::kClosed;
    default:
      return ErrorKind::kIo;
  }
}

// A wrong message is worth a look; a flood of them is not.
void LogTlsError(const std::string& why) {
  static std::atomic<int> logged{0};
  if (logged.fetch_add(1, std::memory_order_relaxed) < 5) {
    std::fprintf(stderr, "loadgen: %s\n", why.c_str());
  }
}

void LogVerifyError(const std::string& user, int n, const std::string& why) {
  static std::atomic<int> logged{0};
  if (logged.fetch_add(1, std::memory_order_relaxed) < 5) {
    std::fprintf(stderr, "loadgen: RETR %d of %s: %s\n", n, user.c_str(),
                 why.c_str());
  }
}

}  // namespace

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Connection::Connection(ConnectionHost* host, size_t recv_buffer_size)
    : host_(host),
      options_(host->options()),
      buf_(new char[recv_buffer_size]),
      buf_size_(recv_buffer_size) {
  if (host->tls() != nullptr) {
    tls_ = std::make_unique<TlsTransport>(host->tls());
  }
}

void Connection::Start(int user, int64_t scheduled_ns) {
  user_ = user;
  user_name_ = options_.UserName(user);
  start_ns_ = scheduled_ns > 0 ? scheduled_ns : NowNs();
  aborted_ = false;
  pending_ = {};
  sizes_.clear();
  next_retr_ = 0;
  // Every session starts in plain text; TLS (a fresh SSL) begins after
  // connect (implicit) or STLS.
  transport_ = &plain_;
  first_tls_reply_ = false;
  const Target& t = options_.target;
  // A blocking socket on purpose: io_uring then waits for readiness in the
  // kernel instead of failing the operation with EAGAIN.
  fd_.reset(::socket(t.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) {
    step_ = Step::kConnect;
    Fail(ErrorKind::kConnect);
    return;
  }
  int one = 1;
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!options_.sources.empty()) {
    // The port is picked at connect time, per destination.
    ::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                 sizeof(one));
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(host_->NextSource());
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&src),
               sizeof(src)) != 0) {
      step_ = Step::kConnect;
      Fail(ErrorKind::kConnect);
      return;
    }
  }
  step_ = Step::kConnect;
  io_ = Io::kConnect;
  host_->ring().Connect(fd_.get(), reinterpret_cast<const sockaddr*>(&t.addr),
                        t.addr_len, this);
}

void Connection::StartQuit() {
  if (step_ != Step::kHeld) return;
  Command("QUIT", Step::kQuit);
}

void Connection::Abort() {
  if (step_ == Step::kIdle) return;
  aborted_ = true;
  if (io_ == Io::kNone) {
    Fail(ErrorKind::kTimeout);
  } else if (fd_.valid()) {
    ::shutdown(fd_.get(), SHUT_RDWR);
  }
}

void Connection::Abandon() {
  if (step_ == Step::kIdle) return;
  aborted_ = false;
  Fail(ErrorKind::kIo);
}

void Connection::OnComplete(int result) {
  Io io = io_;
  io_ = Io::kNone;
  if (result < 0) {
    // After QUIT's +OK the session has succeeded; a reset now is how some
    // servers close (our close_notify reached a socket already closed).
    if (step_ == Step::kAwaitEof && !aborted_) return Finish();
    if (io == Io::kConnect && result != -ECANCELED) {
      Fail(ErrorKind::kConnect);
    } else {
      Fail(KindOfErrno(-result));
    }
    return;
  }
  switch (io) {
    case Io::kConnect:
      if (options_.tls == TlsMode::kImplicit) return BeginTls();
      step_ = Step::kGreeting;
      parser_.Begin(ResponseParser::Kind::kSingleLine, nullptr);
      ArmRecv();
      return;
    case Io::kSend:
      out_wire_.remove_prefix(static_cast<size_t>(result));
      ContinueSend();
      return;
    case Io::kRecv: {
      if (result == 0) {
        if (step_ == Step::kAwaitEof) {
          Finish();
        } else {
          Fail(ErrorKind::kClosed);
        }
        return;
      }
      std::string error;
      std::string_view plaintext;
      if (!transport_->Open(std::string_view(buf_.get(), result), &plaintext,
                            &error)) {
        return FailTransport(error);
      }
      if (step_ == Step::kAwaitEof) return AwaitEof();  // drop the bytes
      pending_ = plaintext;
      if (step_ == Step::kHandshake && transport_->handshake_done()) {
        return OnHandshakeDone();
      }
      // The handshake's next flight, or a post-handshake message's answer:
      // send it first (ContinueSend then parses pending_ or reads on).
      out_wire_ = transport_->TakeWire();
      if (!out_wire_.empty() || step_ == Step::kHandshake) {
        return ContinueSend();
      }
      Parse();
      return;
    }
    case Io::kNone:
      return;  // cannot happen: one operation in flight at a time
  }
}

void Connection::Command(std::string_view command, Step next,
                         ResponseParser::Kind kind, BodySink* sink) {
  out_.assign(command);
  out_.append("\r\n");
  step_ = next;
  parser_.Begin(kind, sink);
  std::string error;
  if (!transport_->Seal(out_, &out_wire_, &error)) return FailTransport(error);
  ContinueSend();
}

void Connection::BeginTls() {
  step_ = Step::kHandshake;
  // A reply must not be followed by bytes sent before the handshake
  // (STARTTLS command injection, RFC 2595 / CVE-2011-0411 style).
  if (!pending_.empty()) return Fail(ErrorKind::kProtocol);
  std::string error;
  if (tls_ == nullptr) return FailTransport("TLS is not configured");
  if (!tls_->Reset(&tls_session_, &error)) return FailTransport(error);
  transport_ = tls_.get();
  if (!transport_->StartHandshake(&error)) return FailTransport(error);
  out_wire_ = transport_->TakeWire();
  ContinueSend();  // the ClientHello; then reads the server's flight
}

void Connection::OnHandshakeDone() {
  Stats& stats = host_->stats();
  if (tls_->resumed()) {
    ++stats.tls_resumed;
  } else {
    ++stats.tls_full;
    switch (tls_->peer_key()) {
      case PeerKey::kEcdsa: ++stats.tls_full_ecdsa; break;
      case PeerKey::kRsa: ++stats.tls_full_rsa; break;
      case PeerKey::kNone:
      case PeerKey::kOther: break;
    }
  }
  first_tls_reply_ = true;
  if (options_.tls == TlsMode::kImplicit) {
    // The greeting comes over TLS; our Finished (if not sent yet) first.
    step_ = Step::kGreeting;
    parser_.Begin(ResponseParser::Kind::kSingleLine, nullptr);
    out_wire_ = transport_->TakeWire();
    return ContinueSend();
  }
  // STLS: the server has nothing to say until we speak; anything it sent
  // is out of place. Our Finished goes out with the next command.
  if (!pending_.empty()) return Fail(ErrorKind::kProtocol);
  if (options_.mode == Mode::kHandshakes) return Command("QUIT", Step::kQuit);
  Command("USER " + user_name_, Step::kUser);
}

void Connection::FailTransport(const std::string& error) {
  if (options_.tls == TlsMode::kNone) return Fail(ErrorKind::kProtocol);
  if (!aborted_) LogTlsError(error);
  Fail(ErrorKind::kTls);
}

void Connection::ContinueSend() {
  // Commands are tiny and the socket buffer is empty between commands, so
  // a direct non-blocking send nearly always takes all of it: that saves a
  // trip through the ring (and a linked timeout) per command. Only a full
  // buffer falls back to a ring send, which waits with a timeout.
  while (!out_wire_.empty()) {
    ssize_t n = ::send(fd_.get(), out_wire_.data(), out_wire_.size(),
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_wire_.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      io_ = Io::kSend;
      host_->ring().Send(fd_.get(), out_wire_.data(), out_wire_.size(), this);
      return;
    } else {
      Fail(KindOfErrno(n < 0 ? errno : EPIPE));
      return;
    }
  }
  ReadResponse();
}

void Connection::ReadResponse() {
  if (!pending_.empty()) {
    Parse();
  } else {
    ArmRecv();
  }
}

void Connection::ArmRecv() {
  io_ = Io::kRecv;
  host_->ring().Recv(fd_.get(), buf_.get(), buf_size_, this);
}

void Connection::Parse() {
  size_t consumed = 0;
  ResponseParser::Result r = parser_.Feed(pending_, &consumed);
  pending_.remove_prefix(consumed);
  switch (r) {
    case ResponseParser::Result::kNeedMore:
      ArmRecv();
      return;
    case ResponseParser::Result::kError:
      Fail(ErrorKind::kProtocol);
      return;
    case ResponseParser::Result::kDone:
      OnResponse();
      return;
  }
}

void Connection::OnResponse() {
  const bool ok = parser_.ok();
  if (first_tls_reply_) {
    // handshakes mode counts a handshake once a reply came through it
    // (the implicit-TLS greeting, or QUIT's +OK after STLS): that is when
    // it surely completed and the TLS 1.3 tickets have been processed.
    first_tls_reply_ = false;
    if (ok && options_.mode == Mode::kHandshakes) {
      ++host_->stats().handshakes;
      host_->stats().session_latency_ns.Record(
          static_cast<uint64_t>(NowNs() - start_ns_));
    }
  }
  switch (step_) {
    case Step::kGreeting:
      if (!ok) return Fail(ErrorKind::kGreeting);
      if (options_.tls == TlsMode::kStartTls && transport_ == &plain_) {
        return Command("STLS", Step::kStls);
      }
      if (options_.mode == Mode::kHandshakes) {
        return Command("QUIT", Step::kQuit);
      }
      return Command("USER " + user_name_, Step::kUser);
    case Step::kStls:
      if (!ok) return Fail(ErrorKind::kTls);
      return BeginTls();
    case Step::kUser:
      if (!ok) return Fail(ErrorKind::kAuth);
      return Command("PASS " + options_.password, Step::kPass);
    case Step::kPass:
      if (!ok) return Fail(ErrorKind::kAuth);
      ++host_->stats().logins;
      if (options_.mode == Mode::kSessions) {
        host_->stats().login_latency_ns.Record(
            static_cast<uint64_t>(NowNs() - start_ns_));
      }
      return AfterLogin();
    case Step::kStat: {
      int64_t count = 0;
      uint64_t total = 0;
      if (!ok || !ParseStat(parser_.status_line(), &count, &total) ||
          count < options_.retr) {
        return Fail(ErrorKind::kStat);
      }
      if (options_.retr == 0) return Command("QUIT", Step::kQuit);
      if (options_.expect_size != 0) {
        sizes_.assign(options_.retr, options_.expect_size);
        return NextRetrOrQuit();
      }
      list_sink_.text.clear();
      return Command("LIST", Step::kList, ResponseParser::Kind::kMultiLine,
                     &list_sink_);
    }
    case Step::kList: {
      if (!ok) return Fail(ErrorKind::kList);
      sizes_.assign(options_.retr, 0);
      std::string_view text = list_sink_.text;
      while (!text.empty()) {
        size_t lf = text.find('\n');
        std::string_view line = text.substr(0, lf);
        text.remove_prefix(lf == std::string_view::npos ? text.size()
                                                        : lf + 1);
        int64_t n = 0;
        uint64_t size = 0;
        if (!ParseScanLine(line, &n, &size)) return Fail(ErrorKind::kList);
        if (n >= 1 && n <= options_.retr) sizes_[n - 1] = size;
      }
      for (uint64_t size : sizes_) {
        if (size == 0) return Fail(ErrorKind::kList);
      }
      return NextRetrOrQuit();
    }
    case Step::kListOne: {
      int64_t n = 0;
      uint64_t size = 0;
      if (!ok || !ParseScanLine(parser_.status_line(), &n, &size) ||
          n != options_.message) {
        return Fail(ErrorKind::kList);
      }
      retr_number_ = options_.message;
      retr_size_ = size;
      return SendRetr();
    }
    case Step::kRetr:
      if (!ok) return Fail(ErrorKind::kRetr);
      if (!verifier_.Finish()) {
        LogVerifyError(user_name_, retr_number_, verifier_.error());
        return Fail(ErrorKind::kRetrVerify);
      }
      ++host_->stats().messages;
      host_->stats().bytes += retr_size_;
      host_->OnMessageDone();
      if (options_.mode == Mode::kThroughput) {
        if (host_->stopping()) return Command("QUIT", Step::kQuit);
        return SendRetr();
      }
      return NextRetrOrQuit();
    case Step::kQuit:
      if (!ok) return Fail(ErrorKind::kQuit);
      if (options_.mode == Mode::kSessions) {
        host_->stats().session_latency_ns.Record(
            static_cast<uint64_t>(NowNs() - start_ns_));
      }
      ++host_->stats().sessions;
      return AwaitEof();
    case Step::kIdle:
    case Step::kConnect:
    case Step::kHandshake:
    case Step::kHeld:
    case Step::kAwaitEof:
      return;  // no response is expected in these steps
  }
}

void Connection::AfterLogin() {
  switch (options_.mode) {
    case Mode::kSessions:
      return Command("STAT", Step::kStat);
    case Mode::kThroughput:
      if (options_.expect_size != 0) {
        retr_number_ = options_.message;
        retr_size_ = options_.expect_size;
        return SendRetr();
      }
      return Command("LIST " + std::to_string(options_.message),
                     Step::kListOne);
    case Mode::kHold:
      step_ = Step::kHeld;
      return host_->OnLoggedIn(this);
    case Mode::kHandshakes:
      break;  // never logs in
  }
  Command("QUIT", Step::kQuit);
}

void Connection::NextRetrOrQuit() {
  if (next_retr_ < options_.retr) {
    retr_number_ = next_retr_ + 1;
    retr_size_ = sizes_[next_retr_];
    ++next_retr_;
    return SendRetr();
  }
  Command("QUIT", Step::kQuit);
}

void Connection::SendRetr() {
  if (options_.verify) {
    ExpectedMessage expected =
        host_->expected().Get(user_name_, retr_number_, retr_size_);
    verifier_.Begin(retr_size_, &expected);
  } else {
    verifier_.Begin(retr_size_, nullptr);
  }
  Command("RETR " + std::to_string(retr_number_), Step::kRetr,
          ResponseParser::Kind::kMultiLine, &verifier_);
}

void Connection::AwaitEof() {
  step_ = Step::kAwaitEof;
  pending_ = {};
  // The server closes first (its TIME_WAIT, as with plain POP3). A TLS
  // server that ended with close_notify may wait for ours before it closes
  // the socket (nginx waits up to 3 s, which would cap a connection at one
  // session per 3 s): answer it, then wait for the EOF. Best effort, one
  // non-blocking send: the session already succeeded (QUIT got +OK), and a
  // server that closed at once answers it with a reset (see OnComplete).
  if (transport_ == tls_.get() && tls_->peer_closed() &&
      !tls_->close_notify_sent()) {
    std::string error;
    if (!tls_->SendCloseNotify(&error)) return Finish();
    std::string_view wire = transport_->TakeWire();
    if (::send(fd_.get(), wire.data(), wire.size(),
               MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      return Finish();
    }
  }
  ArmRecv();
}

void Connection::Finish() {
  Close();
  host_->OnSessionEnd(this, true);
}

void Connection::Fail(ErrorKind kind) {
  host_->stats().AddError(aborted_ ? ErrorKind::kTimeout : kind);
  Close();
  host_->OnSessionEnd(this, false);
}

void Connection::Close() {
  fd_.reset();
  if (tls_ != nullptr) tls_->Release();
  transport_ = &plain_;
  pending_ = {};
  out_wire_ = {};
  io_ = Io::kNone;
  step_ = Step::kIdle;
}

}  // namespace popgate::loadgen
