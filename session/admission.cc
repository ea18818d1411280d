// PLACEHOLDER (issue 10 contract): admits everything.
#include "session/admission.h"

#include "session/session_state.h"

namespace popgate {

void AdmissionHold::Release() {}

Task<bool> AdmitConnection(SessionState&) { co_return true; }

Task<SessionRefusal> AdmitSession(SessionState&, size_t, std::string_view) {
  co_return SessionRefusal{};
}

}  // namespace popgate
