// loadgen's command line, parsed into a plain struct so that parsing (and
// the loopback-only rule) is unit-testable without sockets.
#ifndef POPGATE_BENCH_LOADGEN_OPTIONS_H_
#define POPGATE_BENCH_LOADGEN_OPTIONS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace popgate::loadgen {

enum class Mode { kSessions, kThroughput, kHold, kHandshakes };

std::string_view ModeName(Mode mode);

// --tls: none (plain POP3), implicit (POP3S: handshake right after
// connect), starttls (greeting, STLS, +OK, handshake).
enum class TlsMode { kNone, kImplicit, kStartTls };
// --tls-sigalgs: which server certificate type the client accepts.
enum class TlsSigalgs { kAny, kEcdsa, kRsa };
// --tls-version
enum class TlsVersion { kAny, k12, k13 };
// --attack: what the attacker connections try (sessions mode).
//   spray: one source address (by default), many users, one wrong password
//          per user per round.
//   stuff: many source addresses, one user, a new wrong password each try.
enum class AttackPattern { kSpray, kStuff };

std::string_view TlsModeName(TlsMode mode);
std::string_view TlsSigalgsName(TlsSigalgs s);
std::string_view TlsVersionName(TlsVersion v);
std::string_view AttackPatternName(AttackPattern p);

// A resolved loopback target: sockaddr ready for connect(2).
struct Target {
  std::string text;  // as given, for the report
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

struct Options {
  Mode mode = Mode::kSessions;
  Target target;
  int concurrency = 10;
  double duration_s = 10;
  // sessions mode: stop after this many sessions (0 = duration only).
  // hold mode: how many sessions to hold.
  int64_t sessions = 0;
  int threads = 1;
  int retr = 0;                 // sessions mode: RETR messages 1..retr
  int message = 1;              // throughput mode: RETR this message
  int users = 0;                // 0 = as many as needed (concurrency/sessions)
  std::string user_format = "user{i}@example.com";
  std::string password = "password";
  uint64_t expect_size = 0;     // 0 = learn sizes from LIST
  bool verify = true;
  double io_timeout_s = 10;
  size_t recv_buffer = 0;       // 0 = per-mode default
  std::vector<int> pids;        // hold mode: processes whose RSS to sample
  // TLS (bench/loadgen/tls_transport.h).
  TlsMode tls = TlsMode::kNone;
  bool tls_resume = false;      // reuse each connection slot's last session
  TlsSigalgs tls_sigalgs = TlsSigalgs::kAny;
  TlsVersion tls_version = TlsVersion::kAny;
  bool tls_verify = false;      // benchmarks use self-signed certificates
  std::string tls_ca;           // --tls-verify: CA bundle (empty = system)
  std::string tls_server_name;  // SNI (and the name verified); empty = none
  // Source addresses (IPv4 loopback, host byte order) the good sessions
  // bind to, one after the other per session; empty = the kernel's choice.
  std::vector<uint32_t> sources;
  // Attack (bench/loadgen/attack.h), sessions mode only. `attack` is true
  // once --attackers was given (even 0: the report then carries the attack
  // keys, so a baseline run reads like the attacked one).
  bool attack = false;
  int attackers = 0;
  AttackPattern attack_pattern = AttackPattern::kSpray;
  std::vector<uint32_t> attack_sources;   // default by pattern
  std::vector<std::string> attack_users;  // names, from FILE or generated
  std::string attack_users_file;
  std::string attack_user_format = "victim{i}@example.com";
  int attack_user_count = 0;  // 0 = by pattern (spray 1000, stuff 1)
  std::string attack_password = "wrong";
  double attack_rate = 0;  // attempts/s over all attackers; 0 = no cap
  // --rate: sessions mode, open loop: start sessions at this offered rate
  // (per second, over all threads, evenly spaced), at most --concurrency in
  // flight; latency counts from each session's scheduled start. 0 = closed
  // loop (each connection starts its next session when one ends).
  double rate = 0;
  bool help = false;

  // The user name for index i: user_format with every "{i}" replaced.
  std::string UserName(int i) const;
};

// "127.0.0.2" or "127.0.0.3-127.0.0.66": loopback IPv4 addresses (host
// byte order), at most kMaxSources of them.
inline constexpr size_t kMaxSources = 65536;
bool ParseSourceRange(std::string_view text, std::vector<uint32_t>* out,
                      std::string* error);

// Replaces every "{i}" in `format` with `i`.
std::string FormatIndex(std::string_view format, int i);

// Hard caps so that a typo cannot start an endless or runaway run.
inline constexpr double kMaxDurationS = 3600;
inline constexpr int kMaxConcurrency = 200000;
inline constexpr int kMaxThreads = 64;
inline constexpr int kMaxAttackers = 10000;
inline constexpr int kMaxAttackUsers = 1000000;
inline constexpr double kMaxRate = 10000000;  // --rate, sessions/s

// Parses argv[1..]. Accepts "--flag value" and "--flag=value". On error
// returns false and sets *error (the caller prints it with the usage).
bool ParseOptions(const std::vector<std::string>& args, Options* options,
                  std::string* error);

// Resolves "HOST:PORT" / "[V6]:PORT" numerically (no DNS: the target must be
// a literal loopback address, or "localhost"). Refuses anything that is not
// loopback: this workplace only allows loopback traffic, and a load
// generator pointed at someone else's server by mistake is an attack.
bool ParseTarget(std::string_view text, Target* target, std::string* error);

std::string Usage();

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_OPTIONS_H_
