#include "config/sections.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "config/validate.h"
#include "net/cidr_set.h"
#include "net/socket_address.h"
#include "routing/routing_table.h"

namespace popgate::config_internal {
namespace {

constexpr size_t kMaxGreeting = 400;  // leaves room in a 512-octet line

// Names taken so far, so a duplicate's error points at the duplicate.
struct Seen {
  absl::flat_hash_set<std::string> tenants;
  absl::flat_hash_map<std::string, std::string> domain_owner;  // -> tenant
};

// [{ cert = "a.pem", key = "a.key" }, ...]
absl::StatusOr<std::vector<CertKeyConfig>> GetCertificates(
    const Fields& f, const toml::node& node) {
  absl::StatusOr<std::vector<const toml::table*>> tables =
      f.GetTableArray(node, "certificates");
  if (!tables.ok()) return tables.status();
  std::vector<CertKeyConfig> out;
  for (const toml::table* t : *tables) {
    if (absl::Status s = f.CheckKeys(*t, {"cert", "key"}, "in certificates");
        !s.ok()) {
      return s;
    }
    const toml::node* cert = t->get("cert");
    const toml::node* key = t->get("key");
    if (cert == nullptr || key == nullptr) {
      return f.Error(LineOf(*t), "a certificate needs 'cert' and 'key'");
    }
    absl::StatusOr<std::string> c = f.GetPath(*cert, "cert");
    if (!c.ok()) return c.status();
    absl::StatusOr<std::string> k = f.GetPath(*key, "key");
    if (!k.ok()) return k.status();
    out.push_back({*std::move(c), *std::move(k), LineOf(*t)});
  }
  return out;
}

absl::Status ParseBackendTls(const Fields& f, const toml::node& node,
                             TenantConfig& tenant) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "backend_tls");
  if (!table.ok()) return table.status();
  if (absl::Status s = f.CheckKeys(
          **table,
          {"mode", "verify", "ca_file", "name", "client_cert", "client_key"},
          "in backend_tls");
      !s.ok()) {
    return s;
  }
  const toml::table& t = **table;
  BackendTlsConfig& b = tenant.backend_tls;
  b.line = LineOf(t);
  if (const toml::node* v = t.get("mode")) {
    absl::StatusOr<std::string> mode = f.GetString(*v, "mode");
    if (!mode.ok()) return mode.status();
    if (*mode == "none") {
      b.mode = BackendTls::kNone;
    } else if (*mode == "starttls") {
      b.mode = BackendTls::kStartTls;
    } else if (*mode == "implicit") {
      b.mode = BackendTls::kImplicit;
    } else {
      return f.Error(LineOf(*v),
                     "backend_tls 'mode' must be \"none\", "
                     "\"starttls\" or \"implicit\"");
    }
  }
  if (const toml::node* v = t.get("verify")) {
    absl::StatusOr<bool> verify = f.GetBool(*v, "verify");
    if (!verify.ok()) return verify.status();
    b.verify = *verify;
  }
  if (const toml::node* v = t.get("ca_file")) {
    absl::StatusOr<std::string> p = f.GetPath(*v, "ca_file");
    if (!p.ok()) return p.status();
    b.ca_file = *std::move(p);
    b.ca_file_line = LineOf(*v);
  }
  if (const toml::node* v = t.get("name")) {
    absl::StatusOr<std::string> name = f.GetString(*v, "name");
    if (!name.ok()) return name.status();
    b.name = *std::move(name);
  }
  const toml::node* cc = t.get("client_cert");
  const toml::node* ck = t.get("client_key");
  if ((cc == nullptr) != (ck == nullptr)) {
    return f.Error(LineOf(t),
                   "backend_tls needs both 'client_cert' and "
                   "'client_key', or neither");
  }
  if (cc != nullptr) {
    absl::StatusOr<std::string> c = f.GetPath(*cc, "client_cert");
    if (!c.ok()) return c.status();
    absl::StatusOr<std::string> k = f.GetPath(*ck, "client_key");
    if (!k.ok()) return k.status();
    b.client_cert = {*std::move(c), *std::move(k), LineOf(*cc)};
  }
  return absl::OkStatus();
}

absl::Status ParseBackends(const Fields& f, const toml::node& node,
                           TenantConfig& tenant) {
  routing::TenantSpec& spec = tenant.spec;
  absl::StatusOr<std::vector<const toml::table*>> backends =
      f.GetTableArray(node, "backends");
  if (!backends.ok()) return backends.status();
  if (backends->empty()) {
    return f.Error(LineOf(node), absl::StrCat("tenant ", Quote(spec.name),
                                              " needs at least one backend"));
  }
  const std::string where =
      absl::StrCat("in a backend of tenant ", Quote(spec.name));
  for (const toml::table* b : *backends) {
    if (absl::Status s = f.CheckKeys(
            *b, {"address", "weight", "state", "max_connections"}, where);
        !s.ok()) {
      return s;
    }
    routing::BackendSpec backend;
    const toml::node* address = b->get("address");
    if (address == nullptr) {
      return f.Error(LineOf(*b), absl::StrCat("missing 'address' ", where));
    }
    absl::StatusOr<std::string> a = f.GetString(*address, "address");
    if (!a.ok()) return a.status();
    if (absl::Status s = ValidateHostPort(*a); !s.ok()) {
      return f.Error(LineOf(*address), S(s.message()));
    }
    // Same address twice would be one backend with two hash identities
    // equal to each other; almost certainly a copy-paste slip.
    for (const routing::BackendSpec& other : spec.backends) {
      if (other.address == *a) {
        return f.Error(LineOf(*address),
                       absl::StrCat("backend ", Quote(*a), " listed twice ",
                                    "in tenant ", Quote(spec.name)));
      }
    }
    backend.address = *std::move(a);
    tenant.backend_lines.push_back(LineOf(*address));
    if (const toml::node* weight = b->get("weight")) {
      absl::StatusOr<int64_t> w = f.GetInt(*weight, "weight", 1, 1000);
      if (!w.ok()) return w.status();
      backend.weight = static_cast<uint32_t>(*w);
    }
    if (const toml::node* v = b->get("state")) {
      absl::StatusOr<std::string> state = f.GetString(*v, "state");
      if (!state.ok()) return state.status();
      if (*state == "up") {
        backend.state = routing::AdminState::kUp;
      } else if (*state == "drain") {
        backend.state = routing::AdminState::kDrain;
      } else if (*state == "down") {
        backend.state = routing::AdminState::kDown;
      } else {
        return f.Error(LineOf(*v),
                       "a backend's 'state' must be \"up\", \"drain\" or "
                       "\"down\"");
      }
    }
    if (const toml::node* v = b->get("max_connections")) {
      absl::StatusOr<int64_t> n = f.GetInt(*v, "max_connections", 0, 1000000);
      if (!n.ok()) return n.status();
      backend.max_connections = static_cast<uint32_t>(*n);
    }
    spec.backends.push_back(std::move(backend));
  }
  return absl::OkStatus();
}

