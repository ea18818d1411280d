// PLACEHOLDER (issue 10 contract): the header reader comes next.
#include "session/front_proxy.h"

#include "session/session_state.h"

namespace popgate {

Task<bool> ReadFrontProxy(SessionState& s) {
  s.rec.result = SessionResult::kProxyHeaderError;
  s.rec.detail = "PROXY protocol not built yet";
  co_return false;
}

}  // namespace popgate
