// [log]: where popgate's JSON lines go (stderr, syslog, journald) and
// whether each session also gets a line when it starts.
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "config/sections.h"
#include "config/toml_fields.h"

namespace popgate::config_internal {
namespace {

struct Facility {
  std::string_view name;
  int code;  // RFC 5424 facility number
};
constexpr Facility kFacilities[] = {
    {"kern", 0},    {"user", 1},    {"mail", 2},      {"daemon", 3},
    {"auth", 4},    {"syslog", 5},  {"lpr", 6},       {"news", 7},
    {"uucp", 8},    {"cron", 9},    {"authpriv", 10}, {"ftp", 11},
    {"local0", 16}, {"local1", 17}, {"local2", 18},   {"local3", 19},
    {"local4", 20}, {"local5", 21}, {"local6", 22},   {"local7", 23},
};

absl::StatusOr<std::string> SocketPath(const Fields& f, const toml::node& v,
                                       std::string_view key) {
  absl::StatusOr<std::string> path = f.GetPath(v, key);
  if (!path.ok()) return path.status();
  if (path->size() > kMaxUnixPath) {
    return f.Error(LineOf(v), absl::StrCat("'", std::string(key),
                                           "' is a unix socket path: at most ",
                                           kMaxUnixPath, " bytes"));
  }
  return path;
}

}  // namespace

absl::Status ParseLog(const Fields& f, const toml::node& node, LogConfig& log) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "log");
  if (!table.ok()) return table.status();
  const toml::table& t = **table;
  log.line = LineOf(t);
  if (absl::Status s =
          f.CheckKeys(t,
                      {"output", "session_start", "syslog_facility",
                       "syslog_socket", "journal_socket"},
                      "in [log]");
      !s.ok()) {
    return s;
  }
  if (const toml::node* v = t.get("output")) {
    absl::StatusOr<std::string> out = f.GetString(*v, "output");
    if (!out.ok()) return out.status();
    if (*out == "stderr") {
      log.output = LogOutput::kStderr;
    } else if (*out == "syslog") {
      log.output = LogOutput::kSyslog;
    } else if (*out == "journald") {
      log.output = LogOutput::kJournald;
    } else {
      return f.Error(LineOf(*v),
                     "'output' must be \"stderr\", \"syslog\" or \"journald\"");
    }
  }
  if (const toml::node* v = t.get("session_start")) {
    absl::StatusOr<bool> b = f.GetBool(*v, "session_start");
    if (!b.ok()) return b.status();
    log.session_start = *b;
  }
  if (const toml::node* v = t.get("syslog_facility")) {
    absl::StatusOr<std::string> name = f.GetString(*v, "syslog_facility");
    if (!name.ok()) return name.status();
    bool found = false;
    for (const Facility& fac : kFacilities) {
      if (fac.name == *name) {
        log.syslog_facility = *name;
        log.syslog_facility_code = fac.code;
        found = true;
      }
    }
    if (!found) {
      return f.Error(LineOf(*v),
                     "'syslog_facility' must be one of kern, user, mail, "
                     "daemon, auth, syslog, lpr, news, uucp, cron, authpriv, "
                     "ftp, local0 .. local7");
    }
  }
  if (const toml::node* v = t.get("syslog_socket")) {
    absl::StatusOr<std::string> path = SocketPath(f, *v, "syslog_socket");
    if (!path.ok()) return path.status();
    log.syslog_socket = *std::move(path);
  }
  if (const toml::node* v = t.get("journal_socket")) {
    absl::StatusOr<std::string> path = SocketPath(f, *v, "journal_socket");
    if (!path.ok()) return path.status();
    log.journal_socket = *std::move(path);
  }
  return absl::OkStatus();
}

}  // namespace popgate::config_internal
