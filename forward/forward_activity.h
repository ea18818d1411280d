// State the two directions of one forwarded session share, whether they
// splice or copy through TLS: idleness, how the session ended, what the
// client said last, and whether the backend has ended (the client drain).
#ifndef POPGATE_FORWARD_FORWARD_ACTIVITY_H_
#define POPGATE_FORWARD_FORWARD_ACTIVITY_H_

#include <optional>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "forward/forward_end.h"

namespace popgate {

// How one direction of a forwarded session stopped.
enum class DirectionEnd {
  kEof,          // its source ended cleanly (FIN, close_notify)
  kSourceError,  // reading its source failed (reset, TLS error)
  kSinkError,    // writing its sink failed (reset, TLS error)
  kIdle,         // the session was idle for idle_timeout
  kProxyError,   // ours: a kernel-TLS record we cannot take
};

struct ForwardActivity {
  ForwardActivity(absl::Duration idle, const QuitTracker& seen)
      : last(absl::Now()), idle_timeout(idle), client_lines(seen) {}

  // A session is idle only when neither direction moves.
  void Touch() { last = absl::Now(); }
  absl::Duration Left() const { return last + idle_timeout - absl::Now(); }

  // Records how one direction stopped. The first end seen is what ended
  // the session: what follows is mostly the echo of it (a FIN passed on, a
  // cut), so a reset after the other side's clean end stays a normal close.
  void Record(DirectionEnd e, bool from_client) {
    if (!first) first = Classify(e, from_client);
    if (from_client) {
      client_done = true;
    } else {
      backend_done = true;
      if (e == DirectionEnd::kEof || e == DirectionEnd::kSourceError) {
        backend_ended = true;
      }
    }
  }

  // The session's end. A client whose last line was QUIT asked for the end:
  // whichever side then closed first (the client often closes as soon as it
  // has read +OK, even with a reset), it is kQuit; a backend that resets
  // after QUIT is still reported as such.
  ForwardEnd End() const {
    ForwardEnd e = first.value_or(ForwardEnd::kProxyError);
    if (client_lines.last_line_quit() &&
        (e == ForwardEnd::kBackendClosed || e == ForwardEnd::kClientClosed ||
         e == ForwardEnd::kClientReset)) {
      return ForwardEnd::kQuit;
    }
    return e;
  }

  static ForwardEnd Classify(DirectionEnd e, bool from_client) {
    switch (e) {
      case DirectionEnd::kEof:
        return from_client ? ForwardEnd::kClientClosed
                           : ForwardEnd::kBackendClosed;
      case DirectionEnd::kSourceError:
        return from_client ? ForwardEnd::kClientReset
                           : ForwardEnd::kBackendReset;
      case DirectionEnd::kSinkError:
        return from_client ? ForwardEnd::kBackendReset
                           : ForwardEnd::kClientReset;
      case DirectionEnd::kIdle:
        return ForwardEnd::kIdleTimeout;
      case DirectionEnd::kProxyError:
        return ForwardEnd::kProxyError;
    }
    return ForwardEnd::kProxyError;
  }

  absl::Time last;
  absl::Duration idle_timeout;
  QuitTracker client_lines;
  std::optional<ForwardEnd> first;
  bool client_done = false;    // the client -> backend direction stopped
  bool backend_done = false;   // the backend -> client direction stopped
  bool backend_ended = false;  // the backend's EOF or reset was seen
};

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_ACTIVITY_H_
