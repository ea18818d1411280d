#include "bench/loadgen/attack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "bench/loadgen/connection.h"

namespace popgate::loadgen {
namespace {

// Local failures (no descriptor, no such source address) are ours, not the
// target's answer: say so a few times rather than hide them in "closed".
void LogLocalError(const char* what, int err) {
  static std::atomic<int> logged{0};
  if (logged.fetch_add(1, std::memory_order_relaxed) < 5) {
    std::fprintf(stderr, "loadgen: attacker %s: %s\n", what,
                 std::strerror(err));
  }
}

}  // namespace

AttackPlan::AttackPlan(const Options& options, int index, int threads)
    : options_(options),
      next_guess_(static_cast<uint64_t>(index)),
      stride_(static_cast<uint64_t>(threads)),
      next_source_(static_cast<uint64_t>(index)) {}

Guess AttackPlan::Next() {
  const uint64_t k = next_guess_;
  next_guess_ += stride_;
  const uint64_t m = options_.attack_users.size();
  Guess g;
  g.user = options_.attack_users[k % m];
  const uint64_t n =
      options_.attack_pattern == AttackPattern::kSpray ? k / m : k;
  g.password = options_.attack_password + "-" + std::to_string(n);
  return g;
}

uint32_t AttackPlan::NextSource() {
  const auto& sources = options_.attack_sources;
  uint32_t s = sources[next_source_ % sources.size()];
  next_source_ += stride_;
  return s;
}

AttackConnection::AttackConnection(AttackHost* host) : host_(host) {}

void AttackConnection::Continue() {
  if (stopped_) return;
  if (!have_guess_) {
    guess_ = host_->attack_plan().Next();
    have_guess_ = true;
  }
  attempt_start_ns_ = NowNs();
  if (fd_.valid()) return SendUser();
  Connect();
}

void AttackConnection::Connect() {
  reused_ = false;
  const Target& t = host_->options().target;
  fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) {
    LogLocalError("socket", errno);
    return End(AttemptOutcome::kClosed, false);
  }
  int one = 1;
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // The port is picked at connect time, per destination: many attackers
  // can share one source address without exhausting its ports.
  ::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
               sizeof(one));
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(host_->attack_plan().NextSource());
  if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&src), sizeof(src)) !=
      0) {
    LogLocalError("bind", errno);
    return End(AttemptOutcome::kClosed, false);
  }
  ++host_->attack_stats().connections;
  step_ = Step::kConnect;
  io_ = Io::kConnect;
  host_->ring().Connect(fd_.get(), reinterpret_cast<const sockaddr*>(&t.addr),
                        t.addr_len, this);
}

void AttackConnection::Stop() {
  stopped_ = true;
  if (io_ == Io::kNone) {
    fd_.reset();
    step_ = Step::kIdle;
    return;
  }
  // The completion then arrives at once and closes the socket.
  if (io_ == Io::kConnect) host_->ring().Cancel(this);
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
}

void AttackConnection::OnComplete(int result) {
  const Io io = io_;
  io_ = Io::kNone;
  if (stopped_) {
    fd_.reset();
    step_ = Step::kIdle;
    return;
  }
  if (result == -ECANCELED || result == -ETIME) {
    return End(AttemptOutcome::kTimeout, false);  // the linked timeout
  }
  if (io == Io::kConnect) {
    if (result < 0) return End(AttemptOutcome::kClosed, false);
    step_ = Step::kGreeting;
    parser_.Begin(ResponseParser::Kind::kSingleLine, nullptr);
    return ArmRecv();
  }
  if (result <= 0) {
    if (step_ == Step::kUser && reused_) return Reconnect();
    return End(AttemptOutcome::kClosed, false);
  }
  pending_ = std::string_view(buf_, static_cast<size_t>(result));
  Parse();
}

void AttackConnection::SendUser() {
  Send("USER " + std::string(guess_.user), Step::kUser);
}

void AttackConnection::Send(std::string_view command, Step next) {
  out_.assign(command);
  out_.append("\r\n");
  step_ = next;
  parser_.Begin(ResponseParser::Kind::kSingleLine, nullptr);
  // A few bytes into an empty socket buffer: one non-blocking send takes
  // them (a partial send would mean a wedged peer: count it as closed).
  ssize_t n =
      ::send(fd_.get(), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(out_.size())) {
    if (next == Step::kUser && reused_) return Reconnect();
    return End(AttemptOutcome::kClosed, false);
  }
  if (!pending_.empty()) return Parse();
  ArmRecv();
}

void AttackConnection::ArmRecv() {
  io_ = Io::kRecv;
  host_->ring().Recv(fd_.get(), buf_, sizeof(buf_), this);
}

void AttackConnection::Parse() {
  size_t consumed = 0;
  ResponseParser::Result r = parser_.Feed(pending_, &consumed);
  pending_.remove_prefix(consumed);
  switch (r) {
    case ResponseParser::Result::kNeedMore:
      return ArmRecv();
    case ResponseParser::Result::kError:
      return End(AttemptOutcome::kNoCode, false);
    case ResponseParser::Result::kDone:
      return OnResponse();
  }
}

void AttackConnection::OnResponse() {
  const bool ok = parser_.ok();
  switch (step_) {
    case Step::kGreeting:
      if (!ok) return End(AttemptOutcome::kGreetingErr, false);
      return SendUser();
    case Step::kUser:
      if (!ok) return End(OutcomeOfErr(parser_.status_line()), true);
      return Send("PASS " + guess_.password, Step::kPass);
    case Step::kPass:
      // A right guess: nothing to do with the session; drop it.
      if (ok) return End(AttemptOutcome::kAccepted, false);
      return End(OutcomeOfErr(parser_.status_line()), true);
    case Step::kIdle:
    case Step::kConnect:
      return;  // no response is expected here
  }
}

void AttackConnection::End(AttemptOutcome outcome, bool keep) {
  host_->attack_stats().Add(outcome,
                            static_cast<uint64_t>(NowNs() - attempt_start_ns_));
  have_guess_ = false;
  reused_ = keep;
  if (!keep) {
    fd_.reset();
    pending_ = {};
  }
  step_ = Step::kIdle;
  host_->OnAttackerReady(this);
}

void AttackConnection::Reconnect() {
  fd_.reset();
  pending_ = {};
  reused_ = false;
  step_ = Step::kIdle;
  host_->OnAttackerReady(this);
}

}  // namespace popgate::loadgen
