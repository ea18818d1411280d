#include "bench/loadgen/options.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>

namespace popgate::loadgen {
namespace {

bool ParseInt64(std::string_view text, int64_t min, int64_t max,
                int64_t* out) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      v < min || v > max) {
    return false;
  }
  *out = v;
  return true;
}

bool ParseDouble(std::string_view text, double min, double max, double* out) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !(v >= min && v <= max)) {
    return false;
  }
  *out = v;
  return true;
}

// "2000", "64k", "10m", "1g" (powers of 1024), like pop3-synth's --size.
bool ParseSize(std::string_view text, uint64_t* out) {
  uint64_t multiplier = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k': case 'K': multiplier = 1ULL << 10; break;
      case 'm': case 'M': multiplier = 1ULL << 20; break;
      case 'g': case 'G': multiplier = 1ULL << 30; break;
      default: break;
    }
    if (multiplier != 1) text.remove_suffix(1);
  }
  int64_t v = 0;
  if (!ParseInt64(text, 0, (int64_t{1} << 40) / static_cast<int64_t>(multiplier),
                  &v)) {
    return false;
  }
  *out = static_cast<uint64_t>(v) * multiplier;
  return true;
}

bool ParseMode(std::string_view text, Mode* mode) {
  if (text == "sessions") {
    *mode = Mode::kSessions;
  } else if (text == "throughput") {
    *mode = Mode::kThroughput;
  } else if (text == "hold") {
    *mode = Mode::kHold;
  } else if (text == "handshakes") {
    *mode = Mode::kHandshakes;
  } else {
    return false;
  }
  return true;
}

bool ParsePids(std::string_view text, std::vector<int>* pids) {
  pids->clear();
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text.remove_prefix(comma == std::string_view::npos ? text.size()
                                                       : comma + 1);
    if (item.empty()) continue;
    int64_t pid = 0;
    if (!ParseInt64(item, 1, INT32_MAX, &pid)) return false;
    pids->push_back(static_cast<int>(pid));
  }
  return !pids->empty();
}

}  // namespace

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kSessions: return "sessions";
    case Mode::kThroughput: return "throughput";
    case Mode::kHold: return "hold";
    case Mode::kHandshakes: return "handshakes";
  }
  return "?";
}

std::string_view TlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::kNone: return "none";
    case TlsMode::kImplicit: return "implicit";
    case TlsMode::kStartTls: return "starttls";
  }
  return "?";
}

std::string_view TlsSigalgsName(TlsSigalgs s) {
  switch (s) {
    case TlsSigalgs::kAny: return "any";
    case TlsSigalgs::kEcdsa: return "ecdsa";
    case TlsSigalgs::kRsa: return "rsa";
  }
  return "?";
}

std::string_view TlsVersionName(TlsVersion v) {
  switch (v) {
    case TlsVersion::kAny: return "any";
    case TlsVersion::k12: return "1.2";
    case TlsVersion::k13: return "1.3";
  }
  return "?";
}

std::string_view AttackPatternName(AttackPattern p) {
  switch (p) {
    case AttackPattern::kSpray:
      return "spray";
    case AttackPattern::kStuff:
      return "stuff";
  }
  return "?";
}

std::string Options::UserName(int i) const {
  return FormatIndex(user_format, i);
}

bool ParseSourceRange(std::string_view text, std::vector<uint32_t>* out,
                      std::string* error) {
  size_t dash = text.find('-');
  std::string first(text.substr(0, dash));
  std::string last(dash == std::string_view::npos ? first
                                                  : text.substr(dash + 1));
  in_addr a{};
  in_addr b{};
  if (inet_pton(AF_INET, first.c_str(), &a) != 1 ||
      inet_pton(AF_INET, last.c_str(), &b) != 1) {
    *error =
        "'" + std::string(text) + "': expected an IPv4 address or a range A-B";
    return false;
  }
  uint32_t lo = ntohl(a.s_addr);
  uint32_t hi = ntohl(b.s_addr);
  // Binding to a non-loopback address would send from this machine's real
  // addresses; loopback only, like the target.
  if ((lo >> 24) != 127 || (hi >> 24) != 127 || hi < lo) {
    *error = "'" + std::string(text) +
             "': source addresses must be an ascending range in 127.0.0.0/8";
    return false;
  }
  if (hi - lo >= kMaxSources) {
    *error = "'" + std::string(text) + "': at most " +
             std::to_string(kMaxSources) + " source addresses";
    return false;
  }
  out->clear();
  for (uint64_t v = lo; v <= hi; ++v) out->push_back(static_cast<uint32_t>(v));
  return true;
}

