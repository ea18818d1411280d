// Connection and session limits ([limits], auth/connection_limits.h and the
// limit store's sessions per user), applied to the client address that
// counts (after the front PROXY header).
#ifndef POPGATE_SESSION_ADMISSION_H_
#define POPGATE_SESSION_ADMISSION_H_

#include <string>
#include <string_view>

#include "runtime/task.h"
#include "session/session_result.h"
#include "store/limit_store.h"

namespace popgate {

struct SessionState;

// What a session holds in the limits, released when it ends (SessionState
// owns one).
struct AdmissionHold {
  std::string group;  // counted in ConnectionLimits (empty: not counted)
  bool logged_in = false;
  std::string tenant;  // holds a tenant session slot (empty: none)
  store::LimitStore* store = nullptr;  // holds a user session slot (null: none)
  std::string user;
  std::string session_id;

  AdmissionHold() = default;
  AdmissionHold(const AdmissionHold&) = delete;
  AdmissionHold& operator=(const AdmissionHold&) = delete;
  ~AdmissionHold() { Release(); }
  void Release();
};

// At accept: sets s.address_group and s.limits_exempt (exempt_networks,
// or a balancer's LOCAL check), then the connection limits. False = refused
// (-ERR [SYS/TEMP] sent, s.rec.result = kLimited with the limit in
// detail): close.
Task<bool> AdmitConnection(SessionState& s);

struct SessionRefusal {
  SessionResult result = SessionResult::kOk;  // kOk: admitted
  std::string_view reply;
};

// Before the backend login of `user` (tenant-qualified) of tenant `t`:
// the tenant's max_sessions and the user's max_sessions_per_user (the
// limit store: shared across instances with Redis). Admitted: the slots
// are held in s.admission and the pre-login count is left.
Task<SessionRefusal> AdmitSession(SessionState& s, size_t tenant_index,
                                  std::string_view user);

}  // namespace popgate

#endif  // POPGATE_SESSION_ADMISSION_H_
