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

std::string_view TlsModeName(TlsMode mode);
std::string_view TlsSigalgsName(TlsSigalgs s);
std::string_view TlsVersionName(TlsVersion v);

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
  bool help = false;

  // The user name for index i: user_format with every "{i}" replaced.
  std::string UserName(int i) const;
};

// Hard caps so that a typo cannot start an endless or runaway run.
inline constexpr double kMaxDurationS = 3600;
inline constexpr int kMaxConcurrency = 200000;
inline constexpr int kMaxThreads = 64;

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
