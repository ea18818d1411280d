// systemd's readiness protocol (sd_notify(3)): READY, RELOADING, STOPPING,
// STATUS and WATCHDOG datagrams to $NOTIFY_SOCKET.
//
// Written here rather than linking libsystemd: the protocol is one
// datagram on a unix socket, documented as stable for exactly this use
// (sd_notify(3), "Notes"), and it spares the package a library. Only the
// main thread sends (a blocking call on a socket systemd reads at once);
// without NOTIFY_SOCKET every call does nothing.
#ifndef POPGATE_SERVER_SERVICE_NOTIFY_H_
#define POPGATE_SERVER_SERVICE_NOTIFY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"

namespace popgate {

// One datagram to a notify socket address: "/path" or "@abstract".
class NotifySocket {
 public:
  // From NOTIFY_SOCKET (unset or empty: disabled). A malformed value is an
  // error naming it; the socket is opened at once (before a privilege
  // drop, so the address needs no later permission but the socket's own).
  static absl::StatusOr<NotifySocket> FromEnvironment();
  static absl::StatusOr<NotifySocket> ForAddress(absl::string_view address);

  bool enabled() const { return fd_.valid(); }
  // The whole message in one datagram ("READY=1\nSTATUS=...").
  absl::Status Send(absl::string_view message) const;

 private:
  UniqueFd fd_;
  std::string address_;  // '@' already turned into a leading NUL
};

// What popgate tells systemd over its life, from the main thread's loop.
class ServiceNotifier {
 public:
  ServiceNotifier() = default;
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
  static absl::StatusOr<ServiceNotifier> FromEnvironment();
  explicit ServiceNotifier(NotifySocket socket,
                           absl::Duration watchdog = absl::ZeroDuration());

  bool enabled() const { return socket_.enabled(); }
  // Listeners open, workers running.
  void Ready(int workers, size_t listeners);
  // SIGHUP (or POST /reload) taken / done (ok or failed: READY=1 either
  // way, the running config serves).
  void Reloading();
  void Reloaded(bool ok);
  void Stopping();
  // The 1 s tick: STATUS= every 5 s, WATCHDOG=1 at half WATCHDOG_USEC.
  void Tick(absl::Time now, int live_sessions);

  uint64_t reloads() const { return reloads_; }
  uint64_t failed_reloads() const { return failed_reloads_; }

 private:
  std::string StatusLine(int live_sessions) const;
  void Send(const std::string& message);

  NotifySocket socket_;
  absl::Duration watchdog_ = absl::ZeroDuration();
  absl::Time last_status_ = absl::InfinitePast();
  absl::Time last_watchdog_ = absl::InfinitePast();
  uint64_t reloads_ = 0;
  uint64_t failed_reloads_ = 0;
  int live_ = 0;
};

// CLOCK_MONOTONIC in microseconds (RELOADING's MONOTONIC_USEC).
uint64_t MonotonicMicros();

}  // namespace popgate

#endif  // POPGATE_SERVER_SERVICE_NOTIFY_H_