// [tenant.health_check]: the table's presence turns active checks on.
absl::Status ParseHealthCheck(const Fields& f, const toml::node& node,
                              TenantConfig& tenant) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "health_check");
  if (!table.ok()) return table.status();
  if (absl::Status s = f.CheckKeys(**table,
                                   {"active", "passive", "interval", "timeout",
                                    "rise", "fall", "capa", "tls"},
                                   "in health_check");
      !s.ok()) {
    return s;
  }
  const toml::table& t = **table;
  HealthCheckConfig& h = tenant.health_check;
  h.line = LineOf(t);
  h.active = true;
  struct BoolField {
    std::string_view key;
    bool* out;
  };
  for (const BoolField& field :
       {BoolField{"active", &h.active}, BoolField{"passive", &h.passive},
        BoolField{"capa", &h.capa}, BoolField{"tls", &h.tls}}) {
    const toml::node* v = t.get(field.key);
    if (v == nullptr) continue;
    absl::StatusOr<bool> b = f.GetBool(*v, field.key);
    if (!b.ok()) return b.status();
    *field.out = *b;
  }
  const toml::node* interval = t.get("interval");
  if (interval != nullptr) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*interval, "interval", false);
    if (!d.ok()) return d.status();
    // Faster than once a second is a load on the backends, not a faster
    // reaction: fall counts dominate the time to notice a death anyway.
    if (*d < absl::Seconds(1)) {
      return f.Error(LineOf(*interval),
                     "health_check 'interval' must be at least 1s (a "
                     "duration such as \"5s\")");
    }
    h.interval = *d;
  }
  const toml::node* timeout = t.get("timeout");
  if (timeout != nullptr) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*timeout, "timeout", false);
    if (!d.ok()) return d.status();
    h.timeout = *d;
  }
  // A check still running when the next is due would pile up checks on a
  // backend that hangs.
  if (h.timeout >= h.interval) {
    if (timeout != nullptr) {
      return f.Error(LineOf(*timeout),
                     absl::StrCat("health_check 'timeout' (",
                                  absl::FormatDuration(h.timeout),
                                  ") must be shorter than 'interval' (",
                                  absl::FormatDuration(h.interval), ")"));
    }
    return f.Error(interval != nullptr ? LineOf(*interval) : h.line,
                   absl::StrCat("health_check 'interval' (",
                                absl::FormatDuration(h.interval),
                                ") must be longer than 'timeout' (",
                                absl::FormatDuration(h.timeout),
                                ", the default): set a shorter 'timeout' too"));
  }
  for (auto [key, out] : {std::pair<std::string_view, int*>{"rise", &h.rise},
                          std::pair<std::string_view, int*>{"fall", &h.fall}}) {
    const toml::node* v = t.get(key);
    if (v == nullptr) continue;
    absl::StatusOr<int64_t> n = f.GetInt(*v, key, 1, 100);
    if (!n.ok()) return n.status();
    *out = static_cast<int>(*n);
  }
  return absl::OkStatus();
}

