#include "bench/loadgen/report.h"

#include <cmath>
#include <cstdio>

namespace popgate::loadgen {
namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Num(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

template <typename T>
std::string Optional(const std::optional<T>& v) {
  return v.has_value() ? std::to_string(*v) : "null";
}

double PerSecond(double count, double seconds) {
  return seconds > 0 ? count / seconds : 0;
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string LatencyJson(const LatencyHistogram& h) {
  return "{\"p50\":" + Num(Ms(h.Percentile(0.5))) +
         ",\"p99\":" + Num(Ms(h.Percentile(0.99))) +
         ",\"p999\":" + Num(Ms(h.Percentile(0.999))) +
         ",\"mean\":" + Num(h.mean() / 1e6) + ",\"max\":" + Num(Ms(h.max())) +
         "}";
}

// The attack's counters. Rates are per the good sessions' duration_s when
// there is one, else per wall time (attackers run the whole window).
std::string AttackJson(const Report& r) {
  const AttackStats& a = r.stats.attack;
  const double window = r.duration_s > 0 ? r.duration_s : r.wall_s;
  std::string j = "{\"attackers\":" + std::to_string(r.attackers);
  j += ",\"pattern\":" + JsonString(AttackPatternName(r.attack_pattern));
  j += ",\"sources\":" + std::to_string(r.attack_sources);
  j += ",\"users\":" + std::to_string(r.attack_users);
  j += ",\"rate_cap\":" + Num(r.attack_rate);
  j += ",\"connections\":" + std::to_string(a.connections);
  j += ",\"attempts\":" + std::to_string(a.attempts);
  j += ",\"attempts_per_s\":" + Num(PerSecond(a.attempts, window));
  j += ",\"rejected\":" + std::to_string(a.rejected());
  j += ",\"rejected_per_s\":" + Num(PerSecond(a.rejected(), window));
  j += ",\"outcomes\":{";
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    if (i > 0) j += ",";
    j += JsonString(AttemptOutcomeName(static_cast<AttemptOutcome>(i))) + ":" +
         std::to_string(a.outcomes[i]);
  }
  j += "}";
  j += ",\"attempt_latency_ms\":" + LatencyJson(a.latency_ns);
  j += "}";
  return j;
}

}  // namespace

std::string ToJson(const Report& r) {
  const Stats& s = r.stats;
  const LatencyHistogram& h = s.session_latency_ns;
  std::string j = "{";
  j += "\"mode\":" + JsonString(ModeName(r.mode));
  j += ",\"target\":" + JsonString(r.target);
  j += ",\"concurrency\":" + std::to_string(r.concurrency);
  j += ",\"threads\":" + std::to_string(r.threads);
  j += ",\"verify\":" + std::string(r.verify ? "true" : "false");
  j += ",\"duration_s\":" + Num(r.duration_s);
  j += ",\"wall_s\":" + Num(r.wall_s);
  j += ",\"sessions\":" + std::to_string(s.sessions);
  j += ",\"sessions_per_s\":" +
       Num(r.mode == Mode::kHold ? 0 : PerSecond(s.sessions, r.duration_s));
  j += ",\"logins\":" + std::to_string(s.logins);
  j += ",\"offered_rate\":" + Num(r.offered_rate);
  j += ",\"late\":" + std::to_string(s.late);
  j += ",\"latency_ms\":{\"p50\":" + Num(Ms(h.Percentile(0.5))) +
       ",\"p99\":" + Num(Ms(h.Percentile(0.99))) +
       ",\"p999\":" + Num(Ms(h.Percentile(0.999))) +
       ",\"mean\":" + Num(h.mean() / 1e6) + ",\"max\":" + Num(Ms(h.max())) +
       "}";
  j += ",\"bytes\":" + std::to_string(s.bytes);
  j += ",\"mb_per_s\":" + Num(PerSecond(s.bytes / 1e6, r.duration_s));
  j += ",\"messages\":" + std::to_string(s.messages);
  j += ",\"messages_per_s\":" + Num(PerSecond(s.messages, r.duration_s));
  j += ",\"errors\":{";
  for (size_t i = 0; i < s.errors.size(); ++i) {
    if (i > 0) j += ",";
    j += JsonString(ErrorKindName(static_cast<ErrorKind>(i))) + ":" +
         std::to_string(s.errors[i]);
  }
  j += "}";
  j += ",\"errors_total\":" + std::to_string(s.errors_total());
  j += ",\"held\":" + std::to_string(r.held);
  j += ",\"hold_fill_s\":" + Num(r.hold_fill_s);
  j += ",\"held_at_fill\":" + std::to_string(r.held_at_fill);
  j += ",\"tls\":" + JsonString(TlsModeName(r.tls));
  j += ",\"tls_resume\":" + std::string(r.tls_resume ? "true" : "false");
  j += ",\"tls_version\":" + JsonString(TlsVersionName(r.tls_version));
  j += ",\"tls_sigalgs\":" + JsonString(TlsSigalgsName(r.tls_sigalgs));
  j += ",\"tls_full\":" + std::to_string(s.tls_full);
  j += ",\"tls_resumed\":" + std::to_string(s.tls_resumed);
  j += ",\"tls_full_cert\":{\"ecdsa\":" + std::to_string(s.tls_full_ecdsa) +
       ",\"rsa\":" + std::to_string(s.tls_full_rsa) + "}";
  j += ",\"handshakes\":" + std::to_string(s.handshakes);
  j += ",\"handshakes_per_s\":" +
       Num(r.mode == Mode::kHandshakes ? PerSecond(s.handshakes, r.duration_s)
                                       : 0);
  j += ",\"rss_before_bytes\":" + Optional(r.rss_before_bytes);
  j += ",\"rss_during_bytes\":" + Optional(r.rss_during_bytes);
  j += ",\"rss_per_session_bytes\":" + Optional(r.rss_per_session_bytes);
  j += ",\"loadgen_cpu_s\":" + Num(r.loadgen_cpu_s);
  j += ",\"loadgen_cpu_share\":" + Num(PerSecond(r.loadgen_cpu_s, r.wall_s));
  if (r.attack) {
    j += ",\"sources\":" + std::to_string(r.sources);
    j += ",\"login_latency_ms\":" + LatencyJson(s.login_latency_ns);
    j += ",\"attack\":" + AttackJson(r);
  }
  j += "}";
  return j;
}

std::string Summary(const Report& r) {
  const Stats& s = r.stats;
  const LatencyHistogram& h = s.session_latency_ns;
  char buf[1024];
  std::string out;
  std::snprintf(buf, sizeof(buf),
                "loadgen %s -> %s: concurrency %d, %d thread(s), %.2f s%s\n",
                std::string(ModeName(r.mode)).c_str(), r.target.c_str(),
                r.concurrency, r.threads, r.duration_s,
                r.verify ? "" : " (content NOT verified)");
  out += buf;
  switch (r.mode) {
    case Mode::kSessions:
      std::snprintf(buf, sizeof(buf),
                    "  %llu sessions, %.0f sessions/s; latency ms p50 %.3f "
                    "p99 %.3f p99.9 %.3f max %.3f\n",
                    static_cast<unsigned long long>(s.sessions),
                    PerSecond(s.sessions, r.duration_s),
                    Ms(h.Percentile(0.5)), Ms(h.Percentile(0.99)),
                    Ms(h.Percentile(0.999)), Ms(h.max()));
      out += buf;
      if (r.offered_rate > 0) {
        std::snprintf(buf, sizeof(buf),
                      "  offered %.0f sessions/s (latency from the scheduled "
                      "start); %llu starts late (all connections busy)\n",
                      r.offered_rate, static_cast<unsigned long long>(s.late));
        out += buf;
      }
      if (s.messages > 0) {
        std::snprintf(buf, sizeof(buf), "  %llu messages, %.1f MB/s\n",
                      static_cast<unsigned long long>(s.messages),
                      PerSecond(s.bytes / 1e6, r.duration_s));
        out += buf;
      }
      break;
    case Mode::kThroughput:
      std::snprintf(buf, sizeof(buf),
                    "  %llu messages verified, %.1f MB/s, %.1f messages/s\n",
                    static_cast<unsigned long long>(s.messages),
                    PerSecond(s.bytes / 1e6, r.duration_s),
                    PerSecond(s.messages, r.duration_s));
      out += buf;
      break;
    case Mode::kHandshakes:
      std::snprintf(buf, sizeof(buf),
                    "  %llu handshakes, %.0f handshakes/s; latency ms p50 "
                    "%.3f p99 %.3f p99.9 %.3f max %.3f\n",
                    static_cast<unsigned long long>(s.handshakes),
                    PerSecond(s.handshakes, r.duration_s),
                    Ms(h.Percentile(0.5)), Ms(h.Percentile(0.99)),
                    Ms(h.Percentile(0.999)), Ms(h.max()));
      out += buf;
      break;
    case Mode::kHold:
      std::snprintf(buf, sizeof(buf), "  %llu sessions held and quit cleanly",
                    static_cast<unsigned long long>(r.held));
      out += buf;
      if (r.rss_per_session_bytes.has_value()) {
        std::snprintf(buf, sizeof(buf), "; target RSS %+lld bytes/session",
                      static_cast<long long>(*r.rss_per_session_bytes));
        out += buf;
      }
      out += "\n";
      break;
  }
  if (r.tls != TlsMode::kNone) {
    std::snprintf(buf, sizeof(buf),
                  "  TLS %s: %llu full handshakes (server key: %llu ECDSA, "
                  "%llu RSA), %llu resumed\n",
                  std::string(TlsModeName(r.tls)).c_str(),
                  static_cast<unsigned long long>(s.tls_full),
                  static_cast<unsigned long long>(s.tls_full_ecdsa),
                  static_cast<unsigned long long>(s.tls_full_rsa),
                  static_cast<unsigned long long>(s.tls_resumed));
    out += buf;
  }
  if (r.attack) {
    const AttackStats& a = s.attack;
    const double window = r.duration_s > 0 ? r.duration_s : r.wall_s;
    std::snprintf(
        buf, sizeof(buf),
        "  login latency ms p50 %.3f p99 %.3f\n"
        "  attack %s, %d attackers from %zu address(es): %llu "
        "attempts (%.0f/s) over %llu connections; attempt ms p50 "
        "%.3f p99 %.3f\n   ",
        Ms(s.login_latency_ns.Percentile(0.5)),
        Ms(s.login_latency_ns.Percentile(0.99)),
        std::string(AttackPatternName(r.attack_pattern)).c_str(), r.attackers,
        r.attack_sources, static_cast<unsigned long long>(a.attempts),
        PerSecond(a.attempts, window),
        static_cast<unsigned long long>(a.connections),
        Ms(a.latency_ns.Percentile(0.5)), Ms(a.latency_ns.Percentile(0.99)));
    out += buf;
    for (size_t i = 0; i < a.outcomes.size(); ++i) {
      if (a.outcomes[i] == 0) continue;
      std::snprintf(
          buf, sizeof(buf), " %s=%llu",
          std::string(AttemptOutcomeName(static_cast<AttemptOutcome>(i)))
              .c_str(),
          static_cast<unsigned long long>(a.outcomes[i]));
      out += buf;
    }
    out += "\n";
  }
  std::snprintf(buf, sizeof(buf), "  errors: %llu",
                static_cast<unsigned long long>(s.errors_total()));
  out += buf;
  for (size_t i = 0; i < s.errors.size(); ++i) {
    if (s.errors[i] == 0) continue;
    std::snprintf(buf, sizeof(buf), " %s=%llu",
                  std::string(ErrorKindName(static_cast<ErrorKind>(i))).c_str(),
                  static_cast<unsigned long long>(s.errors[i]));
    out += buf;
  }
  std::snprintf(buf, sizeof(buf),
                "\n  loadgen CPU %.2f s (%.0f%% of one core over %.2f s)\n",
                r.loadgen_cpu_s, 100 * PerSecond(r.loadgen_cpu_s, r.wall_s),
                r.wall_s);
  out += buf;
  return out;
}

}  // namespace popgate::loadgen
