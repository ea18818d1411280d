#include "config/validate.h"

#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "net/local_address.h"
#include "net/socket_address.h"
#include "routing/routing_table.h"

namespace popgate {
namespace config_internal {

bool IsValidTenantName(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenantName) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidDomain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(A(domain), '.')) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-' &&
          c != '_') {
        return false;
      }
    }
  }
  return true;
}

absl::Status CrossCheck(const Fields& f, const Config& config) {
  for (const TenantConfig& t : config.tenants) {
    const routing::TenantSpec& spec = t.spec;
    if (!spec.domains.empty()) continue;
    bool is_default = false;
    for (const ListenerConfig& l : config.listeners) {
      is_default = is_default || l.default_tenant == spec.name;
    }
    if (!is_default) {
      return f.Error(t.domains_line,
                     absl::StrCat("tenant ", Quote(spec.name),
                                  " has no domains and is no listener's "
                                  "default_tenant, so no login can reach "
                                  "it"));
    }
  }
  // The proxy builds its table from the same specs; failing here keeps
  // "config accepted" and "table builds" the same thing.
  std::vector<routing::TenantSpec> specs;
  for (const TenantConfig& t : config.tenants) specs.push_back(t.spec);
  absl::StatusOr<routing::RoutingTable> table =
      routing::RoutingTable::Build(std::move(specs));
  if (!table.ok()) {
    return f.Error(config.tenants.empty() ? 1 : config.tenants.front().line,
                   S(table.status().message()));
  }

  // Loops, for what needs no lookup: numeric listeners and backends.
  std::vector<std::optional<SocketAddress>> listeners;
  bool wildcard = false;
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<HostPort> hp = ParseHostPort(l.address);
    listeners.push_back(hp.ok() ? hp->Numeric() : std::nullopt);
    wildcard =
        wildcard || (listeners.back() && IsUnspecified(*listeners.back()));
  }
  // A dual-stack [::]:p takes IPv4 clients too: beside 0.0.0.0:p both
  // sockets would take them (SO_REUSEPORT lets them share), each with its
  // own settings.
  for (size_t i = 0; i < listeners.size(); ++i) {
    if (!listeners[i] || listeners[i]->family() != AF_INET6 ||
        !IsUnspecified(*listeners[i]) || config.listeners[i].ipv6_only) {
      continue;
    }
    for (size_t j = 0; j < listeners.size(); ++j) {
      if (!listeners[j] || listeners[j]->family() != AF_INET ||
          !IsUnspecified(*listeners[j]) ||
          listeners[j]->port() != listeners[i]->port()) {
        continue;
      }
      const ListenerConfig& l = config.listeners[std::max(i, j)];
      return f.Error(
          l.address_line,
          absl::StrCat("listener ", Quote(config.listeners[i].address),
                       " is dual-stack and takes the IPv4 clients of ",
                       Quote(config.listeners[j].address),
                       " too: set ipv6_only = true on it"));
    }
  }
  // The interface list only matters behind a 0.0.0.0 / [::] listener.
  const std::vector<SocketAddress> local =
      wildcard ? LocalInterfaceAddresses() : std::vector<SocketAddress>{};
  for (size_t t = 0; t < config.tenants.size(); ++t) {
    const std::vector<routing::BackendSpec>& backends =
        config.tenants[t].spec.backends;
    for (size_t b = 0; b < backends.size(); ++b) {
      absl::StatusOr<HostPort> hp = ParseHostPort(backends[b].address);
      std::optional<SocketAddress> addr =
          hp.ok() ? hp->Numeric() : std::nullopt;
      if (!addr) continue;
      if (absl::Status s =
              CheckBackendLoop(config, t, b, *addr, listeners, local);
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace config_internal

absl::Status ValidateHostPort(std::string_view address) {
  return ParseHostPort(address).status();
}

absl::Status CheckBackendLoop(
    const Config& config, size_t tenant, size_t backend,
    const SocketAddress& backend_addr,
    const std::vector<std::optional<SocketAddress>>& listeners,
    const std::vector<SocketAddress>& local) {
  const TenantConfig& t = config.tenants[tenant];
  for (size_t i = 0; i < listeners.size() && i < config.listeners.size(); ++i) {
    if (!listeners[i]) continue;
    const ListenerConfig& l = config.listeners[i];
    if (!ListenerReaches(*listeners[i], l.ipv6_only, backend_addr, local)) {
      continue;
    }
    const uint32_t line =
        backend < t.backend_lines.size() ? t.backend_lines[backend] : t.line;
    return absl::InvalidArgumentError(absl::StrCat(
        config.path, ":", line, ": backend ",
        config_internal::Quote(t.spec.backends[backend].address), " of tenant ",
        config_internal::Quote(t.spec.name), " is popgate's own listener ",
        config_internal::Quote(l.address), " (line ", l.address_line,
        "): a login would loop back into popgate"));
  }
  return absl::OkStatus();
}

}  // namespace popgate