// Printable ASCII without space: what fits in a USER or AUTH line as one
// token.
bool IsToken(std::string_view s) {
  for (char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return !s.empty();
}

// backend_login and the master_* keys; `auth_line` is where auth was set.
absl::Status ParseBackendLogin(const Fields& f, const toml::table& t,
                               TenantConfig& tenant, Line auth_line) {
  const std::string& name = tenant.spec.name;
  Line login_line = LineOf(t);
  if (const toml::node* v = t.get("backend_login")) {
    login_line = LineOf(*v);
    absl::StatusOr<std::string> mode = f.GetString(*v, "backend_login");
    if (!mode.ok()) return mode.status();
    if (*mode == "client") {
      tenant.backend_login = BackendLoginMode::kClient;
    } else if (*mode == "master") {
      tenant.backend_login = BackendLoginMode::kMaster;
    } else {
      return f.Error(LineOf(*v),
                     "'backend_login' must be \"client\" or \"master\"");
    }
  }
  constexpr std::string_view kMasterKeys[] = {
      "master_user", "master_password_file", "master_login",
      "master_separator"};
  if (tenant.backend_login == BackendLoginMode::kClient) {
    // Silently ignoring them would hide that the master user is not used.
    for (std::string_view key : kMasterKeys) {
      if (const toml::node* v = t.get(key)) {
        return f.Error(LineOf(*v),
                       absl::StrCat(Quote(key),
                                    " is used only with backend_login = "
                                    "\"master\" (tenant ",
                                    Quote(name), " logs in as the client)"));
      }
    }
    return absl::OkStatus();
  }
  if (tenant.auth != AuthProvider::kFile) {
    return f.Error(
        login_line,
        absl::StrCat("backend_login = \"master\" needs auth = \"file\" "
                     "(tenant ",
                     Quote(name), " has auth = \"backend\" on line ", auth_line,
                     "): popgate has to verify the user's password itself "
                     "before it logs in on the user's behalf"));
  }
  const toml::node* user = t.get("master_user");
  if (user == nullptr) {
    return f.Error(login_line,
                   absl::StrCat("tenant ", Quote(name),
                                " has backend_login = \"master\" but no "
                                "'master_user'"));
  }
  absl::StatusOr<std::string> u = f.GetString(*user, "master_user");
  if (!u.ok()) return u.status();
  if (u->size() > 255 || !IsToken(*u)) {
    return f.Error(LineOf(*user),
                   "'master_user' must be 1..255 printable ASCII characters "
                   "without spaces");
  }
  tenant.master_user = *std::move(u);
  const toml::node* file = t.get("master_password_file");
  if (file == nullptr) {
    return f.Error(login_line,
                   absl::StrCat("tenant ", Quote(name),
                                " has backend_login = \"master\" but no "
                                "'master_password_file'"));
  }
  absl::StatusOr<std::string> p = f.GetPath(*file, "master_password_file");
  if (!p.ok()) return p.status();
  tenant.master_password_file = *std::move(p);
  tenant.master_password_file_line = LineOf(*file);
  Line method_line = login_line;
  if (const toml::node* v = t.get("master_login")) {
    method_line = LineOf(*v);
    absl::StatusOr<std::string> m = f.GetString(*v, "master_login");
    if (!m.ok()) return m.status();
    if (*m == "separator") {
      tenant.master_login = MasterLoginMethod::kSeparator;
    } else if (*m == "sasl-plain") {
      tenant.master_login = MasterLoginMethod::kSaslPlain;
    } else {
      return f.Error(LineOf(*v),
                     "'master_login' must be \"separator\" or "
                     "\"sasl-plain\"");
    }
  }
  if (const toml::node* v = t.get("master_separator")) {
    if (tenant.master_login != MasterLoginMethod::kSeparator) {
      return f.Error(LineOf(*v),
                     absl::StrCat("'master_separator' is used only with "
                                  "master_login = \"separator\" (tenant ",
                                  Quote(name), " has \"sasl-plain\" on line ",
                                  method_line, ")"));
    }
    absl::StatusOr<std::string> sep = f.GetString(*v, "master_separator");
    if (!sep.ok()) return sep.status();
    // A character that can be part of a canonical user name would make the
    // backend split "user<sep>master" in the wrong place.
    bool ok = sep->size() <= 8 && IsToken(*sep);
    for (char c : *sep) {
      ok = ok && !absl::ascii_isalnum(c) &&
           std::string_view("._+=-@").find(c) == std::string_view::npos;
    }
    if (!ok) {
      return f.Error(LineOf(*v),
                     "'master_separator' must be 1..8 printable ASCII "
                     "characters, none of them a space, a letter, a digit or "
                     "one of . _ + = - @ (they can be part of a user name), "
                     "e.g. \"*\"");
    }
    tenant.master_separator = *std::move(sep);
  }
  return absl::OkStatus();
}

constexpr size_t kMaxCapabilities = 32;
constexpr size_t kMaxCapabilityLength = 100;

// capabilities = ["TOP", "EXPIRE 30", ...]: CAPA before login.
absl::Status ParseCapabilities(const Fields& f, const toml::node& node,
                               TenantConfig& tenant) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    return f.WrongType(node, "capabilities", "an array of strings");
  }
  if (array->size() > kMaxCapabilities) {
    return f.Error(
        LineOf(node),
        absl::StrCat("'capabilities' has ", array->size(), " entries; at most ",
                     kMaxCapabilities, " are allowed"));
  }
  constexpr std::string_view kForm =
      "a capability is an upper-case keyword of [A-Z0-9-], optionally "
      "followed by one space and printable ASCII arguments, at most 100 "
      "characters in all (e.g. \"TOP\", \"EXPIRE 30\")";
  absl::flat_hash_map<std::string, Line> seen;  // keyword -> line
  std::vector<std::string> out;
  for (const toml::node& n : *array) {
    absl::StatusOr<std::string> cap = f.GetString(n, "capabilities[]");
    if (!cap.ok()) return cap.status();
    const std::string_view c = *cap;
    const size_t space = c.find(' ');
    const std::string_view keyword = c.substr(0, space);
    const std::string_view args =
        space == std::string_view::npos ? "" : c.substr(space + 1);
    bool ok = !keyword.empty() && c.size() <= kMaxCapabilityLength;
    for (char k : keyword) {
      ok = ok && (absl::ascii_isupper(k) || absl::ascii_isdigit(k) || k == '-');
    }
    if (space != std::string_view::npos) {
      ok = ok && !args.empty() && args.front() != ' ' && args.back() != ' ';
      for (char a : args) ok = ok && a >= 0x20 && a < 0x7f;
    }
    if (!ok) {
      return f.Error(LineOf(n),
                     absl::StrCat("bad capability ", Quote(c), ": ", A(kForm)));
    }
    std::string_view why;
    if (keyword == "USER") {
      why = "offers it where plaintext logins are allowed";
    } else if (keyword == "SASL") {
      why = "offers its own SASL mechanisms where logins are allowed";
    } else if (keyword == "STLS") {
      why = "offers it on starttls listeners until TLS is on";
    } else if (keyword == "IMPLEMENTATION") {
      why = "sends its own, with its popgate-id for loop detection";
    }
    if (!why.empty()) {
      return f.Error(LineOf(n),
                     absl::StrCat("capability ", Quote(keyword),
                                  " cannot be configured: popgate ", A(why),
                                  "; leave it out of 'capabilities'"));
    }
    auto [it, inserted] = seen.emplace(std::string(keyword), LineOf(n));
    if (!inserted) {
      return f.Error(LineOf(n), absl::StrCat("capability ", Quote(keyword),
                                             " listed twice (first on line ",
                                             it->second, ")"));
    }
    out.push_back(*std::move(cap));
  }
  tenant.capabilities = std::move(out);
  return absl::OkStatus();
}

