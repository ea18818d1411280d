// StartServiceThread: the owner learns the set-up's status before it goes
// on; a failed set-up never runs `run` and leaves no thread behind.
#include "runtime/service_thread.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <string>
#include <thread>

namespace popgate {
namespace {

TEST(ServiceThreadTest, SetupThenRunOnTheNamedThread) {
  std::atomic<bool> set_up{false};
  std::thread::id setup_id, run_id;
  std::string name;
  absl::StatusOr<std::thread> t = StartServiceThread(
      "popgate-test",
      [&] {
        setup_id = std::this_thread::get_id();
        set_up = true;
        return absl::OkStatus();
      },
      [&] {
        run_id = std::this_thread::get_id();
        char buf[16] = {};
        pthread_getname_np(pthread_self(), buf, sizeof(buf));
        name = buf;
      });
  ASSERT_TRUE(t.ok()) << t.status();
  // The set-up has happened by the time Start returns.
  EXPECT_TRUE(set_up);
  t->join();
  EXPECT_EQ(setup_id, run_id);
  EXPECT_NE(run_id, std::this_thread::get_id());
  EXPECT_EQ(name, "popgate-test");
}

TEST(ServiceThreadTest, FailedSetupReturnsItsStatusAndNeverRuns) {
  bool ran = false;
  absl::StatusOr<std::thread> t = StartServiceThread(
      "popgate-test", [] { return absl::ResourceExhaustedError("no ring"); },
      [&] { ran = true; });
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(t.status().message(), "no ring");
  EXPECT_FALSE(ran);  // and the thread is joined: `ran` is safe to read
}

}  // namespace
}  // namespace popgate
