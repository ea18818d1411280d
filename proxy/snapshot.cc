#include "proxy/snapshot.h"

#include "absl/strings/str_cat.h"

namespace popgate {

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::Build(
    Config config) {
  auto snap = std::make_shared<Snapshot>();
  std::vector<routing::TenantSpec> specs;
  for (const TenantConfig& t : config.tenants) specs.push_back(t.spec);
  absl::StatusOr<routing::RoutingTable> table =
      routing::RoutingTable::Build(std::move(specs));
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.path, ": ", table.status().message()));
  }
  snap->table = *std::move(table);
  for (const TenantConfig& t : config.tenants) {
    if (t.auth == AuthProvider::kFile) {
      absl::StatusOr<auth::PasswdFile> pf =
          auth::PasswdFile::Load(t.passwd_file);
      if (!pf.ok()) return pf.status();
      snap->passwd.push_back(
          std::make_shared<const auth::PasswdFile>(*std::move(pf)));
    } else {
      snap->passwd.push_back(nullptr);
    }
    std::vector<SocketAddress> addrs;
    for (const routing::BackendSpec& b : t.spec.backends) {
      absl::StatusOr<SocketAddress> a = ResolveHostPort(b.address);
      if (!a.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            config.path, ": tenant ", t.spec.name, ": ", a.status().message()));
      }
      addrs.push_back(*a);
    }
    snap->backend_addrs.push_back(std::move(addrs));
  }
  for (const ListenerConfig& l : config.listeners) {
    snap->listener_default_tenant.push_back(l.default_tenant);
  }
  snap->config = std::move(config);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace popgate