// failover, client_identity, backend_login (+ master_*), capabilities and
// health_check: how the tenant's pool is used.
absl::Status ParsePoolSettings(const Fields& f, const toml::table& t,
                               TenantConfig& tenant, Line auth_line) {
  if (const toml::node* v = t.get("failover")) {
    absl::StatusOr<std::string> mode = f.GetString(*v, "failover");
    if (!mode.ok()) return mode.status();
    if (*mode == "none") {
      tenant.failover = Failover::kNone;
    } else if (*mode == "next") {
      tenant.failover = Failover::kNext;
    } else {
      return f.Error(LineOf(*v), "'failover' must be \"none\" or \"next\"");
    }
  }
  if (const toml::node* v = t.get("client_identity")) {
    absl::StatusOr<std::string> mode = f.GetString(*v, "client_identity");
    if (!mode.ok()) return mode.status();
    if (*mode == "none") {
      tenant.client_identity = ClientIdentity::kNone;
    } else if (*mode == "proxy-v2") {
      tenant.client_identity = ClientIdentity::kProxyV2;
    } else if (*mode == "xclient") {
      tenant.client_identity = ClientIdentity::kXclient;
    } else {
      return f.Error(LineOf(*v),
                     "'client_identity' must be \"none\", \"proxy-v2\" or "
                     "\"xclient\"");
    }
  }
  if (absl::Status s = ParseBackendLogin(f, t, tenant, auth_line); !s.ok()) {
    return s;
  }
  if (const toml::node* v = t.get("capabilities")) {
    if (absl::Status s = ParseCapabilities(f, *v, tenant); !s.ok()) return s;
  }
  if (const toml::node* v = t.get("health_check")) {
    if (absl::Status s = ParseHealthCheck(f, *v, tenant); !s.ok()) return s;
  }
  return absl::OkStatus();
}

constexpr std::string_view kAuthCacheKeys[] = {
    "auth_cache_size", "auth_cache_ttl", "auth_cache_negative_ttl"};

// max_sessions and the auth cache (auth_cache_*).
absl::Status ParseTenantLimits(const Fields& f, const toml::table& t,
                               TenantConfig& tenant, Line auth_line) {
  if (const toml::node* v = t.get("max_sessions")) {
    absl::StatusOr<int64_t> n = f.GetInt(*v, "max_sessions", 0, 10000000);
    if (!n.ok()) return n.status();
    tenant.max_sessions = static_cast<int>(*n);
  }
  if (tenant.auth != AuthProvider::kFile) {
    // The cache keeps popgate's own verdicts; the backend's are not
    // cached. Only "off" may be said explicitly.
    for (std::string_view key : kAuthCacheKeys) {
      const toml::node* v = t.get(key);
      if (v == nullptr) continue;
      const toml::value<int64_t>* size = v->as_integer();
      if (key == "auth_cache_size" && size != nullptr && size->get() == 0) {
        continue;
      }
      return f.Error(
          LineOf(*v),
          absl::StrCat(Quote(key), " is used only with auth = \"file\" ",
                       "(tenant ", Quote(tenant.spec.name),
                       " has auth = \"backend\" on line ", auth_line, ")"));
    }
    tenant.auth_cache_size = 0;
    return absl::OkStatus();
  }
  if (const toml::node* v = t.get("auth_cache_size")) {
    absl::StatusOr<int64_t> n = f.GetInt(*v, "auth_cache_size", 0, 10000000);
    if (!n.ok()) return n.status();
    tenant.auth_cache_size = static_cast<int>(*n);
  }
  // Zero: that kind of verdict is not cached.
  if (const toml::node* v = t.get("auth_cache_ttl")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "auth_cache_ttl", true);
    if (!d.ok()) return d.status();
    tenant.auth_cache_ttl = *d;
  }
  if (const toml::node* v = t.get("auth_cache_negative_ttl")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "auth_cache_negative_ttl", true);
    if (!d.ok()) return d.status();
    tenant.auth_cache_negative_ttl = *d;
  }
  return absl::OkStatus();
}

