// A thread of its own (the admin API's, the health checker's) whose set-up
// must succeed before its owner goes on: its ring is single-issuer, so it
// is made on the thread that uses it, and a ring that cannot be made is a
// start-up error the owner reports, not a thread that silently does
// nothing.
#ifndef POPGATE_RUNTIME_SERVICE_THREAD_H_
#define POPGATE_RUNTIME_SERVICE_THREAD_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace popgate {

// Starts a thread named `name` (at most 15 characters: top -H, perf) that
// runs `setup`, then, if that succeeded, `run`. Waits for `setup`: on
// failure the thread has ended (joined) and its status is returned; on
// success the returned thread is inside (or past) `run`.
absl::StatusOr<std::thread> StartServiceThread(
    std::string name, std::function<absl::Status()> setup,
    std::function<void()> run);

}  // namespace popgate

#endif  // POPGATE_RUNTIME_SERVICE_THREAD_H_
