#include "server/service_notify.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace popgate {

uint64_t MonotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

absl::StatusOr<NotifySocket> NotifySocket::FromEnvironment() {
  const char* env = getenv("NOTIFY_SOCKET");
  if (env == nullptr || *env == '\0') return NotifySocket();
  return ForAddress(env);
}

absl::StatusOr<NotifySocket> NotifySocket::ForAddress(
    absl::string_view address) {
  NotifySocket out;
  if (address.empty()) return out;
  // "@name" is Linux's abstract namespace (a leading NUL); otherwise an
  // absolute path. systemd also knows vsock: addresses, which popgate's
  // RestrictAddressFamilies would not allow anyway.
  if (address[0] != '/' && address[0] != '@') {
    return absl::InvalidArgumentError(absl::StrCat(
        "NOTIFY_SOCKET=", address,
        ": not a unix socket path or @abstract name (popgate speaks only "
        "those): unset it or give such an address"));
  }
  if (address.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NOTIFY_SOCKET is longer than a unix socket address (",
        sizeof(sockaddr_un{}.sun_path) - 1, " bytes): use a shorter path"));
  }
  out.address_ = std::string(address);
  if (out.address_[0] == '@') out.address_[0] = '\0';
  out.fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!out.fd_.valid()) {
    return absl::InternalError(
        absl::StrCat("NOTIFY_SOCKET: socket(AF_UNIX): ", std::strerror(errno),
                     " (AF_UNIX must be allowed: RestrictAddressFamilies)"));
  }
  return out;
}

absl::Status NotifySocket::Send(absl::string_view message) const {
  if (!fd_.valid()) return absl::OkStatus();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, address_.data(), address_.size());
  // An abstract name's length is exact (no terminating NUL counted).
  const socklen_t len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                             (address_[0] == '\0' ? 0 : 1));
  ssize_t n;
  do {
    n = sendto(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return absl::UnavailableError(
        absl::StrCat("notify socket: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ServiceNotifier> ServiceNotifier::FromEnvironment() {
  absl::StatusOr<NotifySocket> socket = NotifySocket::FromEnvironment();
  if (!socket.ok()) return socket.status();
  absl::Duration watchdog = absl::ZeroDuration();
  // WATCHDOG_PID, when set, names the process meant (not a child).
  const char* usec = getenv("WATCHDOG_USEC");
  const char* pid = getenv("WATCHDOG_PID");
  uint64_t us = 0;
  int64_t for_pid = 0;
  if (usec != nullptr && absl::SimpleAtoi(usec, &us) && us > 0 &&
      (pid == nullptr || (absl::SimpleAtoi(pid, &for_pid) &&
                          for_pid == static_cast<int64_t>(getpid())))) {
    watchdog = absl::Microseconds(static_cast<int64_t>(us));
  }
  return ServiceNotifier(*std::move(socket), watchdog);
}

ServiceNotifier::ServiceNotifier(NotifySocket socket, absl::Duration watchdog)
    : socket_(std::move(socket)), watchdog_(watchdog) {}

void ServiceNotifier::Send(const std::string& message) {
  // systemd gone or its socket full: nothing to do about it here, and the
  // proxy must not stop for it.
  (void)socket_.Send(message);
}

std::string ServiceNotifier::StatusLine(int live_sessions) const {
  return absl::StrCat("STATUS=", live_sessions, " live sessions, ", reloads_,
                      " reloads (", failed_reloads_, " failed)");
}

void ServiceNotifier::Ready(int workers, size_t listeners) {
  if (!enabled()) return;
  Send(absl::StrCat("READY=1\nSTATUS=serving on ", listeners,
                    " listeners with ", workers,
                    " workers\nMAINPID=", getpid()));
}

void ServiceNotifier::Reloading() {
  if (!enabled()) return;
  Send(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", MonotonicMicros(),
                    "\nSTATUS=reloading the config"));
}

void ServiceNotifier::Reloaded(bool ok) {
  ++reloads_;
  if (!ok) ++failed_reloads_;
  if (!enabled()) return;
  Send(absl::StrCat("READY=1\n", StatusLine(live_),
                    ok ? "" : "; the last reload failed, see the log"));
}

void ServiceNotifier::Stopping() {
  if (!enabled()) return;
  Send("STOPPING=1\nSTATUS=draining sessions");
}

void ServiceNotifier::Tick(absl::Time now, int live_sessions) {
  live_ = live_sessions;
  if (!enabled()) return;
  if (watchdog_ > absl::ZeroDuration() &&
      now - last_watchdog_ >= watchdog_ / 2) {
    last_watchdog_ = now;
    Send("WATCHDOG=1");
  }
  if (now - last_status_ >= absl::Seconds(5)) {
    last_status_ = now;
    Send(StatusLine(live_sessions));
  }
}

}  // namespace popgate