absl::Status ParseTenant(const Fields& f, const toml::table& t,
                         TenantConfig& tenant, Seen& seen) {
  if (absl::Status s = f.CheckKeys(t,
                                   {"name",
                                    "domains",
                                    "username",
                                    "auth",
                                    "passwd_file",
                                    "backends",
                                    "sni_names",
                                    "certificates",
                                    "backend_tls",
                                    "failover",
                                    "client_identity",
                                    "backend_login",
                                    "master_user",
                                    "master_password_file",
                                    "master_login",
                                    "master_separator",
                                    "capabilities",
                                    "health_check",
                                    "max_sessions",
                                    "auth_cache_size",
                                    "auth_cache_ttl",
                                    "auth_cache_negative_ttl"},
                                   "in [[tenant]]");
      !s.ok()) {
    return s;
  }
  routing::TenantSpec& spec = tenant.spec;
  const toml::node* name = t.get("name");
  if (name == nullptr) return f.Error(LineOf(t), "[[tenant]] without 'name'");
  absl::StatusOr<std::string> n = f.GetString(*name, "name");
  if (!n.ok()) return n.status();
  if (!IsValidTenantName(*n)) {
    return f.Error(LineOf(*name),
                   absl::StrCat("tenant name ", Quote(*n), " must be 1..",
                                kMaxTenantName, " characters of [a-z0-9._-]"));
  }
  if (!seen.tenants.insert(*n).second) {
    return f.Error(LineOf(*name),
                   absl::StrCat("duplicate tenant name ", Quote(*n)));
  }
  spec.name = *std::move(n);

  tenant.line = LineOf(t);
  tenant.domains_line = LineOf(t);
  if (const toml::node* domains = t.get("domains")) {
    tenant.domains_line = LineOf(*domains);
    const toml::array* array = domains->as_array();
    if (array == nullptr) {
      return f.WrongType(*domains, "domains", "an array of strings");
    }
    for (const toml::node& d : *array) {
      absl::StatusOr<std::string> domain = f.GetString(d, "domains[]");
      if (!domain.ok()) return domain.status();
      absl::AsciiStrToLower(&*domain);
      if (!IsValidDomain(*domain)) {
        return f.Error(LineOf(d),
                       absl::StrCat("invalid domain ", Quote(*domain)));
      }
      // Checked here rather than left to RoutingTable::Build so the error
      // points at the offending entry.
      auto [it, inserted] = seen.domain_owner.emplace(*domain, spec.name);
      if (!inserted) {
        return f.Error(LineOf(d), absl::StrCat("domain ", Quote(*domain),
                                               " already belongs to tenant ",
                                               Quote(it->second)));
      }
      spec.domains.push_back(*std::move(domain));
    }
  }

  if (const toml::node* v = t.get("username")) {
    absl::StatusOr<std::string> mode = f.GetString(*v, "username");
    if (!mode.ok()) return mode.status();
    if (*mode == "full") {
      spec.username_mode = routing::UsernameMode::kFull;
    } else if (*mode == "strip-domain") {
      spec.username_mode = routing::UsernameMode::kStripDomain;
    } else {
      return f.Error(LineOf(*v),
                     "'username' must be \"full\" or "
                     "\"strip-domain\"");
    }
  }
  Line auth_line = LineOf(t);
  if (const toml::node* v = t.get("auth")) {
    auth_line = LineOf(*v);
    absl::StatusOr<std::string> auth = f.GetString(*v, "auth");
    if (!auth.ok()) return auth.status();
    if (*auth == "file") {
      tenant.auth = AuthProvider::kFile;
    } else if (*auth == "backend") {
      tenant.auth = AuthProvider::kBackend;
    } else {
      return f.Error(LineOf(*v), "'auth' must be \"file\" or \"backend\"");
    }
  }
  const toml::node* passwd = t.get("passwd_file");
  if (tenant.auth == AuthProvider::kFile) {
    if (passwd == nullptr) {
      return f.Error(LineOf(t), absl::StrCat("tenant ", Quote(spec.name),
                                             " has auth = \"file\" but no "
                                             "'passwd_file'"));
    }
    absl::StatusOr<std::string> file = f.GetPath(*passwd, "passwd_file");
    if (!file.ok()) return file.status();
    tenant.passwd_file = *std::move(file);
    tenant.passwd_file_line = LineOf(*passwd);
  } else if (passwd != nullptr) {
    // Silently ignoring it would hide that the file is not being used.
    return f.Error(
        LineOf(*passwd),
        absl::StrCat("'passwd_file' is only used with auth = "
                     "\"file\" (tenant ",
                     Quote(spec.name), " has auth on line ", auth_line, ")"));
  }

  if (const toml::node* v = t.get("sni_names")) {
    const toml::array* array = v->as_array();
    if (array == nullptr) {
      return f.WrongType(*v, "sni_names", "an array of strings");
    }
    for (const toml::node& n : *array) {
      absl::StatusOr<std::string> name = f.GetString(n, "sni_names[]");
      if (!name.ok()) return name.status();
      absl::AsciiStrToLower(&*name);
      std::string_view bare = *name;
      if (bare.starts_with("*.")) bare.remove_prefix(2);
      if (!IsValidDomain(bare)) {
        return f.Error(LineOf(n),
                       absl::StrCat("invalid TLS name ", Quote(*name)));
      }
      tenant.sni_names.push_back(*std::move(name));
    }
  } else {
    for (const std::string& d : spec.domains) {
      tenant.sni_names.push_back(d);
      tenant.sni_names.push_back("*." + d);
    }
  }
  if (const toml::node* v = t.get("certificates")) {
    absl::StatusOr<std::vector<CertKeyConfig>> certs = GetCertificates(f, *v);
    if (!certs.ok()) return certs.status();
    tenant.certificates = *std::move(certs);
  }
  if (const toml::node* v = t.get("backend_tls")) {
    if (absl::Status s = ParseBackendTls(f, *v, tenant); !s.ok()) return s;
  }
  if (absl::Status s = ParsePoolSettings(f, t, tenant, auth_line); !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseTenantLimits(f, t, tenant, auth_line); !s.ok()) {
    return s;
  }

  const toml::node* backends = t.get("backends");
  if (backends == nullptr) {
    return f.Error(LineOf(t), absl::StrCat("tenant ", Quote(spec.name),
                                           " has no 'backends'"));
  }
  return ParseBackends(f, *backends, tenant);
}

