// One client connection, from greeting to the end of forwarding.
#ifndef POPGATE_SESSION_SESSION_H_
#define POPGATE_SESSION_SESSION_H_

#include "base/unique_fd.h"
#include "runtime/task.h"

namespace popgate {

class SessionEnv;

// Runs on `env`'s thread until the connection ends; frees itself.
Detached RunSession(SessionEnv& env, UniqueFd client, int listener_index);

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_H_
