// popgate's configuration: one TOML file, every setting with a safe default.
// Unknown keys and wrong types are errors reported as "file:line: reason".
#ifndef POPGATE_PROXY_CONFIG_H_
#define POPGATE_PROXY_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "routing/routing_table.h"

namespace popgate {

struct ServerConfig {
  int workers = 0;                  // 0 = one per online CPU
  int auth_threads = 2;             // hash pool size
  int max_auth_failures = 3;        // per connection, then close
  absl::Duration preauth_idle_timeout = absl::Seconds(60);
  absl::Duration backend_timeout = absl::Seconds(10);  // connect + greeting
  absl::Duration auth_failure_delay = absl::Seconds(2);
  absl::Duration shutdown_grace = absl::Seconds(30);
  // A forwarded session with no byte moving either way for this long is
  // closed (both sides, no QUIT). RFC 1939 asks servers for >= 10 minutes of
  // autologout; backends usually close first.
  absl::Duration forward_idle_timeout = absl::Minutes(30);
  std::string greeting = "popgate ready.";
};

struct ListenerConfig {
  std::string address;         // "127.0.0.1:1110", "[::1]:110"
  std::string default_tenant;  // tenant name, empty = none
};

enum class AuthProvider { kFile, kBackend };

struct TenantConfig {
  routing::TenantSpec spec;
  AuthProvider auth = AuthProvider::kFile;
  std::string passwd_file;  // absolute (resolved against the config's dir)
};

struct Config {
  std::string path;  // the file it came from
  ServerConfig server;
  std::vector<ListenerConfig> listeners;  // at least one
  std::vector<TenantConfig> tenants;      // at least one
};

// Parses TOML text. Relative paths are resolved against `base_dir`.
// `name` appears in errors ("name:line: reason").
absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view name,
                                   std::string_view base_dir);
// Reads `path` and parses it.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// "host:port" / "[v6]:port" split; numeric host or name; port 1..65535.
absl::Status ValidateHostPort(std::string_view address);

}  // namespace popgate

#endif  // POPGATE_PROXY_CONFIG_H_