std::string FormatIndex(std::string_view format, int i) {
  std::string out;
  std::string index = std::to_string(i);
  std::string_view f = format;
  while (true) {
    size_t at = f.find("{i}");
    out.append(f.substr(0, at));
    if (at == std::string_view::npos) break;
    out.append(index);
    f.remove_prefix(at + 3);
  }
  return out;
}

bool ParseTarget(std::string_view text, Target* target, std::string* error) {
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with("[")) {
    size_t close = text.find("]:");
    if (close == std::string_view::npos) {
      *error = "--target: expected [V6]:PORT";
      return false;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = "--target: expected HOST:PORT";
      return false;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  int64_t port = 0;
  if (!ParseInt64(port_text, 1, 65535, &port)) {
    *error = "--target: bad port '" + std::string(port_text) + "'";
    return false;
  }
  if (host == "localhost") host = "127.0.0.1";
  std::string host_str(host);
  *target = Target{};
  target->text = std::string(text);
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, host_str.c_str(), &a4) == 1) {
    // 127.0.0.0/8 is all loopback.
    if ((ntohl(a4.s_addr) >> 24) != 127) {
      *error = "--target: " + host_str +
               " is not a loopback address (only 127.0.0.0/8 and ::1 are "
               "allowed)";
      return false;
    }
    auto* sin = reinterpret_cast<sockaddr_in*>(&target->addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sin->sin_addr = a4;
    target->addr_len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host_str.c_str(), &a6) == 1) {
    bool loopback = IN6_IS_ADDR_LOOPBACK(&a6);
    // ::ffff:127.x.y.z is IPv4 loopback too.
    if (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127) loopback = true;
    if (!loopback) {
      *error = "--target: " + host_str +
               " is not a loopback address (only 127.0.0.0/8 and ::1 are "
               "allowed)";
      return false;
    }
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&target->addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    sin6->sin6_addr = a6;
    target->addr_len = sizeof(sockaddr_in6);
    return true;
  }
  *error = "--target: '" + host_str +
           "' is not a numeric loopback address (no DNS lookups)";
  return false;
}

