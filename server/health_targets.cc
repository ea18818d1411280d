#include "server/health_targets.h"

namespace popgate {

std::vector<CheckTarget> HealthTargets(const Snapshot& snap) {
  std::vector<CheckTarget> targets;
  for (size_t t = 0; t < snap.config.tenants.size(); ++t) {
    const TenantConfig& tenant = snap.config.tenants[t];
    if (!tenant.health_check.active) continue;
    for (size_t b = 0; b < tenant.spec.backends.size(); ++b) {
      CheckTarget target;
      target.health = snap.health[t][b];
      target.addr = snap.backend_addrs[t][b];
      target.policy = tenant.health_check;
      target.tls_mode = tenant.backend_tls.mode;
      target.tls_ctx = snap.backend_tls[t];
      target.tls_name = snap.backend_tls_names[t][b];
      target.handshake_timeout = snap.config.tls.handshake_timeout;
      // A listener that expects PROXY headers refuses a connection without
      // one: checks send LOCAL.
      target.proxy_v2 = tenant.client_identity == ClientIdentity::kProxyV2;
      targets.push_back(std::move(target));
    }
  }
  return targets;
}

}  // namespace popgate
