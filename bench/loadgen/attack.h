// Attacker connections for sessions mode (--attackers N): beside the good
// sessions, each attacker logs in with wrong passwords as fast as the target
// answers, tries again on the same connection while it stays open, and
// reconnects when the target closes it or refuses it. Plain POP3 only.
//
// How each attempt ended is counted in AttackStats (stats.h), apart from the
// good sessions' Stats, so the report shows what the defence did to the
// attack and what the attack did to everybody else.
#ifndef POPGATE_BENCH_LOADGEN_ATTACK_H_
#define POPGATE_BENCH_LOADGEN_ATTACK_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "bench/loadgen/options.h"
#include "bench/loadgen/pop3_client.h"
#include "bench/loadgen/ring_loop.h"
#include "bench/loadgen/stats.h"

namespace popgate::loadgen {

// One guess: who, with what, from where.
struct Guess {
  std::string_view user;
  std::string password;
};

// The deterministic sequence of guesses and source addresses of one worker
// (worker `index` of `threads` takes every threads-th guess, so no two
// workers try the same password). No sockets: unit-tested.
//   spray: guess k tries user k % M with password P-(k / M): one round of
//          a common password over every user, then the next password.
//   stuff: guess k tries user k % M (one user by default) with P-k.
class AttackPlan {
 public:
  AttackPlan(const Options& options, int index, int threads);
  Guess Next();
  // The source address (host byte order) for the next connection: the
  // sources in turn.
  uint32_t NextSource();

 private:
  const Options& options_;
  uint64_t next_guess_;
  const uint64_t stride_;
  uint64_t next_source_;
};

class AttackConnection;

// What an attacker needs from the worker that runs it.
class AttackHost {
 public:
  virtual RingLoop& ring() = 0;
  virtual const Options& options() const = 0;
  virtual AttackStats& attack_stats() = 0;
  virtual AttackPlan& attack_plan() = 0;
  // The attacker is between attempts: on its open connection (`open`) or
  // with none. The host starts its next attempt now or later (rate cap,
  // winding down) with Continue().
  virtual void OnAttackerReady(AttackConnection* a) = 0;

 protected:
  ~AttackHost() = default;
};

class AttackConnection final : public Completion {
 public:
  explicit AttackConnection(AttackHost* host);

  // The next attempt: on the open connection, else on a new one.
  void Continue();
  // Winding down: ends the connection now; the attempt in flight is not
  // counted. The host is not called back.
  void Stop();
  bool open() const { return fd_.valid(); }
  // An operation is in flight.
  bool busy() const { return io_ != Io::kNone; }

  void OnComplete(int result) override;

 private:
  enum class Step { kIdle, kConnect, kGreeting, kUser, kPass };
  enum class Io { kNone, kConnect, kRecv };

  void Connect();
  void SendUser();
  void Send(std::string_view command, Step next);
  void ArmRecv();
  void Parse();
  void OnResponse();
  // The attempt ended: count it; `keep` = the connection stays usable.
  void End(AttemptOutcome outcome, bool keep);
  // The connection is gone without an answer to count (the target closed
  // after answering the previous attempt): retry the guess elsewhere.
  void Reconnect();

  AttackHost* host_;
  UniqueFd fd_;
  Step step_ = Step::kIdle;
  Io io_ = Io::kNone;
  bool stopped_ = false;
  // The connection already carried an attempt: a close before the next
  // answer is the target ending it after that answer, not a refusal.
  bool reused_ = false;
  bool have_guess_ = false;
  Guess guess_;
  int64_t attempt_start_ns_ = 0;
  std::string out_;
  std::string_view pending_;
  ResponseParser parser_;
  char buf_[1024];
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_ATTACK_H_
