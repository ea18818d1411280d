#include "server/log_sink.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/absl_view.h"

namespace popgate {
namespace {

// `"key":"value"` in the line: the value (our keys' values never hold an
// escaped quote: levels, event names and session ids are fixed ASCII).
std::string_view FindString(std::string_view line, std::string_view key) {
  const size_t at = line.find(key);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + key.size();
  const size_t end = line.find('"', begin);
  if (end == std::string_view::npos) return {};
  return line.substr(begin, end - begin);
}

void AppendJournalField(std::string& out, std::string_view key,
                        std::string_view value) {
  if (value.find('\n') == std::string_view::npos) {
    absl::StrAppend(&out, AbslView(key), "=", AbslView(value), "\n");
    return;
  }
  absl::StrAppend(&out, AbslView(key), "\n");
  uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  absl::StrAppend(&out, AbslView(value), "\n");
}

absl::StatusOr<UniqueFd> ConnectDgram(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": path too long for a unix socket"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return absl::UnavailableError(absl::StrCat(path, ": ", strerror(errno)));
  }
  return fd;
}

// One datagram per line on a connected unix socket; reconnects once when
// the daemon went away and came back (a restarted rsyslog or journald
// makes a new socket: the old connection is refused for ever).
class DgramSink : public LogSink {
 public:
  DgramSink(std::string path, UniqueFd fd, LogConfig config)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        config_(std::move(config)),
        pid_(::getpid()) {}

  bool Send(std::string_view line) override {
    datagram_ = config_.output == LogOutput::kSyslog
                    ? SyslogDatagram(line, config_.syslog_facility_code, pid_,
                                     absl::Now())
                    : JournalDatagram(line, pid_);
    if (SendOnce()) return true;
    if (errno != ECONNREFUSED && errno != ENOTCONN && errno != ENOENT &&
        errno != EBADF) {
      return false;
    }
    absl::StatusOr<UniqueFd> fd = ConnectDgram(path_);
    if (!fd.ok()) return false;
    fd_ = *std::move(fd);
    return SendOnce();
  }

 private:
  bool SendOnce() {
    while (true) {
      const ssize_t n =
          ::send(fd_.get(), datagram_.data(), datagram_.size(), MSG_NOSIGNAL);
      if (n >= 0) return true;
      if (errno != EINTR) return false;
    }
  }

  std::string path_;
  UniqueFd fd_;
  LogConfig config_;
  int pid_;
  std::string datagram_;  // reused: no allocation per line once grown
};

}  // namespace

LogLineFacts ReadLogLineFacts(std::string_view line) {
  LogLineFacts f;
  f.level = FindString(line, "\"level\":\"");
  f.event = FindString(line, "\"event\":\"");
  f.session = FindString(line, "\"session\":\"");
  return f;
}

int SyslogSeverity(std::string_view level) {
  if (level == "error") return 3;
  if (level == "warning") return 4;
  return 6;
}

std::string SyslogDatagram(std::string_view line, int facility, int pid,
                           absl::Time now) {
  const LogLineFacts facts = ReadLogLineFacts(line);
  const int pri = facility * 8 + SyslogSeverity(facts.level);
  // RFC 3164's TIMESTAMP: the day padded with a space ("Dec  2").
  return absl::StrCat(
      "<", pri, ">",
      absl::FormatTime("%b %e %H:%M:%S", now, absl::LocalTimeZone()),
      " popgate[", pid, "]: ", AbslView(line));
}

std::string JournalDatagram(std::string_view line, int pid) {
  const LogLineFacts facts = ReadLogLineFacts(line);
  std::string out;
  out.reserve(line.size() + 160);
  AppendJournalField(out, "MESSAGE", line);
  absl::StrAppend(&out, "PRIORITY=", SyslogSeverity(facts.level), "\n",
                  "SYSLOG_IDENTIFIER=popgate\nSYSLOG_PID=", pid, "\n");
  if (!facts.event.empty())
    AppendJournalField(out, "POPGATE_EVENT", facts.event);
  if (!facts.session.empty()) {
    AppendJournalField(out, "POPGATE_SESSION", facts.session);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<LogSink>> OpenLogSink(const LogConfig& config) {
  if (config.output == LogOutput::kStderr) return nullptr;
  const bool syslog = config.output == LogOutput::kSyslog;
  const std::string& path =
      syslog ? config.syslog_socket : config.journal_socket;
  absl::StatusOr<UniqueFd> fd = ConnectDgram(path);
  if (!fd.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "[log] output = \"", syslog ? "syslog" : "journald",
        "\": cannot connect to ", fd.status().message(),
        syslog ? " (is a syslog daemon running? set [log] syslog_socket, or "
                 "output = \"stderr\")"
               : " (is systemd-journald running? set [log] journal_socket, "
                 "or output = \"stderr\")"));
  }
  return std::unique_ptr<LogSink>(
      std::make_unique<DgramSink>(path, *std::move(fd), config));
}

}  // namespace popgate
