// One client connection, from greeting to the end of forwarding.
#ifndef POPGATE_PROXY_SESSION_H_
#define POPGATE_PROXY_SESSION_H_

#include "proxy/task.h"
#include "proxy/unique_fd.h"

namespace popgate {

class Worker;

// Runs on `worker`'s thread until the connection ends; frees itself.
Detached RunSession(Worker& worker, UniqueFd client, int listener_index);

}  // namespace popgate

#endif  // POPGATE_PROXY_SESSION_H_
