// [admin]: the admin API's listener, its token file and bounds. Off unless
// `listen` is set; anything reachable beyond this host needs a token.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "config/sections.h"
#include "config/toml_fields.h"
#include "net/socket_address.h"

namespace popgate::config_internal {
namespace {

// Only numeric loopback addresses count: a name could resolve anywhere.
bool IsNumericLoopback(std::string_view listen) {
  absl::StatusOr<HostPort> hp = ParseHostPort(listen, true);
  if (!hp.ok()) return false;
  if (hp->family == AF_INET) return hp->host.starts_with("127.");
  if (hp->family == AF_INET6) return hp->host == "::1";
  return false;
}

}  // namespace

absl::Status ParseAdmin(const Fields& f, const toml::node& node,
                        AdminConfig& admin) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "admin");
  if (!table.ok()) return table.status();
  const toml::table& t = **table;
  admin.line = LineOf(t);
  if (absl::Status s = f.CheckKeys(
          t, {"listen", "token_file", "max_connections", "request_timeout"},
          "in [admin]");
      !s.ok()) {
    return s;
  }
  Line listen_line = admin.line;
  if (const toml::node* v = t.get("listen")) {
    listen_line = LineOf(*v);
    absl::StatusOr<std::string> listen = f.GetString(*v, "listen");
    if (!listen.ok()) return listen.status();
    admin.listen = *std::move(listen);
    if (IsUnixAddress(admin.listen)) {
      if (absl::Status s =
              CheckUnixAddress(f, listen_line, "listen", admin.listen);
          !s.ok()) {
        return s;
      }
    } else if (!admin.listen.empty()) {
      absl::StatusOr<HostPort> hp = ParseHostPort(admin.listen);
      if (!hp.ok()) {
        return f.Error(listen_line,
                       absl::StrCat("'listen': ", hp.status().message()));
      }
    }
  }
  if (const toml::node* v = t.get("token_file")) {
    admin.token_file_line = LineOf(*v);
    absl::StatusOr<std::string> path = f.GetPath(*v, "token_file");
    if (!path.ok()) return path.status();
    admin.token_file = *std::move(path);
  }
  if (const toml::node* v = t.get("max_connections")) {
    absl::StatusOr<int64_t> n = f.GetInt(*v, "max_connections", 1, 1024);
    if (!n.ok()) return n.status();
    admin.max_connections = static_cast<int>(*n);
  }
  if (const toml::node* v = t.get("request_timeout")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "request_timeout", /*allow_zero=*/false);
    if (!d.ok()) return d.status();
    if (*d > absl::Minutes(1)) {
      return f.Error(LineOf(*v), "'request_timeout' is at most 1m");
    }
    admin.request_timeout = *d;
  }
  // The API can cut sessions and drain backends: beyond this host it
  // needs a token.
  if (!admin.listen.empty() && admin.token_file.empty() &&
      !IsUnixAddress(admin.listen) && !IsNumericLoopback(admin.listen)) {
    return f.Error(listen_line,
                   "[admin] 'listen' on an address other than 127.0.0.1 or "
                   "[::1] needs 'token_file'");
  }
  return absl::OkStatus();
}

}  // namespace popgate::config_internal
