// The TOML config loader (config/ParseConfig) on arbitrary text. Paths are
// resolved against a directory that does not exist: ParseConfig reads no
// file (certificates and passwd-files are loaded later, by their owners).
//
// Properties: a config that parses has a listener and a tenant; every
// listener and backend address passes ValidateHostPort; every error starts
// with the file name (it says where); its tenants build a routing table.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "routing/routing_table.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<popgate::Config> config =
      popgate::ParseConfig(text, "fuzz.toml", "/nonexistent-popgate-fuzz");
  if (!config.ok()) {
    const std::string message(config.status().message());
    FUZZ_CHECK(message.starts_with("fuzz.toml"));
    return 0;
  }
  FUZZ_CHECK(!config->listeners.empty());
  FUZZ_CHECK(!config->tenants.empty());
  for (const popgate::ListenerConfig& l : config->listeners) {
    FUZZ_CHECK(popgate::ValidateHostPort(l.address).ok());
  }
  std::vector<popgate::routing::TenantSpec> specs;
  for (const popgate::TenantConfig& t : config->tenants) {
    FUZZ_CHECK(!t.spec.backends.empty());
    for (const popgate::routing::BackendSpec& b : t.spec.backends) {
      FUZZ_CHECK(popgate::ValidateHostPort(b.address).ok());
    }
    specs.push_back(t.spec);
  }
  // Everything Build() would refuse is a config error already.
  FUZZ_CHECK(popgate::routing::RoutingTable::Build(specs).ok());
  return 0;
}