// proxy_protocol and proxy_trusted_networks of one [[listener]].
absl::Status ParseProxyProtocol(const Fields& f, const toml::table& l,
                                ListenerConfig& listener) {
  const toml::node* on = l.get("proxy_protocol");
  const toml::node* nets = l.get("proxy_trusted_networks");
  if (on != nullptr) {
    absl::StatusOr<bool> b = f.GetBool(*on, "proxy_protocol");
    if (!b.ok()) return b.status();
    listener.proxy_protocol = *b;
  }
  if (!listener.proxy_protocol) {
    if (nets != nullptr) {
      // Silently ignoring it would hide that no header is read.
      return f.Error(LineOf(*nets),
                     "'proxy_trusted_networks' is used only with "
                     "proxy_protocol = true");
    }
    return absl::OkStatus();
  }
  // Without it anyone could claim any client address.
  if (nets == nullptr) {
    return f.Error(LineOf(*on),
                   "proxy_protocol = true needs 'proxy_trusted_networks' "
                   "(the load balancers' addresses, e.g. [\"10.0.0.0/24\"])");
  }
  absl::StatusOr<std::vector<std::string>> list =
      GetNetworks(f, *nets, "proxy_trusted_networks");
  if (!list.ok()) return list.status();
  if (list->empty()) {
    return f.Error(LineOf(*nets),
                   "'proxy_trusted_networks' must name at least one network "
                   "(the load balancers' addresses)");
  }
  listener.proxy_trusted_networks = *std::move(list);
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseSections(const Fields& f, const toml::table& root,
                           Config& config) {
  if (absl::Status s =
          f.CheckKeys(root,
                      {"server", "tls", "limits", "admin", "log",
                       "listener", "tenant"},
                      "at top level");
      !s.ok()) {
    return s;
  }
  if (const toml::node* server = root.get("server")) {
    if (absl::Status s = ParseServer(f, *server, config.server); !s.ok()) {
      return s;
    }
  }
  if (const toml::node* tls = root.get("tls")) {
    if (absl::Status s = ParseTls(f, *tls, config.tls); !s.ok()) return s;
  }
  if (const toml::node* limits = root.get("limits")) {
    if (absl::Status s = ParseLimits(f, *limits, config.limits); !s.ok()) {
      return s;
    }
  }
  if (const toml::node* admin = root.get("admin")) {
    if (absl::Status s = ParseAdmin(f, *admin, config.admin); !s.ok()) return s;
  }
  if (const toml::node* log = root.get("log")) {
    if (absl::Status s = ParseLog(f, *log, config.log); !s.ok()) return s;
  }
  if (absl::Status s = ParseTenants(f, root, config); !s.ok()) return s;
  return ParseListeners(f, root, config);
}

// `user`, `group`, `allow_root`: who the workers run as (the names are
// looked up at start, not here, so a config can be checked elsewhere).
static absl::Status ParseServerIdentity(const Fields& f, const toml::table& t,
                                        ServerConfig& server) {
  server.user_line = LineOf(t);
  for (auto [key, out] :
       {std::pair{"user", &server.user}, std::pair{"group", &server.group}}) {
    const toml::node* v = t.get(key);
    if (v == nullptr) continue;
    absl::StatusOr<std::string> name = f.GetString(*v, key);
    if (!name.ok()) return name.status();
    const bool bad_char = std::any_of(name->begin(), name->end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == ':' || c == '/';
    });
    if (name->empty() || name->size() > 255 || bad_char) {
      return f.Error(LineOf(*v),
                     absl::StrCat("'", key,
                                  "' must be a user or group name (1..255 "
                                  "bytes, no ':', '/' or control characters)"));
    }
    if (std::string_view(key) == "user") server.user_line = LineOf(*v);
    *out = *std::move(name);
  }
  if (!server.group.empty() && server.user.empty()) {
    return f.Error(LineOf(*t.get("group")),
                   "'group' needs 'user' (the group popgate switches to "
                   "with it); set user too, or remove group");
  }
  if (const toml::node* v = t.get("allow_root")) {
    absl::StatusOr<bool> b = f.GetBool(*v, "allow_root");
    if (!b.ok()) return b.status();
    server.allow_root = *b;
  }
  return absl::OkStatus();
}

