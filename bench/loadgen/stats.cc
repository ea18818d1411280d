#include "bench/loadgen/stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace popgate::loadgen {

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t value) {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (value < kSub) return static_cast<size_t>(value);
  int exponent = 63 - std::countl_zero(value);  // >= kSubBits
  int shift = exponent - kSubBits;
  uint64_t mantissa = (value >> shift) & (kSub - 1);
  return static_cast<size_t>((shift + 1) * kSub + mantissa);
}

uint64_t LatencyHistogram::BucketUpperEdge(size_t bucket) {
  constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  if (bucket < kSub) return bucket;
  int shift = static_cast<int>(bucket / kSub) - 1;
  uint64_t mantissa = bucket % kSub;
  uint64_t lower = (kSub + mantissa) << shift;
  return lower + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  ++counts_[BucketOf(value)];
  ++count_;
  max_ = std::max(max_, value);
  sum_ += value;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0 : static_cast<double>(sum_ / count_);
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The epsilon keeps 0.999 * 10000 (= 9989.999... or 9990.000...1 in
  // binary) at rank 9990.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * count_ - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketUpperEdge(i), max_);
  }
  return max_;
}

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kGreeting: return "greeting";
    case ErrorKind::kAuth: return "auth";
    case ErrorKind::kStat: return "stat";
    case ErrorKind::kList: return "list";
    case ErrorKind::kRetr: return "retr";
    case ErrorKind::kRetrVerify: return "retr_verify";
    case ErrorKind::kQuit: return "quit";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kClosed: return "closed";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kIo: return "io";
    case ErrorKind::kTls: return "tls";
    case ErrorKind::kCount: break;
  }
  return "?";
}

uint64_t Stats::errors_total() const {
  uint64_t total = 0;
  for (uint64_t e : errors) total += e;
  return total;
}

void Stats::Merge(const Stats& other) {
  sessions += other.sessions;
  logins += other.logins;
  messages += other.messages;
  bytes += other.bytes;
  tls_full += other.tls_full;
  tls_resumed += other.tls_resumed;
  tls_full_ecdsa += other.tls_full_ecdsa;
  tls_full_rsa += other.tls_full_rsa;
  handshakes += other.handshakes;
  late += other.late;
  for (size_t i = 0; i < errors.size(); ++i) errors[i] += other.errors[i];
  session_latency_ns.Merge(other.session_latency_ns);
  login_latency_ns.Merge(other.login_latency_ns);
  attack.Merge(other.attack);
}

std::string_view AttemptOutcomeName(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::kAuth:
      return "auth";
    case AttemptOutcome::kSysTemp:
      return "sys_temp";
    case AttemptOutcome::kInUse:
      return "in_use";
    case AttemptOutcome::kOtherCode:
      return "other_code";
    case AttemptOutcome::kNoCode:
      return "no_code";
    case AttemptOutcome::kGreetingErr:
      return "greeting_err";
    case AttemptOutcome::kClosed:
      return "closed";
    case AttemptOutcome::kTimeout:
      return "timeout";
    case AttemptOutcome::kAccepted:
      return "accepted";
    case AttemptOutcome::kCount:
      break;
  }
  return "?";
}

AttemptOutcome OutcomeOfErr(std::string_view line) {
  // "-ERR [CODE/SUB] text": the code is the bracketed first word.
  constexpr std::string_view kErr = "-ERR ";
  if (!line.starts_with(kErr)) return AttemptOutcome::kNoCode;
  line.remove_prefix(kErr.size());
  if (!line.starts_with("[")) return AttemptOutcome::kNoCode;
  size_t close = line.find(']');
  if (close == std::string_view::npos) return AttemptOutcome::kNoCode;
  std::string_view code = line.substr(1, close - 1);
  if (code == "AUTH") return AttemptOutcome::kAuth;
  if (code == "SYS/TEMP") return AttemptOutcome::kSysTemp;
  if (code == "IN-USE") return AttemptOutcome::kInUse;
  return AttemptOutcome::kOtherCode;
}

void AttackStats::Add(AttemptOutcome outcome, uint64_t latency) {
  ++attempts;
  ++outcomes[static_cast<size_t>(outcome)];
  latency_ns.Record(latency);
}

uint64_t AttackStats::rejected() const {
  return attempts - outcomes[static_cast<size_t>(AttemptOutcome::kAccepted)] -
         outcomes[static_cast<size_t>(AttemptOutcome::kTimeout)];
}

void AttackStats::Merge(const AttackStats& other) {
  connections += other.connections;
  attempts += other.attempts;
  for (size_t i = 0; i < outcomes.size(); ++i) outcomes[i] += other.outcomes[i];
  latency_ns.Merge(other.latency_ns);
}

}  // namespace popgate::loadgen
