// Section parsing: [server], [tls], [limits], [[listener]] and [[tenant]]
// into the structs of config.h, each value checked where it stands (so its
// error has its line). Checks across sections are in validate.h.
#ifndef POPGATE_CONFIG_SECTIONS_H_
#define POPGATE_CONFIG_SECTIONS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/config.h"
#include "config/toml_fields.h"

namespace popgate::config_internal {

// All sections of `root` into `config` (tenants before listeners:
// a listener's default_tenant must name one).
absl::Status ParseSections(const Fields& fields, const toml::table& root,
                           Config& config);

absl::Status ParseServer(const Fields& fields, const toml::node& node,
                         ServerConfig& server);
absl::Status ParseTls(const Fields& fields, const toml::node& node,
                      TlsConfig& tls);
absl::Status ParseTenants(const Fields& fields, const toml::table& root,
                          Config& config);
absl::Status ParseListeners(const Fields& fields, const toml::table& root,
                            Config& config);
// [admin] (admin_section.cc).
absl::Status ParseAdmin(const Fields& fields, const toml::node& node,
                        AdminConfig& admin);
// [log] (log_section.cc).
absl::Status ParseLog(const Fields& fields, const toml::node& node,
                      LogConfig& log);
// [limits] (limits_section.cc).
absl::Status ParseLimits(const Fields& fields, const toml::node& node,
                         LimitsConfig& limits);

// sockaddr_un's sun_path holds 108 bytes with the NUL: the longest path any
// unix socket setting may name.
inline constexpr size_t kMaxUnixPath = 107;

// "unix:PATH" addresses ([admin] listen, [limits] redis_address,
// unix_address.cc).
bool IsUnixAddress(std::string_view address);
// PATH absolute, at most 107 bytes, no NUL; the error names `key` at `line`.
absl::Status CheckUnixAddress(const Fields& fields, Line line,
                              std::string_view key, std::string_view address);

// An array of CIDR strings ("10.0.0.0/8", "::1/128"), each checked by the
// server's own parser (net/cidr_set.h); errors name `key` and the entry's
// line.
absl::StatusOr<std::vector<std::string>> GetNetworks(const Fields& fields,
                                                     const toml::node& node,
                                                     std::string_view key);

}  // namespace popgate::config_internal

#endif  // POPGATE_CONFIG_SECTIONS_H_
