#include "session/snapshot.h"

#include <openssl/evp.h>

#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/local_address.h"
#include "tls/cert_loader.h"

namespace popgate {

namespace {

tls::CertKeyFiles ToFiles(const CertKeyConfig& c) {
  return tls::CertKeyFiles{c.cert, c.key};
}

// "host:port" / "[v6]:port" -> host, the default name to verify (the one
// host:port parser; addresses were validated at load).
std::string HostOf(const std::string& address) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address);
  return hp.ok() ? hp->host : address;
}

absl::Status At(const Config& config, uint32_t line, std::string_view what,
                const absl::Status& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      config.path, ":", line == 0 ? 1 : line, ": ",
      absl::string_view(what.data(), what.size()), ": ", why.message()));
}

// Loads each certificate/key pair once on its own, so a bad file is
// reported at the config line that names it (the TLS contexts get them all
// at once and could only say which listener). The loader's errors name the
// file and the reason, never key material.
absl::Status CheckCertificates(const Config& config) {
  std::set<std::pair<std::string, std::string>> checked;
  auto check = [&](const CertKeyConfig& c,
                   std::string_view where) -> absl::Status {
    if (!checked.emplace(c.cert, c.key).second) return absl::OkStatus();
    absl::StatusOr<tls::LoadedCert> loaded = tls::LoadCertKey(ToFiles(c));
    if (!loaded.ok()) return At(config, c.line, where, loaded.status());
    return absl::OkStatus();
  };
  for (const ListenerConfig& l : config.listeners) {
    if (l.tls == ListenerTls::kNone) continue;
    for (const CertKeyConfig& c : l.certificates) {
      if (absl::Status s = check(c, absl::StrCat("listener ", l.address));
          !s.ok()) {
        return s;
      }
    }
  }
  bool any_tls_listener = false;
  for (const ListenerConfig& l : config.listeners) {
    any_tls_listener = any_tls_listener || l.tls != ListenerTls::kNone;
  }
  for (const TenantConfig& t : config.tenants) {
    const std::string where = absl::StrCat("tenant ", t.spec.name);
    if (any_tls_listener) {
      for (const CertKeyConfig& c : t.certificates) {
        if (absl::Status s = check(c, where); !s.ok()) return s;
      }
    }
    const CertKeyConfig& cc = t.backend_tls.client_cert;
    if (t.backend_tls.mode != BackendTls::kNone && !cc.cert.empty()) {
      if (absl::Status s = check(cc, where + ": backend_tls"); !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
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

  // Listeners first: the loop check below needs their addresses, and a
  // listener that cannot be resolved must fail --check-config, not only
  // the start.
  std::vector<std::optional<SocketAddress>> listeners;
  bool wildcard = false;
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<SocketAddress> a = ResolveHostPort(l.address);
    if (!a.ok()) return At(config, l.address_line, "listener", a.status());
    snap->listener_addrs.push_back(*a);
    listeners.push_back(*a);
    wildcard = wildcard || IsUnspecified(*a);
  }
  const std::vector<SocketAddress> local =
      wildcard ? LocalInterfaceAddresses() : std::vector<SocketAddress>{};

  for (size_t ti = 0; ti < config.tenants.size(); ++ti) {
    const TenantConfig& t = config.tenants[ti];
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
    snap->auth_cache.push_back(
        t.auth == AuthProvider::kFile && t.auth_cache_size > 0
            ? std::make_shared<auth::AuthCache>(
                  static_cast<size_t>(t.auth_cache_size), t.auth_cache_ttl,
                  t.auth_cache_negative_ttl)
            : nullptr);
    if (t.backend_login == BackendLoginMode::kMaster) {
      absl::StatusOr<std::shared_ptr<const auth::MasterPassword>> mp =
          auth::ReadMasterPasswordFile(t.master_password_file);
      if (!mp.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            config.path, ":", t.master_password_file_line, ": tenant ",
            t.spec.name, ": master_password_file: ", mp.status().message()));
      }
      snap->master_password.push_back(*std::move(mp));
    } else {
      snap->master_password.push_back(nullptr);
    }
    std::vector<SocketAddress> addrs;
    std::vector<std::shared_ptr<BackendHealth>> health;
    for (size_t bi = 0; bi < t.spec.backends.size(); ++bi) {
      const routing::BackendSpec& b = t.spec.backends[bi];
      const uint32_t line =
          bi < t.backend_lines.size() ? t.backend_lines[bi] : t.line;
      absl::StatusOr<SocketAddress> a = ResolveHostPort(b.address);
      if (!a.ok()) {
        return At(config, line, absl::StrCat("tenant ", t.spec.name),
                  a.status());
      }
      // Config loading caught numeric loops; names are known only now.
      if (absl::Status s =
              CheckBackendLoop(config, ti, bi, *a, listeners, local);
          !s.ok()) {
        return s;
      }
      addrs.push_back(*a);
      std::shared_ptr<BackendHealth> h =
          deps.health != nullptr
              ? deps.health->Get(t.spec.name, b.address)
              : std::make_shared<BackendHealth>(t.spec.name, b.address);
      if (b.state == routing::AdminState::kDown) {
        snap->forced_down.push_back(h.get());
      }
      health.push_back(std::move(h));
    }
    snap->backend_addrs.push_back(std::move(addrs));
    snap->health.push_back(std::move(health));
  }

  if (absl::Status s = CheckCertificates(config); !s.ok()) return s;
  if (deps.ticket_keys == nullptr && config.tls.session_tickets &&
      !config.tls.ticket_key_file.empty()) {
    // The running server reads the file at start (main); --check-config
    // has no keys, so it reads it here to report a bad one with its line.
    // Errors name the file and the reason, not its contents.
    absl::StatusOr<std::shared_ptr<tls::TicketKeys>> keys =
        tls::TicketKeys::Create(config.tls.ticket_key_rotation,
                                config.tls.ticket_key_file);
    if (!keys.ok()) {
      return At(config, config.tls.ticket_key_file_line, "[tls]",
                keys.status());
    }
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
      return At(config, l.line, absl::StrCat("listener ", l.address),
                ctx.status());
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
      // Client certificates were checked above: what is left is the CA.
      const uint32_t line = t.backend_tls.ca_file_line != 0
                                ? t.backend_tls.ca_file_line
                                : t.backend_tls.line;
      return At(config, line,
                absl::StrCat("tenant ", t.spec.name, ": backend_tls"),
                ctx.status());
    }
    snap->backend_tls.push_back(*std::move(ctx));
  }
  absl::StatusOr<CidrSet> trusted = CidrSet::Parse(config.tls.trusted_networks);
  if (!trusted.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        config.path, ": [tls] trusted_networks: ", trusted.status().message()));
  }
  snap->trusted_networks = *std::move(trusted);
  for (const ListenerConfig& l : config.listeners) {
    absl::StatusOr<CidrSet> nets = CidrSet::Parse(l.proxy_trusted_networks);
    if (!nets.ok()) {
      return At(config, l.line, "proxy_trusted_networks", nets.status());
    }
    snap->listener_proxy_trusted.push_back(*std::move(nets));
  }
  absl::StatusOr<CidrSet> exempt =
      CidrSet::Parse(config.limits.exempt_networks);
  if (!exempt.ok()) {
    return At(config, config.limits.line, "[limits] exempt_networks",
              exempt.status());
  }
  snap->limits_exempt = *std::move(exempt);
  snap->config = std::move(config);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

void ApplyHealthPolicies(const Snapshot& snap) {
  for (size_t t = 0; t < snap.health.size(); ++t) {
    for (const std::shared_ptr<BackendHealth>& h : snap.health[t]) {
      h->SetPolicy(snap.config.tenants[t].health_check);
    }
  }
}

}  // namespace popgate
