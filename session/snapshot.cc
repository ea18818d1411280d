#include "session/snapshot.h"

#include "absl/strings/str_cat.h"

namespace popgate {

namespace {

tls::CertKeyFiles ToFiles(const CertKeyConfig& c) {
  return tls::CertKeyFiles{c.cert, c.key};
}

// "host:port" / "[v6]:port" -> host, the default name to verify.
std::string HostOf(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    return address.substr(1, address.find(']') - 1);
  }
  return address.substr(0, address.rfind(':'));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Snapshot>> Snapshot::Build(
    Config config, const SnapshotDeps& deps) {
  auto snap = std::make_shared<Snapshot>();
  snap->use_ktls = deps.kernel_tls && config.tls.ktls;
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
      if (!pf.ok()) {
        // Point at the config line too: that is where the operator looks.
        return absl::InvalidArgumentError(absl::StrCat(
            config.path, ":", t.passwd_file_line, ": tenant ", t.spec.name,
            ": passwd_file: ", pf.status().message()));
      }
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
    if (l.tls == ListenerTls::kNone) {
      snap->listener_tls.push_back(nullptr);
      continue;
    }
    tls::ServerTlsOptions opts;
    for (const CertKeyConfig& c : l.certificates) {
      opts.default_certs.push_back(ToFiles(c));
    }
    for (const TenantConfig& t : config.tenants) {
      tls::CertGroup group;
      group.tenant = t.spec.name;
      group.names = t.sni_names;
      // A tenant without its own certificates is still selected by SNI; it
      // is served the listener's certificates.
      for (const CertKeyConfig& c :
           t.certificates.empty() ? l.certificates : t.certificates) {
        group.certs.push_back(ToFiles(c));
      }
      opts.sni_groups.push_back(std::move(group));
    }
    opts.sign_pool = deps.sign_pool;
    opts.ticket_keys = config.tls.session_tickets ? deps.ticket_keys : nullptr;
    opts.capture_traffic_secrets = snap->use_ktls;
    absl::StatusOr<std::shared_ptr<const tls::ServerContext>> ctx =
        tls::ServerContext::Build(opts);
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.path, ": listener ", l.address, ": ", ctx.status().message()));
    }
    snap->listener_tls.push_back(*std::move(ctx));
  }
  for (const TenantConfig& t : config.tenants) {
    std::vector<std::string> names;
    for (const routing::BackendSpec& b : t.spec.backends) {
      names.push_back(t.backend_tls.name.empty() ? HostOf(b.address)
                                                 : t.backend_tls.name);
    }
    snap->backend_tls_names.push_back(std::move(names));
    if (t.backend_tls.mode == BackendTls::kNone) {
      snap->backend_tls.push_back(nullptr);
      continue;
    }
    tls::ClientTlsOptions opts;
    opts.verify = t.backend_tls.verify;
    opts.ca_file = t.backend_tls.ca_file;
    opts.client_cert = ToFiles(t.backend_tls.client_cert);
    absl::StatusOr<std::shared_ptr<const tls::ClientContext>> ctx =
        tls::ClientContext::Build(opts);
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config.path, ": tenant ", t.spec.name,
                       ": backend_tls: ", ctx.status().message()));
    }
    snap->backend_tls.push_back(*std::move(ctx));
  }
  absl::StatusOr<CidrSet> trusted = CidrSet::Parse(config.tls.trusted_networks);
  if (!trusted.ok()) return trusted.status();
  snap->trusted_networks = *std::move(trusted);
  snap->config = std::move(config);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace popgate
