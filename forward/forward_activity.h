// State the two directions of one forwarded session share, whether they
// splice or copy through TLS.
#ifndef POPGATE_FORWARD_FORWARD_ACTIVITY_H_
#define POPGATE_FORWARD_FORWARD_ACTIVITY_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace popgate {

struct ForwardActivity {
  explicit ForwardActivity(absl::Duration idle)
      : last(absl::Now()), idle_timeout(idle) {}

  // A session is idle only when neither direction moves.
  void Touch() { last = absl::Now(); }
  absl::Duration Left() const { return last + idle_timeout - absl::Now(); }

  // Records how a direction ended and says whether that was a clean end.
  // Once one direction has ended cleanly, an error on the other is how
  // many clients finish (QUIT, +OK, then a close or reset without waiting):
  // a normal close, not a failure. An idle timeout stays one.
  bool EndedCleanly(bool clean, bool idle) {
    if (clean) {
      ++clean_ends;
      return true;
    }
    return clean_ends > 0 && !idle;
  }

  absl::Time last;
  absl::Duration idle_timeout;
  int clean_ends = 0;
};

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_ACTIVITY_H_
