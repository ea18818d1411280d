// What the health checker checks, from a snapshot: every backend of every
// pool with active checks, with the TLS and PROXY settings its logins use.
#ifndef POPGATE_SERVER_HEALTH_TARGETS_H_
#define POPGATE_SERVER_HEALTH_TARGETS_H_

#include <vector>

#include "backend/health_checker.h"
#include "session/snapshot.h"

namespace popgate {

std::vector<CheckTarget> HealthTargets(const Snapshot& snap);

}  // namespace popgate

#endif  // POPGATE_SERVER_HEALTH_TARGETS_H_
