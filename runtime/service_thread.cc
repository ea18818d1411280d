#include "runtime/service_thread.h"

#include <pthread.h>

#include <future>
#include <memory>
#include <utility>

namespace popgate {

absl::StatusOr<std::thread> StartServiceThread(
    std::string name, std::function<absl::Status()> setup,
    std::function<void()> run) {
  // Shared: the thread may still be inside set_value when we return.
  auto started = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = started->get_future();
  std::thread thread([name = std::move(name), setup = std::move(setup),
                      run = std::move(run), started] {
    pthread_setname_np(pthread_self(), name.c_str());
    absl::Status s = setup();
    const bool ok = s.ok();
    started->set_value(std::move(s));
    if (ok) run();
  });
  absl::Status s = result.get();
  if (!s.ok()) {
    thread.join();
    return s;
  }
  return thread;
}

}  // namespace popgate
