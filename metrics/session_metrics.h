// The per-session metrics: what one session adds when it ends, through one
// call (RecordSessionEnd) from the session's own worker thread. The
// session fills a SessionEnd from its record (session/session_metrics.h
// does that from a SessionRecord); every label value is from a fixed
// vocabulary or a config-defined name (listener address, tenant), never
// a user name or a client address.
#ifndef POPGATE_METRICS_SESSION_METRICS_H_
#define POPGATE_METRICS_SESSION_METRICS_H_

#include <cstdint>
#include <string_view>

#include "metrics/registry.h"

namespace popgate::metrics {

struct SessionEnd {
  std::string_view listener;  // the listener's configured address
  std::string_view tenant;    // the tenant's name; "" = none resolved
  std::string_view result;    // SessionResultName
  // "user" (USER/PASS), "plain", "login" (SASL); "" = no login attempted.
  std::string_view mechanism;
  // "ok", "failed" (wrong password), "refused" (throttled, limited,
  // no backend...); "" = no login attempted.
  std::string_view login_result;
  // From the login's PASS (or final SASL step) to its answer; < 0 = none.
  double login_seconds = -1;
  double duration_seconds = 0;  // accept to close
  uint64_t bytes_in = 0;        // client -> backend, after login
  uint64_t bytes_out = 0;       // backend -> client, after login
  // "splice", "ktls-splice", "copy"; "" = never forwarded.
  std::string_view forwarding;
  // Client TLS: "TLSv1.3", "TLSv1.2"; "" = plain.
  std::string_view tls_version;
  bool tls_resumed = false;
  // Why the connection or login was refused by the limits: "throttled",
  // "limited", "blocked"; "" = not refused by them.
  std::string_view refusal;
};

class SessionMetrics {
 public:
  // Registers the families in `registry` (main thread, before workers).
  explicit SessionMetrics(Registry& registry);

  // On the session's worker thread, once per session; `shard` is the
  // worker's index. Lock-free after a label set's first use.
  void RecordSessionEnd(int shard, const SessionEnd& e);

 private:
  CounterFamily& sessions_;
  CounterFamily& logins_;
  HistogramFamily& login_latency_;
  HistogramFamily& duration_;
  CounterFamily& bytes_;
  CounterFamily& forwarded_;
  CounterFamily& tls_handshakes_;
  CounterFamily& refusals_;
};

}  // namespace popgate::metrics

#endif  // POPGATE_METRICS_SESSION_METRICS_H_
