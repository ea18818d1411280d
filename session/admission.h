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
// or a balancer's LOCAL check), then the connection limits. Exempt
// connections are neither limited nor counted. False = refused
// (-ERR [SYS/TEMP] sent after [limits] refusal_delay while fewer than
// max_refusals_held wait, else at once; nothing on implicit-TLS
// listeners, where a plaintext line would be noise to the client's TLS
// stack and a handshake would cost what the limit saves;
// s.rec.result = kLimited with the limit's setting name in detail): close.
Task<bool> AdmitConnection(SessionState& s);

// Refused connections waiting out refusal_delay now, process-wide.
int RefusalsHeldForTests();

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

// The backend login after an admitted AdmitSession did not log the client
// in (a wrong password, a backend refusal): the tenant and user slots go
// (a failing client must not hold a user's slots) and the connection
// counts as pre-login again. Nothing held: nothing happens.
void LoginFailed(SessionState& s);

}  // namespace popgate

#endif  // POPGATE_SESSION_ADMISSION_H_
