// Section parsing: [server], [tls], [[listener]] and [[tenant]] into the
// structs of config.h, each value checked where it stands (so its error
// has its line). Checks across sections are in validate.h.
#ifndef POPGATE_CONFIG_SECTIONS_H_
#define POPGATE_CONFIG_SECTIONS_H_

#include "absl/status/status.h"
#include "config/config.h"
#include "config/toml_fields.h"

namespace popgate::config_internal {

// All four sections of `root` into `config` (tenants before listeners:
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

}  // namespace popgate::config_internal

#endif  // POPGATE_CONFIG_SECTIONS_H_