absl::Status ParseServer(const Fields& f, const toml::node& node,
                         ServerConfig& server) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "server");
  if (!table.ok()) return table.status();
  if (absl::Status s = f.CheckKeys(
          **table,
          {"workers", "auth_threads", "max_auth_failures",
           "preauth_idle_timeout", "backend_timeout", "auth_failure_delay",
           "shutdown_grace", "greeting", "forward_idle_timeout",
           "backend_auth_timeout", "login_timeout", "max_preauth_commands",
           "auth_queue_limit", "takeover_listeners", "forward_socket_buffer",
           "client_drain_timeout", "proxy_protocol_timeout", "user", "group",
           "allow_root", "handover_socket", "backend_pipelining"},
          "in [server]");
      !s.ok()) {
    return s;
  }
  struct IntField {
    std::string_view key;
    int* out;
    int64_t lo, hi;
  };
  for (const IntField& field :
       {IntField{"workers", &server.workers, 0, 1024},
        IntField{"auth_threads", &server.auth_threads, 1, 256},
        IntField{"max_auth_failures", &server.max_auth_failures, 1, 100},
        IntField{"max_preauth_commands", &server.max_preauth_commands, 1,
                 10000},
        IntField{"auth_queue_limit", &server.auth_queue_limit, 1, 1 << 20},
        // 0 = leave the kernel's autotuning; otherwise at least a few
        // segments, at most what SO_SNDBUF/SO_RCVBUF can take (int).
        IntField{"forward_socket_buffer", &server.forward_socket_buffer, 0,
                 1 << 30}}) {
    const toml::node* v = (*table)->get(field.key);
    if (v == nullptr) continue;
    absl::StatusOr<int64_t> n = f.GetInt(*v, field.key, field.lo, field.hi);
    if (!n.ok()) return n.status();
    *field.out = static_cast<int>(*n);
  }
  struct DurationField {
    std::string_view key;
    absl::Duration* out;
    bool allow_zero;
  };
  for (const DurationField& field :
       {DurationField{"preauth_idle_timeout", &server.preauth_idle_timeout,
                      false},
        DurationField{"backend_timeout", &server.backend_timeout, false},
        DurationField{"forward_idle_timeout", &server.forward_idle_timeout,
                      false},
        DurationField{"backend_auth_timeout", &server.backend_auth_timeout,
                      false},
        DurationField{"login_timeout", &server.login_timeout, false},
        DurationField{"client_drain_timeout", &server.client_drain_timeout,
                      false},
        DurationField{"proxy_protocol_timeout", &server.proxy_protocol_timeout,
                      false},
        // Zero turns the throttle off (tests, trusted networks).
        DurationField{"auth_failure_delay", &server.auth_failure_delay, true},
        DurationField{"shutdown_grace", &server.shutdown_grace, true}}) {
    const toml::node* v = (*table)->get(field.key);
    if (v == nullptr) continue;
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, field.key, field.allow_zero);
    if (!d.ok()) return d.status();
    *field.out = *d;
  }
  if (const toml::node* v = (*table)->get("greeting")) {
    absl::StatusOr<std::string> greeting = f.GetString(*v, "greeting");
    if (!greeting.ok()) return greeting.status();
    // CR/LF would let the greeting forge extra protocol lines.
    for (char c : *greeting) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return f.Error(LineOf(*v),
                       "'greeting' must not contain CR, LF or other control "
                       "characters");
      }
    }
    if (greeting->size() > kMaxGreeting) {
      return f.Error(LineOf(*v), absl::StrCat("'greeting' is longer than ",
                                              kMaxGreeting, " octets"));
    }
    server.greeting = *std::move(greeting);
  }
  for (auto [key, out] :
       {std::pair{"takeover_listeners", &server.takeover_listeners},
        std::pair{"backend_pipelining", &server.backend_pipelining}}) {
    const toml::node* v = (*table)->get(key);
    if (v == nullptr) continue;
    absl::StatusOr<bool> b = f.GetBool(*v, key);
    if (!b.ok()) return b.status();
    *out = *b;
  }
  if (const toml::node* v = (*table)->get("handover_socket")) {
    absl::StatusOr<std::string> path = f.GetString(*v, "handover_socket");
    if (!path.ok()) return path.status();
    if (!path->empty()) {
      path = f.GetPath(*v, "handover_socket");
      if (!path.ok()) return path.status();
    }
    // sockaddr_un's sun_path (108 bytes with the NUL); a ".<pid>" suffix
    // is added while the socket is being set up.
    if (path->size() > 90) {
      return f.Error(LineOf(*v),
                     "'handover_socket' must be a path of at most 90 bytes "
                     "(a unix socket's limit); use a shorter directory, e.g. "
                     "/run/popgate/handover.sock");
    }
    server.handover_socket = *std::move(path);
    server.handover_socket_line = LineOf(*v);
  }
  if (absl::Status s = ParseServerIdentity(f, **table, server); !s.ok()) {
    return s;
  }
  if (server.forward_socket_buffer != 0 &&
      server.forward_socket_buffer < 4096) {
    return f.Error(LineOf(*(*table)->get("forward_socket_buffer")),
                   "'forward_socket_buffer' must be 0 (kernel autotuning) or "
                   "at least 4096 bytes");
  }
  return absl::OkStatus();
}

