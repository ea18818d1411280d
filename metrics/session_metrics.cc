#include "metrics/session_metrics.h"

namespace popgate::metrics {
namespace {

// Login answers are held to a fixed deadline (timing tells nothing), so
// the interesting range is 1 ms .. a few seconds; sessions live from
// milliseconds (a refused login) to hours (an idle IMAP-less client).
const std::vector<double> kLoginBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,    2.5,   5,    10,  30};
const std::vector<double> kDurationBounds = {0.01, 0.1, 0.5, 1,    5,   10,
                                             30,   60,  300, 1800, 3600};

std::string_view OrNone(std::string_view v) { return v.empty() ? "none" : v; }

}  // namespace

SessionMetrics::SessionMetrics(Registry& r)
    : sessions_(r.AddCounter("popgate_sessions",
                             "Sessions ended, by listener and result.",
                             {"listener", "result"})),
      logins_(r.AddCounter(
          "popgate_logins",
          "Login attempts, by tenant, mechanism and result (ok, failed, "
          "refused).",
          {"tenant", "mechanism", "result"})),
      login_latency_(
          r.AddHistogram("popgate_login_duration_seconds",
                         "From the password to the login's answer, by tenant.",
                         {"tenant"}, kLoginBounds)),
      duration_(r.AddHistogram("popgate_session_duration_seconds",
                               "Sessions from accept to close, by listener.",
                               {"listener"}, kDurationBounds)),
      bytes_(r.AddCounter(
          "popgate_forwarded_bytes",
          "Bytes forwarded after login, by tenant and direction (in: client "
          "to backend, out: backend to client).",
          {"tenant", "direction"})),
      forwarded_(r.AddCounter(
          "popgate_forwarded_sessions",
          "Sessions forwarded after login, by path (splice, ktls-splice, "
          "copy).",
          {"path"})),
      tls_handshakes_(r.AddCounter(
          "popgate_tls_handshakes",
          "Client TLS sessions, by listener, version and whether resumed.",
          {"listener", "version", "resumed"})),
      refusals_(r.AddCounter(
          "popgate_refusals",
          "Connections or logins refused by the limits (throttled, limited, "
          "blocked), by listener.",
          {"listener", "reason"})) {}

void SessionMetrics::RecordSessionEnd(int shard, const SessionEnd& e) {
  const std::string_view tenant = OrNone(e.tenant);
  sessions_.Add(shard, {e.listener, OrNone(e.result)});
  duration_.Observe(shard, {e.listener}, e.duration_seconds);
  if (!e.login_result.empty()) {
    logins_.Add(shard, {tenant, OrNone(e.mechanism), e.login_result});
  }
  if (e.login_seconds >= 0) {
    login_latency_.Observe(shard, {tenant}, e.login_seconds);
  }
  if (!e.forwarding.empty()) {
    forwarded_.Add(shard, {e.forwarding});
    if (e.bytes_in > 0) bytes_.Add(shard, {tenant, "in"}, e.bytes_in);
    if (e.bytes_out > 0) bytes_.Add(shard, {tenant, "out"}, e.bytes_out);
  }
  if (!e.tls_version.empty()) {
    tls_handshakes_.Add(
        shard, {e.listener, e.tls_version, e.tls_resumed ? "true" : "false"});
  }
  if (!e.refusal.empty()) refusals_.Add(shard, {e.listener, e.refusal});
}

}  // namespace popgate::metrics