bool ParseOptions(const std::vector<std::string>& args, Options* options,
                  std::string* error) {
  Options o;
  bool have_target = false;
  bool have_sessions = false;
  bool have_concurrency = false;
  bool have_tls_flag = false;
  bool have_attack_flag = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool has_inline = false;
    if (size_t eq = flag.find('=');
        flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_inline = true;
    }
    // Fetches the flag's value from "=value" or the next argument.
    auto take = [&]() -> bool {
      if (has_inline) return true;
      if (i + 1 >= args.size()) {
        *error = flag + " needs a value";
        return false;
      }
      value = args[++i];
      return true;
    };
    auto bad = [&](std::string_view what) {
      *error = flag + ": expected " + std::string(what) + ", got '" + value +
               "'";
      return false;
    };
    auto int_flag = [&](int64_t min, int64_t max, auto* out) -> bool {
      if (!take()) return false;
      int64_t v = 0;
      if (!ParseInt64(value, min, max, &v)) {
        return bad("an integer in [" + std::to_string(min) + ", " +
                   std::to_string(max) + "]");
      }
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(v);
      return true;
    };
    auto seconds_flag = [&](double min, double max, double* out) -> bool {
      if (!take()) return false;
      if (!ParseDouble(value, min, max, out)) {
        return bad("seconds in [" + std::to_string(min) + ", " +
                   std::to_string(max) + "]");
      }
      return true;
    };

    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--mode") {
      if (!take()) return false;
      if (!ParseMode(value, &o.mode)) {
        return bad("sessions|throughput|hold|handshakes");
      }
    } else if (flag == "--target") {
      if (!take()) return false;
      if (!ParseTarget(value, &o.target, error)) return false;
      have_target = true;
    } else if (flag == "--concurrency" || flag == "-c") {
      // 0 only for an attack without good sessions (checked below).
      if (!int_flag(0, kMaxConcurrency, &o.concurrency)) return false;
      have_concurrency = true;
    } else if (flag == "--duration") {
      if (!seconds_flag(0, kMaxDurationS, &o.duration_s)) return false;
    } else if (flag == "--sessions") {
      if (!int_flag(1, int64_t{1} << 40, &o.sessions)) return false;
      have_sessions = true;
    } else if (flag == "--threads") {
      if (!int_flag(1, kMaxThreads, &o.threads)) return false;
    } else if (flag == "--retr") {
      if (!int_flag(0, 1000000, &o.retr)) return false;
    } else if (flag == "--message") {
      if (!int_flag(1, 1000000000, &o.message)) return false;
    } else if (flag == "--users") {
      if (!int_flag(1, 100000000, &o.users)) return false;
    } else if (flag == "--user-format") {
      if (!take()) return false;
      if (value.empty() || value.find_first_of("\r\n ") != std::string::npos) {
        return bad("a user name pattern without spaces or CR/LF");
      }
      o.user_format = value;
    } else if (flag == "--password") {
      if (!take()) return false;
      if (value.find_first_of("\r\n") != std::string::npos) {
        return bad("a password without CR/LF");
      }
      o.password = value;
    } else if (flag == "--expect-size") {
      if (!take()) return false;
      if (!ParseSize(value, &o.expect_size) || o.expect_size == 0) {
        return bad("a size such as 2000, 64k, 10m");
      }
    } else if (flag == "--no-verify") {
      o.verify = false;
    } else if (flag == "--io-timeout") {
      if (!seconds_flag(0.001, 3600, &o.io_timeout_s)) return false;
    } else if (flag == "--recv-buffer") {
      if (!take()) return false;
      uint64_t size = 0;
      if (!ParseSize(value, &size) || size < 512 || size > (64u << 20)) {
        return bad("a size between 512 and 64m");
      }
      o.recv_buffer = size;
    } else if (flag == "--tls") {
      if (!take()) return false;
      if (value == "none") {
        o.tls = TlsMode::kNone;
      } else if (value == "implicit") {
        o.tls = TlsMode::kImplicit;
      } else if (value == "starttls") {
        o.tls = TlsMode::kStartTls;
      } else {
        return bad("implicit|starttls|none");
      }
      have_tls_flag = true;
    } else if (flag == "--tls-resume") {
      o.tls_resume = true;
      have_tls_flag = true;
    } else if (flag == "--tls-sigalgs") {
      if (!take()) return false;
      if (value == "any") {
        o.tls_sigalgs = TlsSigalgs::kAny;
      } else if (value == "ecdsa") {
        o.tls_sigalgs = TlsSigalgs::kEcdsa;
      } else if (value == "rsa") {
        o.tls_sigalgs = TlsSigalgs::kRsa;
      } else {
        return bad("ecdsa|rsa|any");
      }
      have_tls_flag = true;
    } else if (flag == "--tls-version") {
      if (!take()) return false;
      if (value == "any") {
        o.tls_version = TlsVersion::kAny;
      } else if (value == "1.2") {
        o.tls_version = TlsVersion::k12;
      } else if (value == "1.3") {
        o.tls_version = TlsVersion::k13;
      } else {
        return bad("1.2|1.3|any");
      }
      have_tls_flag = true;
    } else if (flag == "--tls-verify") {
      o.tls_verify = true;
      have_tls_flag = true;
    } else if (flag == "--tls-ca") {
      if (!take()) return false;
      if (value.empty()) return bad("a PEM file");
      o.tls_ca = value;
      have_tls_flag = true;
    } else if (flag == "--tls-server-name") {
      if (!take()) return false;
      if (value.empty() || value.find_first_of("\r\n ") != std::string::npos) {
        return bad("a host name");
      }
      o.tls_server_name = value;
      have_tls_flag = true;
    } else if (flag == "--source") {
      if (!take()) return false;
      if (!ParseSourceRange(value, &o.sources, error)) {
        *error = flag + ": " + *error;
        return false;
      }
    } else if (flag == "--attackers") {
      if (!int_flag(0, kMaxAttackers, &o.attackers)) return false;
      o.attack = true;
    } else if (flag == "--attack") {
      if (!take()) return false;
      if (value == "spray") {
        o.attack_pattern = AttackPattern::kSpray;
      } else if (value == "stuff") {
        o.attack_pattern = AttackPattern::kStuff;
      } else {
        return bad("spray|stuff");
      }
      have_attack_flag = true;
    } else if (flag == "--attack-source") {
      if (!take()) return false;
      if (!ParseSourceRange(value, &o.attack_sources, error)) {
        *error = flag + ": " + *error;
        return false;
      }
      have_attack_flag = true;
    } else if (flag == "--attack-users") {
      if (!take()) return false;
      if (value.empty()) return bad("a file of user names, one a line");
      o.attack_users_file = value;
      have_attack_flag = true;
    } else if (flag == "--attack-user-format") {
      if (!take()) return false;
      if (value.empty() || value.find_first_of("\r\n ") != std::string::npos) {
        return bad("a user name pattern without spaces or CR/LF");
      }
      o.attack_user_format = value;
      have_attack_flag = true;
    } else if (flag == "--attack-user-count") {
      if (!int_flag(1, kMaxAttackUsers, &o.attack_user_count)) return false;
      have_attack_flag = true;
    } else if (flag == "--attack-password") {
      if (!take()) return false;
      if (value.empty() || value.find_first_of("\r\n ") != std::string::npos) {
        return bad("a password prefix without spaces or CR/LF");
      }
      o.attack_password = value;
      have_attack_flag = true;
    } else if (flag == "--attack-rate") {
      if (!take()) return false;
      if (!ParseDouble(value, 0, 10000000, &o.attack_rate)) {
        return bad("attempts per second (0 = no cap)");
      }
      have_attack_flag = true;
    } else if (flag == "--rate") {
      if (!take()) return false;
      if (!ParseDouble(value, 0, kMaxRate, &o.rate)) {
        return bad("sessions per second (0 = closed loop)");
      }
    } else if (flag == "--pid") {
      if (!take()) return false;
      if (!ParsePids(value, &o.pids)) return bad("PID[,PID...]");
    } else {
      *error = "unknown argument '" + args[i] + "' (see --help)";
      return false;
    }
  }
  if (o.help) {
    *options = std::move(o);
    return true;
  }
  if (!have_target) {
    *error = "--target HOST:PORT is required";
    return false;
  }
  if (o.tls == TlsMode::kNone && have_tls_flag) {
    *error = "--tls-* flags need --tls implicit|starttls";
    return false;
  }
  if (o.mode == Mode::kHandshakes && o.tls == TlsMode::kNone) {
    *error = "--mode handshakes needs --tls implicit|starttls";
    return false;
  }
  if (!o.tls_ca.empty() && !o.tls_verify) {
    *error = "--tls-ca is only used with --tls-verify";
    return false;
  }
  if (o.concurrency == 0 && !(o.attack && o.attackers > 0)) {
    // Nothing would run at all.
    *error = "--concurrency 0 is only for an attack alone (--attackers N)";
    return false;
  }
  if (!o.sources.empty() && o.target.addr.ss_family != AF_INET) {
    *error = "--source needs an IPv4 --target";
    return false;
  }
  if (o.rate > 0 && o.mode != Mode::kSessions) {
    *error = "--rate is for --mode sessions only";
    return false;
  }
  if (o.rate > 0 && o.concurrency == 0) {
    *error = "--rate needs --concurrency C > 0 (the cap on sessions in flight)";
    return false;
  }
  if (have_attack_flag && !o.attack) {
    *error = "--attack* flags need --attackers N";
    return false;
  }
  if (o.attack) {
    if (o.mode != Mode::kSessions) {
      *error = "--attackers runs beside --mode sessions only";
      return false;
    }
    if (o.tls != TlsMode::kNone) {
      // Attackers speak plain POP3; a TLS attack would measure handshakes.
      *error = "--attackers needs plain POP3 (no --tls)";
      return false;
    }
    if (o.target.addr.ss_family != AF_INET) {
      *error = "--attackers needs an IPv4 --target (sources are 127.x)";
      return false;
    }
    if (o.attack_sources.empty()) {
      // Spraying: one address; stuffing: a botnet's worth of them.
      ParseSourceRange(o.attack_pattern == AttackPattern::kSpray
                           ? "127.0.0.2"
                           : "127.0.2.1-127.0.2.254",
                       &o.attack_sources, error);
    }
    if (!o.attack_users_file.empty()) {
      std::ifstream in(o.attack_users_file);
      if (!in) {
        *error = "--attack-users: cannot read " + o.attack_users_file;
        return false;
      }
      std::string line;
      while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        if (line.find_first_of(" \t\r") != std::string::npos) {
          *error = "--attack-users: a name with a space: '" + line + "'";
          return false;
        }
        if (o.attack_users.size() >= static_cast<size_t>(kMaxAttackUsers)) {
          *error = "--attack-users: more than " +
                   std::to_string(kMaxAttackUsers) + " names";
          return false;
        }
        o.attack_users.push_back(line);
      }
      if (o.attack_users.empty()) {
        *error = "--attack-users: no names in " + o.attack_users_file;
        return false;
      }
    } else {
      int count = o.attack_user_count;
      if (count == 0) {
        count = o.attack_pattern == AttackPattern::kSpray ? 1000 : 1;
      }
      if (count > 1 && o.attack_user_format.find("{i}") == std::string::npos) {
        *error = "--attack-user-format needs '{i}' for more than one user";
        return false;
      }
      for (int i = 0; i < count; ++i) {
        o.attack_users.push_back(FormatIndex(o.attack_user_format, i));
      }
    }
  }
  if (o.mode == Mode::kHold && !have_sessions) {
    *error = "--mode hold needs --sessions N";
    return false;
  }
  // Every concurrent connection needs a user of its own: POP3 locks the
  // maildrop, so a second login of the same user would fail with [IN-USE].
  int64_t needed = o.mode == Mode::kHold ? o.sessions : o.concurrency;
  if (o.mode == Mode::kHold && needed > kMaxConcurrency) {
    *error = "--sessions: hold mode holds at most " +
             std::to_string(kMaxConcurrency) + " sessions";
    return false;
  }
  if (o.users == 0) {
    o.users = static_cast<int>(needed);
  } else if (o.users < needed) {
    *error = "--users " + std::to_string(o.users) + " is fewer than the " +
             std::to_string(needed) +
             " sessions open at once; a user cannot be logged in twice";
    return false;
  }
  if (o.user_format.find("{i}") == std::string::npos && o.users > 1) {
    *error = "--user-format needs '{i}' when more than one user is used";
    return false;
  }
  if (o.mode == Mode::kHold) {
    // Logins in flight at once while building up the held set: enough to
    // fill 10k sessions in about a second, few enough not to look like a
    // SYN flood to the target.
    if (!have_concurrency) o.concurrency = 100;
    if (o.concurrency > o.sessions) o.concurrency = static_cast<int>(o.sessions);
  }
  // Attackers keep a thread busy too (an attack alone: --concurrency 0).
  const int busy = o.concurrency + (o.attack ? o.attackers : 0);
  if (o.threads > busy) {
    o.threads = busy;  // an idle thread would only skew CPU figures
  }
  *options = std::move(o);
  return true;
}