absl::Status ParseTls(const Fields& f, const toml::node& node, TlsConfig& tls) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "tls");
  if (!table.ok()) return table.status();
  if (absl::Status s = f.CheckKeys(
          **table,
          {"session_tickets", "ticket_key_rotation", "ticket_key_file",
           "handshake_timeout", "trusted_networks", "ktls"},
          "in [tls]");
      !s.ok()) {
    return s;
  }
  const toml::table& t = **table;
  if (const toml::node* v = t.get("session_tickets")) {
    absl::StatusOr<bool> b = f.GetBool(*v, "session_tickets");
    if (!b.ok()) return b.status();
    tls.session_tickets = *b;
  }
  if (const toml::node* v = t.get("ktls")) {
    absl::StatusOr<bool> b = f.GetBool(*v, "ktls");
    if (!b.ok()) return b.status();
    tls.ktls = *b;
  }
  if (const toml::node* v = t.get("ticket_key_rotation")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "ticket_key_rotation", false);
    if (!d.ok()) return d.status();
    tls.ticket_key_rotation = *d;
  }
  if (const toml::node* v = t.get("handshake_timeout")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "handshake_timeout", false);
    if (!d.ok()) return d.status();
    tls.handshake_timeout = *d;
  }
  if (const toml::node* v = t.get("ticket_key_file")) {
    absl::StatusOr<std::string> p = f.GetPath(*v, "ticket_key_file");
    if (!p.ok()) return p.status();
    tls.ticket_key_file = *std::move(p);
    tls.ticket_key_file_line = LineOf(*v);
  }
  if (const toml::node* v = t.get("trusted_networks")) {
    const toml::array* array = v->as_array();
    if (array == nullptr) {
      return f.WrongType(*v, "trusted_networks", "an array of strings");
    }
    tls.trusted_networks.clear();
    for (const toml::node& n : *array) {
      absl::StatusOr<std::string> net = f.GetString(n, "trusted_networks[]");
      if (!net.ok()) return net.status();
      // The same parser as the running server's (net/cidr_set), so what
      // passes here is what gets trusted.
      if (absl::Status s = CidrSet::Validate(*net); !s.ok()) {
        return f.Error(LineOf(n), S(s.message()));
      }
      tls.trusted_networks.push_back(*std::move(net));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseTenants(const Fields& f, const toml::table& root,
                          Config& config) {
  const toml::node* node = root.get("tenant");
  if (node == nullptr) {
    return f.Error(LineOf(root), "at least one [[tenant]] is required");
  }
  absl::StatusOr<std::vector<const toml::table*>> tenants =
      f.GetTableArray(*node, "tenant");
  if (!tenants.ok()) return tenants.status();
  if (tenants->empty()) {
    return f.Error(LineOf(*node), "at least one [[tenant]] is required");
  }
  Seen seen;
  for (const toml::table* t : *tenants) {
    TenantConfig tenant;
    if (absl::Status s = ParseTenant(f, *t, tenant, seen); !s.ok()) return s;
    config.tenants.push_back(std::move(tenant));
  }
  return absl::OkStatus();
}

absl::Status ParseListeners(const Fields& f, const toml::table& root,
                            Config& config) {
  const toml::node* node = root.get("listener");
  if (node == nullptr) {
    return f.Error(LineOf(root), "at least one [[listener]] is required");
  }
  absl::StatusOr<std::vector<const toml::table*>> listeners =
      f.GetTableArray(*node, "listener");
  if (!listeners.ok()) return listeners.status();
  if (listeners->empty()) {
    return f.Error(LineOf(*node), "at least one [[listener]] is required");
  }
  for (const toml::table* l : *listeners) {
    if (absl::Status s =
            f.CheckKeys(*l,
                        {"address", "default_tenant", "tls", "certificates",
                         "plaintext_auth", "ipv6_only", "proxy_protocol",
                         "proxy_trusted_networks"},
                        "in [[listener]]");
        !s.ok()) {
      return s;
    }
    ListenerConfig listener;
    listener.line = LineOf(*l);
    const toml::node* address = l->get("address");
    if (address == nullptr) {
      return f.Error(LineOf(*l), "[[listener]] without 'address'");
    }
    absl::StatusOr<std::string> a = f.GetString(*address, "address");
    if (!a.ok()) return a.status();
    if (absl::Status s = ValidateHostPort(*a); !s.ok()) {
      return f.Error(LineOf(*address), S(s.message()));
    }
    // Two listeners on one address would fail at bind time, long after
    // --check-config said the file was fine.
    for (const ListenerConfig& other : config.listeners) {
      if (other.address == *a) {
        return f.Error(
            LineOf(*address),
            absl::StrCat("listener address ", Quote(*a), " used twice"));
      }
    }
    listener.address = *std::move(a);
    listener.address_line = LineOf(*address);
    if (const toml::node* d = l->get("default_tenant")) {
      absl::StatusOr<std::string> name = f.GetString(*d, "default_tenant");
      if (!name.ok()) return name.status();
      bool defined = false;
      for (const TenantConfig& t : config.tenants) {
        defined = defined || t.spec.name == *name;
      }
      if (!defined) {
        return f.Error(LineOf(*d), absl::StrCat("default_tenant ", Quote(*name),
                                                " is not a defined tenant"));
      }
      listener.default_tenant = *std::move(name);
    }
    if (const toml::node* v = l->get("tls")) {
      absl::StatusOr<std::string> mode = f.GetString(*v, "tls");
      if (!mode.ok()) return mode.status();
      if (*mode == "none") {
        listener.tls = ListenerTls::kNone;
      } else if (*mode == "starttls") {
        listener.tls = ListenerTls::kStartTls;
      } else if (*mode == "implicit") {
        listener.tls = ListenerTls::kImplicit;
      } else {
        return f.Error(LineOf(*v),
                       "'tls' must be \"none\", \"starttls\" "
                       "or \"implicit\"");
      }
    }
    if (const toml::node* v = l->get("certificates")) {
      absl::StatusOr<std::vector<CertKeyConfig>> certs = GetCertificates(f, *v);
      if (!certs.ok()) return certs.status();
      listener.certificates = *std::move(certs);
    }
    if (listener.tls != ListenerTls::kNone && listener.certificates.empty()) {
      return f.Error(LineOf(*l),
                     "a TLS listener needs 'certificates' (served "
                     "when no tenant's name matches the SNI)");
    }
    if (const toml::node* v = l->get("plaintext_auth")) {
      absl::StatusOr<std::string> p = f.GetString(*v, "plaintext_auth");
      if (!p.ok()) return p.status();
      if (*p == "trusted") {
        listener.plaintext_auth = PlaintextAuth::kTrusted;
      } else if (*p == "always") {
        listener.plaintext_auth = PlaintextAuth::kAlways;
      } else if (*p == "never") {
        listener.plaintext_auth = PlaintextAuth::kNever;
      } else {
        return f.Error(LineOf(*v),
                       "'plaintext_auth' must be \"trusted\", "
                       "\"always\" or \"never\"");
      }
    }
    if (const toml::node* v = l->get("ipv6_only")) {
      absl::StatusOr<bool> b = f.GetBool(*v, "ipv6_only");
      if (!b.ok()) return b.status();
      listener.ipv6_only = *b;
      // Silently ignoring it would hide that it has no effect.
      if (listener.address.front() != '[' && *b) {
        absl::StatusOr<HostPort> hp = ParseHostPort(listener.address);
        if (hp.ok() && hp->family == AF_INET) {
          return f.Error(
              LineOf(*v),
              "'ipv6_only' applies to IPv6 listeners (\"[::]:port\") "
              "only");
        }
      }
    }
    if (absl::Status s = ParseProxyProtocol(f, *l, listener); !s.ok()) {
      return s;
    }
    config.listeners.push_back(std::move(listener));
  }
  return absl::OkStatus();
}

}  // namespace popgate::config_internal
