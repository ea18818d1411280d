// When to give freed heap memory back to the kernel.
//
// After a burst of concurrent sessions ends, glibc keeps the freed chunks
// in each thread's arena (in the middle of the heap, where the automatic
// trim at the top never reaches): RSS stayed at 3-9x its idle size after
// cycles of thousands of held sessions although nothing was held any more.
// malloc_trim(0) returns those pages (madvise), but it walks every arena
// under its lock, so it runs on the main thread, and only when it pays:
// after a big drop in live sessions, or at most once a minute while
// sessions keep ending.
#ifndef POPGATE_SERVER_TRIM_POLICY_H_
#define POPGATE_SERVER_TRIM_POLICY_H_

#include <algorithm>
#include <cstdint>

#include "absl/time/time.h"

namespace popgate {

class TrimPolicy {
 public:
  // A drop of this many live sessions (at least half of the peak) is worth
  // a trim at once: a session's buffers and frames are some 5 KiB.
  static constexpr int kDrop = 256;
  static constexpr absl::Duration kPeriod = absl::Minutes(1);

  explicit TrimPolicy(absl::Time now) : last_trim_(now) {}

  // Called about once a second with the sessions alive now and how many
  // have ended since start. True: trim now (the policy assumes it is done).
  bool ShouldTrim(int live, uint64_t ended, absl::Time now) {
    peak_ = std::max(peak_, live);
    const bool dropped = peak_ - live >= kDrop && live <= peak_ / 2;
    const bool periodic = now - last_trim_ >= kPeriod && ended != ended_;
    if (!dropped && !periodic) return false;
    peak_ = live;
    ended_ = ended;
    last_trim_ = now;
    return true;
  }

 private:
  int peak_ = 0;
  uint64_t ended_ = 0;
  absl::Time last_trim_;
};

}  // namespace popgate

#endif  // POPGATE_SERVER_TRIM_POLICY_H_
