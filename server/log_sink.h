// The log outputs other than stderr: syslog (RFC 3164 datagrams on the
// local socket, /dev/log) and journald (its native protocol on
// /run/systemd/journal/socket). One datagram per line, sent only by the
// log writer thread (server/log_writer.h): a slow syslog daemon or journal
// makes that thread wait, never a worker, and the writer's backlog makes
// the workers pause accepting as it does for a slow stderr.
//
// Native protocol rather than libsystemd's sd_journal_send: the same few
// lines of encoding, no library on the package's dependency list, and a
// test can bind the socket itself (CI runs without systemd).
#ifndef POPGATE_SERVER_LOG_SINK_H_
#define POPGATE_SERVER_LOG_SINK_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/unique_fd.h"
#include "config/config.h"

namespace popgate {

class LogSink {
 public:
  virtual ~LogSink() = default;
  // One log line (its '\n' removed). False if it could not be delivered
  // (the caller counts it lost). Blocking: the log writer thread only.
  virtual bool Send(std::string_view line) = 0;
};

// What the datagrams say besides the line, read back from the line's frame
// (base/log_line.h): level, event and, for session lines, the session id.
struct LogLineFacts {
  std::string_view level;    // "" if the line has none
  std::string_view event;    // ""
  std::string_view session;  // ""
};
LogLineFacts ReadLogLineFacts(std::string_view line);

// syslog severity for a level: error 3, warning 4, info (and anything
// else) 6.
int SyslogSeverity(std::string_view level);

// "<PRI>Mmm dd hh:mm:ss popgate[PID]: LINE" (RFC 3164 as glibc's
// syslog(3) sends it to the local socket; rsyslog, syslog-ng and journald
// all read it), PRI = facility * 8 + severity. The time is local, as
// syslog(3)'s; the line carries its own UTC time.
std::string SyslogDatagram(std::string_view line, int facility, int pid,
                           absl::Time now);

// journald's native protocol: MESSAGE=LINE, PRIORITY, SYSLOG_IDENTIFIER=
// popgate, SYSLOG_PID, POPGATE_EVENT and POPGATE_SESSION (when the line
// has them), each "KEY=value\n". A value with a newline (never one of
// ours: JSON escapes it) would use the binary form KEY\n<u64 le>value\n.
std::string JournalDatagram(std::string_view line, int pid);

// Connects to the socket `config` names (syslog_socket or journal_socket);
// null for output = "stderr". A missing socket is an error that says what
// to do (start-up refuses to run without its log).
absl::StatusOr<std::unique_ptr<LogSink>> OpenLogSink(const LogConfig& config);

}  // namespace popgate

#endif  // POPGATE_SERVER_LOG_SINK_H_