std::string Usage() {
  return R"(usage: loadgen --target HOST:PORT [--mode sessions|throughput|hold] [flags]
POP3 load generator on io_uring. Loopback targets only. Prints one JSON
object on stdout and a summary on stderr.

  --mode M              sessions (default): connect, USER/PASS, STAT,
                        RETR 1..K, QUIT, repeat. throughput: log in once,
                        RETR one message repeatedly. hold: log in N
                        sessions, stay idle, QUIT. handshakes (needs --tls):
                        connect, TLS handshake, first reply over TLS
                        (greeting; starttls: QUIT's), QUIT, repeat.
  --target HOST:PORT    127.0.0.0/8, ::1 or localhost (required)
  --concurrency C       connections open at once (default 10); in hold mode,
                        logins in flight at once
  --duration T          seconds (default 10, max 3600); in hold mode, how
                        long the sessions stay idle ("loadgen: holding N
                        sessions" on stderr marks its start; SIGINT ends it
                        early, QUITs them and reports)
  --sessions N          sessions mode: stop after N sessions (whichever of
                        N and T comes first); hold mode: sessions to hold
  --threads N           threads, each with its own io_uring (default 1)
  --retr K              sessions mode: RETR messages 1..K (default 0)
  --message N           throughput mode: message to RETR (default 1)
  --users M             users to cycle over (default: one per concurrent
                        session); never two sessions of one user at once
  --user-format F       user name, {i} = user index (default
                        user{i}@example.com, as pop3-synth --generated-users)
  --password P          (default password)
  --expect-size BYTES   message size; skips LIST (suffixes k, m, g)
  --no-verify           skip the content check (sizes, terminating '.' and
                        framing are still checked)
  --io-timeout S        limit on every connect/send/recv (default 10)
  --recv-buffer BYTES   per-connection receive buffer (default: 128k in
                        throughput mode, 16k sessions and handshakes, 4k
                        hold)
  --pid PID[,PID...]    hold mode: sum these processes' RSS before login and
                        during the hold -> rss_per_session_bytes
  --rate R              sessions mode, open loop: start R sessions/s (over
                        all threads, evenly spaced); --concurrency caps the
                        sessions in flight (a start due while all are busy
                        is counted "late" and starts when one frees);
                        latency counts from the scheduled start. Default 0:
                        closed loop
  --source A[-B]        bind the sessions to these 127.x source addresses,
                        one after the other (per-address limits on the
                        target see many clients)
Attack (sessions mode, plain POP3): attacker connections send wrong
passwords beside the good sessions, as fast as the target answers, and
reconnect when closed or refused; reported apart ("attack" in the JSON).
  --attackers N         attacker connections (0: none, but report the keys;
                        with --concurrency 0 the attack runs alone)
  --attack P            spray (default): one source address, many users,
                        one wrong password each per round; stuff: many
                        source addresses, one user, a new password each try
  --attack-source A[-B] attacker source addresses (default: spray
                        127.0.0.2, stuff 127.0.2.1-127.0.2.254)
  --attack-users FILE   the attacked user names, one a line (default:
                        generated from --attack-user-format)
  --attack-user-format F  default victim{i}@example.com
  --attack-user-count M default spray 1000, stuff 1
  --attack-password P   wrong passwords are P-<n> (default wrong)
  --attack-rate R       at most R attempts/s over all attackers (0: no cap)
TLS (BoringSSL; certificates are not verified unless --tls-verify):
  --tls MODE            none (default), implicit (POP3S) or starttls (STLS)
  --tls-resume          resume each connection's previous TLS session
                        (ticket) on its next session
  --tls-sigalgs S       any (default), ecdsa or rsa: accept only that server
                        certificate type (signature algorithms; TLS 1.2
                        cipher suites to match)
  --tls-version V       any (default: 1.2 or 1.3), 1.2 or 1.3
  --tls-verify          verify the certificate (and --tls-server-name, else
                        the target's IP address)
  --tls-ca FILE         CA bundle for --tls-verify (default: system paths)
  --tls-server-name N   send N as SNI
)";
}

}  // namespace popgate::loadgen
