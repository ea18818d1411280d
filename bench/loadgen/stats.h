// Counters and a latency histogram that each worker fills on its own and
// the main thread merges at the end: no atomics on the hot path.
#ifndef POPGATE_BENCH_LOADGEN_STATS_H_
#define POPGATE_BENCH_LOADGEN_STATS_H_

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace popgate::loadgen {

// Log-linear histogram (the HdrHistogram idea): 128 linear sub-buckets per
// power of two, so every recorded value is known to within 1/128 (< 0.8 %)
// with a fixed 64 KiB of counters, whatever the number of samples.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const;
  // The q-quantile (0 < q <= 1) by nearest rank: the smallest recorded
  // value v such that at least ceil(q * count) values are <= v, reported as
  // the upper edge of its bucket (clamped to max()). 0 when empty.
  uint64_t Percentile(double q) const;

  static size_t BucketOf(uint64_t value);
  static uint64_t BucketUpperEdge(size_t bucket);

 private:
  static constexpr int kSubBits = 7;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) << kSubBits;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

enum class ErrorKind {
  kConnect,     // connect() failed or was refused
  kGreeting,    // no +OK greeting
  kAuth,        // USER or PASS answered -ERR
  kStat,        // STAT -ERR or unparsable
  kList,        // LIST -ERR, unparsable, or message missing
  kRetr,        // RETR answered -ERR
  kRetrVerify,  // RETR body wrong size or content
  kQuit,        // QUIT answered -ERR
  kTimeout,     // an operation exceeded --io-timeout
  kClosed,      // the server closed the connection mid-session
  kProtocol,    // malformed response (not +OK/-ERR, overlong line, ...)
  kIo,          // any other socket error (ECONNRESET, EPIPE, ...)
  kTls,         // TLS handshake or record failure, STLS refused
  kCount,
};

std::string_view ErrorKindName(ErrorKind kind);

// How one attacker attempt (one wrong password, bench/loadgen/attack.h)
// ended. Every attempt ends exactly one way.
enum class AttemptOutcome {
  kAuth,         // -ERR [AUTH] (to USER or PASS): the server said "wrong"
  kSysTemp,      // -ERR [SYS/TEMP] (a block, a limit), at any step
  kInUse,        // -ERR [IN-USE]
  kOtherCode,    // -ERR with another response code ([SYS/PERM], ...)
  kNoCode,       // -ERR without a response code
  kGreetingErr,  // the greeting itself was -ERR (refused on connect)
  kClosed,       // closed or reset before the answer, or connect refused
  kTimeout,      // no answer within --io-timeout (we gave up)
  kAccepted,     // +OK to PASS: the guess was right (should not happen)
  kCount,
};

std::string_view AttemptOutcomeName(AttemptOutcome outcome);
// The outcome of a -ERR status line by its RFC 2449 response code.
AttemptOutcome OutcomeOfErr(std::string_view status_line);

struct AttackStats {
  uint64_t connections = 0;  // connects started
  uint64_t attempts = 0;     // attempts ended (= sum of outcomes)
  std::array<uint64_t, static_cast<size_t>(AttemptOutcome::kCount)> outcomes{};
  // Attempt start (connect for a connection's first, USER for later ones)
  // to its outcome: how long the target made the attacker wait.
  LatencyHistogram latency_ns;

  void Add(AttemptOutcome outcome, uint64_t latency_ns);
  // Attempts the target turned down: every outcome but kAccepted and
  // kTimeout (where we gave up first).
  uint64_t rejected() const;
  void Merge(const AttackStats& other);
};

struct Stats {
  uint64_t sessions = 0;       // sessions whose QUIT got +OK
  uint64_t logins = 0;         // successful PASS
  uint64_t messages = 0;       // RETRs that passed verification
  uint64_t bytes = 0;          // their unstuffed payload octets
  // TLS: completed handshakes, full and resumed, and in full ones the key
  // type of the server's signature (= its certificate).
  uint64_t tls_full = 0;
  uint64_t tls_resumed = 0;
  uint64_t tls_full_ecdsa = 0;
  uint64_t tls_full_rsa = 0;
  // handshakes mode: handshakes whose first reply over TLS was +OK.
  uint64_t handshakes = 0;
  // --rate: session starts that were due while every connection was busy
  // (each started later, when one freed, or not at all if the run ended).
  uint64_t late = 0;
  std::array<uint64_t, static_cast<size_t>(ErrorKind::kCount)> errors{};
  LatencyHistogram session_latency_ns;
  // sessions mode: connect to PASS +OK (reported with --attackers).
  LatencyHistogram login_latency_ns;
  AttackStats attack;

  void AddError(ErrorKind kind) { ++errors[static_cast<size_t>(kind)]; }
  uint64_t errors_total() const;
  void Merge(const Stats& other);
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_STATS_H_
