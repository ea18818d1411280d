#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "routing/routing_table.h"

// Debian's libtomlplusplus3 is the compiled build with exceptions on (only
// the toml::v3::ex ABI is exported), so TOML_EXCEPTIONS must stay at its
// default here or the link fails; parse errors are caught below.
#include <toml++/toml.h>

namespace popgate {
namespace {

using Line = uint32_t;

// Debian's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so views cross between the two explicitly.
absl::string_view A(std::string_view s) { return {s.data(), s.size()}; }
std::string_view S(absl::string_view s) { return {s.data(), s.size()}; }

// A config file is small; anything this large is a mistake (or /dev/zero).
constexpr off_t kMaxConfigBytes = 16 << 20;
constexpr size_t kMaxGreeting = 400;  // leaves room in a 512-octet line
constexpr size_t kMaxTenantName = 128;
constexpr absl::Duration kMaxDuration = absl::Hours(24);

Line LineOf(const toml::source_region& region) {
  // Nodes built without a source (the root table) report line 0; line 1 is
  // the most useful place to point at then.
  return region.begin.line == 0 ? 1 : region.begin.line;
}
Line LineOf(const toml::node& node) { return LineOf(node.source()); }

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Keys can be any quoted string in TOML; escape them before they reach a
// terminal or a log line.
std::string Quote(std::string_view s) {
  return absl::StrCat("'", absl::CHexEscape(A(s)), "'");
}

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

// Lowercase DNS-style name; '_' tolerated because internal mail domains use
// it, and Canonicalize() accepts it in a username's domain.
// "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128).
bool IsValidCidr(std::string_view cidr) {
  std::string text(cidr);
  size_t slash = text.find('/');
  std::string addr = text.substr(0, slash);
  int max_bits = 0;
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    max_bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    max_bits = 128;
  } else {
    return false;
  }
  if (slash == std::string::npos) return true;
  std::string bits = text.substr(slash + 1);
  if (bits.empty() || bits.size() > 3) return false;
  int n = 0;
  for (char c : bits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  return n <= max_bits;
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

class Parser {
 public:
  Parser(std::string_view name, std::string_view base_dir)
      : name_(name), base_dir_(base_dir) {}

  absl::StatusOr<Config> Parse(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, name_);
    } catch (const toml::parse_error& e) {
      return Error(LineOf(e.source()), e.description());
    }
    Config config;
    config.path = std::string(name_);

    if (absl::Status s = CheckKeys(
            root, {"server", "tls", "listener", "tenant"}, "at top level");
        !s.ok()) {
      return s;
    }
    if (const toml::node* server = root.get("server")) {
      if (absl::Status s = ParseServer(*server, config.server); !s.ok()) {
        return s;
      }
    }
    if (const toml::node* tls = root.get("tls")) {
      if (absl::Status s = ParseTls(*tls, config.tls); !s.ok()) return s;
    }
    if (absl::Status s = ParseTenants(root, config); !s.ok()) return s;
    if (absl::Status s = ParseListeners(root, config); !s.ok()) return s;
    if (absl::Status s = CrossCheck(config); !s.ok()) return s;
    return config;
  }

 private:
  absl::Status Error(Line line, std::string_view reason) const {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ":", line, ": ", A(reason)));
  }

  absl::Status WrongType(const toml::node& node, std::string_view key,
                         std::string_view expected) const {
    return Error(LineOf(node),
                 absl::StrCat(Quote(key), " must be ", A(expected), ", not ",
                              A(TypeName(node))));
  }

  absl::Status CheckKeys(const toml::table& table,
                         std::initializer_list<std::string_view> allowed,
                         std::string_view where) const {
    for (auto&& [key, value] : table) {
      bool known = false;
      for (std::string_view k : allowed) known = known || key.str() == k;
      if (!known) {
        return Error(
            LineOf(key.source()),
            absl::StrCat("unknown key ", Quote(key.str()), " ", A(where)));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<const toml::table*> GetTable(const toml::node& node,
                                              std::string_view key) const {
    const toml::table* table = node.as_table();
    if (table == nullptr) return WrongType(node, key, "a table");
    return table;
  }

  absl::StatusOr<std::string> GetString(const toml::node& node,
                                        std::string_view key) const {
    const toml::value<std::string>* v = node.as_string();
    if (v == nullptr) return WrongType(node, key, "a string");
    return v->get();
  }

  absl::StatusOr<int64_t> GetInt(const toml::node& node, std::string_view key,
                                 int64_t lo, int64_t hi) const {
    const toml::value<int64_t>* v = node.as_integer();
    if (v == nullptr) return WrongType(node, key, "an integer");
    if (v->get() < lo || v->get() > hi) {
      return Error(LineOf(node), absl::StrCat(Quote(key), " must be in ", lo,
                                              "..", hi, ", not ", v->get()));
    }
    return v->get();
  }

  // "500ms", "10s", "5m", "1h" (any absl::ParseDuration form, e.g. "1m30s"),
  // or an integer number of seconds.
  absl::StatusOr<absl::Duration> GetDuration(const toml::node& node,
                                             std::string_view key,
                                             bool allow_zero) const {
    absl::Duration d;
    if (const toml::value<int64_t>* v = node.as_integer()) {
      if (v->get() < 0 || v->get() > absl::ToInt64Seconds(kMaxDuration)) {
        return Error(LineOf(node),
                     absl::StrCat(Quote(key), " must be 0..",
                                  absl::FormatDuration(kMaxDuration)));
      }
      d = absl::Seconds(v->get());
    } else if (const toml::value<std::string>* s = node.as_string()) {
      const std::string& text = s->get();
      // ParseDuration also takes signs and "inf"; neither is a timeout.
      if (text.empty() || text[0] == '-' || text[0] == '+' ||
          !absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
        return Error(LineOf(node),
                     absl::StrCat(Quote(key), ": bad duration ", Quote(text),
                                  " (expected e.g. \"500ms\", \"10s\", "
                                  "\"5m\", \"1h\")"));
      }
      if (d > kMaxDuration) {
        return Error(LineOf(node),
                     absl::StrCat(Quote(key), " must be at most ",
                                  absl::FormatDuration(kMaxDuration)));
      }
    } else {
      return WrongType(node, key, "a duration string such as \"10s\"");
    }
    if (!allow_zero && d == absl::ZeroDuration()) {
      return Error(LineOf(node), absl::StrCat(Quote(key), " must be > 0"));
    }
    return d;
  }

  absl::Status ParseServer(const toml::node& node, ServerConfig& server) {
    absl::StatusOr<const toml::table*> table = GetTable(node, "server");
    if (!table.ok()) return table.status();
    if (absl::Status s = CheckKeys(
            **table,
            {"workers", "auth_threads", "max_auth_failures",
             "preauth_idle_timeout", "backend_timeout", "auth_failure_delay",
             "shutdown_grace", "greeting", "forward_idle_timeout",
             "backend_auth_timeout", "login_timeout", "max_preauth_commands",
             "auth_queue_limit", "takeover_listeners", "forward_socket_buffer",
             "client_drain_timeout"},
            "in [server]");
        !s.ok()) {
      return s;
    }
    struct IntField {
      std::string_view key;
      int* out;
      int64_t lo, hi;
    };
    for (const IntField& f :
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
      const toml::node* v = (*table)->get(f.key);
      if (v == nullptr) continue;
      absl::StatusOr<int64_t> n = GetInt(*v, f.key, f.lo, f.hi);
      if (!n.ok()) return n.status();
      *f.out = static_cast<int>(*n);
    }
    struct DurationField {
      std::string_view key;
      absl::Duration* out;
      bool allow_zero;
    };
    for (const DurationField& f :
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
          // Zero turns the throttle off (tests, trusted networks).
          DurationField{"auth_failure_delay", &server.auth_failure_delay, true},
          DurationField{"shutdown_grace", &server.shutdown_grace, true}}) {
      const toml::node* v = (*table)->get(f.key);
      if (v == nullptr) continue;
      absl::StatusOr<absl::Duration> d = GetDuration(*v, f.key, f.allow_zero);
      if (!d.ok()) return d.status();
      *f.out = *d;
    }
    if (const toml::node* v = (*table)->get("greeting")) {
      absl::StatusOr<std::string> greeting = GetString(*v, "greeting");
      if (!greeting.ok()) return greeting.status();
      // CR/LF would let the greeting forge extra protocol lines.
      for (char c : *greeting) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          return Error(LineOf(*v),
                       "'greeting' must not contain CR, LF or other control "
                       "characters");
        }
      }
      if (greeting->size() > kMaxGreeting) {
        return Error(LineOf(*v), absl::StrCat("'greeting' is longer than ",
                                              kMaxGreeting, " octets"));
      }
      server.greeting = *std::move(greeting);
    }
    if (const toml::node* v = (*table)->get("takeover_listeners")) {
      absl::StatusOr<bool> b = GetBool(*v, "takeover_listeners");
      if (!b.ok()) return b.status();
      server.takeover_listeners = *b;
    }
    if (server.forward_socket_buffer != 0 &&
        server.forward_socket_buffer < 4096) {
      return Error(LineOf(*(*table)->get("forward_socket_buffer")),
                   "'forward_socket_buffer' must be 0 (kernel autotuning) or "
                   "at least 4096 bytes");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> GetBool(const toml::node& node,
                               std::string_view key) const {
    const toml::value<bool>* v = node.as_boolean();
    if (v == nullptr) return WrongType(node, key, "a boolean");
    return v->get();
  }

  std::string ResolvePath(const std::string& file) const {
    std::filesystem::path p(file);
    if (p.is_relative() && !base_dir_.empty()) {
      p = std::filesystem::path(base_dir_) / p;
    }
    return p.lexically_normal().string();
  }

  absl::StatusOr<std::string> GetPath(const toml::node& node,
                                      std::string_view key) const {
    absl::StatusOr<std::string> file = GetString(node, key);
    if (!file.ok()) return file.status();
    if (file->empty() || file->find('\0') != std::string::npos) {
      return Error(LineOf(node), absl::StrCat(Quote(key), " must be a path"));
    }
    return ResolvePath(*file);
  }

  // [{ cert = "a.pem", key = "a.key" }, ...]
  absl::StatusOr<std::vector<CertKeyConfig>> GetCertificates(
      const toml::node& node) const {
    absl::StatusOr<std::vector<const toml::table*>> tables =
        GetTableArray(node, "certificates");
    if (!tables.ok()) return tables.status();
    std::vector<CertKeyConfig> out;
    for (const toml::table* t : *tables) {
      if (absl::Status s = CheckKeys(*t, {"cert", "key"}, "in certificates");
          !s.ok()) {
        return s;
      }
      const toml::node* cert = t->get("cert");
      const toml::node* key = t->get("key");
      if (cert == nullptr || key == nullptr) {
        return Error(LineOf(*t), "a certificate needs 'cert' and 'key'");
      }
      absl::StatusOr<std::string> c = GetPath(*cert, "cert");
      if (!c.ok()) return c.status();
      absl::StatusOr<std::string> k = GetPath(*key, "key");
      if (!k.ok()) return k.status();
      out.push_back({*std::move(c), *std::move(k)});
    }
    return out;
  }

  absl::Status ParseTls(const toml::node& node, TlsConfig& tls) {
    absl::StatusOr<const toml::table*> table = GetTable(node, "tls");
    if (!table.ok()) return table.status();
    if (absl::Status s = CheckKeys(
            **table,
            {"session_tickets", "ticket_key_rotation", "ticket_key_file",
             "handshake_timeout", "trusted_networks", "ktls"},
            "in [tls]");
        !s.ok()) {
      return s;
    }
    const toml::table& t = **table;
    if (const toml::node* v = t.get("session_tickets")) {
      absl::StatusOr<bool> b = GetBool(*v, "session_tickets");
      if (!b.ok()) return b.status();
      tls.session_tickets = *b;
    }
    if (const toml::node* v = t.get("ktls")) {
      absl::StatusOr<bool> b = GetBool(*v, "ktls");
      if (!b.ok()) return b.status();
      tls.ktls = *b;
    }
    if (const toml::node* v = t.get("ticket_key_rotation")) {
      absl::StatusOr<absl::Duration> d =
          GetDuration(*v, "ticket_key_rotation", false);
      if (!d.ok()) return d.status();
      tls.ticket_key_rotation = *d;
    }
    if (const toml::node* v = t.get("handshake_timeout")) {
      absl::StatusOr<absl::Duration> d =
          GetDuration(*v, "handshake_timeout", false);
      if (!d.ok()) return d.status();
      tls.handshake_timeout = *d;
    }
    if (const toml::node* v = t.get("ticket_key_file")) {
      absl::StatusOr<std::string> p = GetPath(*v, "ticket_key_file");
      if (!p.ok()) return p.status();
      tls.ticket_key_file = *std::move(p);
    }
    if (const toml::node* v = t.get("trusted_networks")) {
      const toml::array* array = v->as_array();
      if (array == nullptr) {
        return WrongType(*v, "trusted_networks", "an array of strings");
      }
      tls.trusted_networks.clear();
      for (const toml::node& n : *array) {
        absl::StatusOr<std::string> net = GetString(n, "trusted_networks[]");
        if (!net.ok()) return net.status();
        if (!IsValidCidr(*net)) {
          return Error(LineOf(n), absl::StrCat("bad network ", Quote(*net),
                                               " (want e.g. \"10.0.0.0/8\")"));
        }
        tls.trusted_networks.push_back(*std::move(net));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseBackendTls(const toml::node& node, TenantConfig& tenant) {
    absl::StatusOr<const toml::table*> table = GetTable(node, "backend_tls");
    if (!table.ok()) return table.status();
    if (absl::Status s = CheckKeys(
            **table,
            {"mode", "verify", "ca_file", "name", "client_cert", "client_key"},
            "in backend_tls");
        !s.ok()) {
      return s;
    }
    const toml::table& t = **table;
    BackendTlsConfig& b = tenant.backend_tls;
    if (const toml::node* v = t.get("mode")) {
      absl::StatusOr<std::string> mode = GetString(*v, "mode");
      if (!mode.ok()) return mode.status();
      if (*mode == "none") {
        b.mode = BackendTls::kNone;
      } else if (*mode == "starttls") {
        b.mode = BackendTls::kStartTls;
      } else if (*mode == "implicit") {
        b.mode = BackendTls::kImplicit;
      } else {
        return Error(LineOf(*v),
                     "backend_tls 'mode' must be \"none\", "
                     "\"starttls\" or \"implicit\"");
      }
    }
    if (const toml::node* v = t.get("verify")) {
      absl::StatusOr<bool> verify = GetBool(*v, "verify");
      if (!verify.ok()) return verify.status();
      b.verify = *verify;
    }
    if (const toml::node* v = t.get("ca_file")) {
      absl::StatusOr<std::string> p = GetPath(*v, "ca_file");
      if (!p.ok()) return p.status();
      b.ca_file = *std::move(p);
    }
    if (const toml::node* v = t.get("name")) {
      absl::StatusOr<std::string> name = GetString(*v, "name");
      if (!name.ok()) return name.status();
      b.name = *std::move(name);
    }
    const toml::node* cc = t.get("client_cert");
    const toml::node* ck = t.get("client_key");
    if ((cc == nullptr) != (ck == nullptr)) {
      return Error(LineOf(t),
                   "backend_tls needs both 'client_cert' and "
                   "'client_key', or neither");
    }
    if (cc != nullptr) {
      absl::StatusOr<std::string> c = GetPath(*cc, "client_cert");
      if (!c.ok()) return c.status();
      absl::StatusOr<std::string> k = GetPath(*ck, "client_key");
      if (!k.ok()) return k.status();
      b.client_cert = {*std::move(c), *std::move(k)};
    }
    return absl::OkStatus();
  }

  // `key` must be an array of tables ([[key]] or [ {..}, {..} ]).
  absl::StatusOr<std::vector<const toml::table*>> GetTableArray(
      const toml::node& node, std::string_view key) const {
    const toml::array* array = node.as_array();
    if (array == nullptr) return WrongType(node, key, "an array of tables");
    std::vector<const toml::table*> tables;
    for (const toml::node& element : *array) {
      const toml::table* t = element.as_table();
      if (t == nullptr) {
        return Error(LineOf(element), absl::StrCat("elements of ", Quote(key),
                                                   " must be tables, not ",
                                                   A(TypeName(element))));
      }
      tables.push_back(t);
    }
    return tables;
  }

  absl::Status ParseBackends(const toml::node& node,
                             routing::TenantSpec& spec) {
    absl::StatusOr<std::vector<const toml::table*>> backends =
        GetTableArray(node, "backends");
    if (!backends.ok()) return backends.status();
    if (backends->empty()) {
      return Error(LineOf(node), absl::StrCat("tenant ", Quote(spec.name),
                                              " needs at least one backend"));
    }
    const std::string where =
        absl::StrCat("in a backend of tenant ", Quote(spec.name));
    for (const toml::table* b : *backends) {
      if (absl::Status s = CheckKeys(*b, {"address", "weight"}, where);
          !s.ok()) {
        return s;
      }
      routing::BackendSpec backend;
      const toml::node* address = b->get("address");
      if (address == nullptr) {
        return Error(LineOf(*b), absl::StrCat("missing 'address' ", where));
      }
      absl::StatusOr<std::string> a = GetString(*address, "address");
      if (!a.ok()) return a.status();
      if (absl::Status s = ValidateHostPort(*a); !s.ok()) {
        return Error(LineOf(*address), S(s.message()));
      }
      // Same address twice would be one backend with two hash identities
      // equal to each other; almost certainly a copy-paste slip.
      for (const routing::BackendSpec& other : spec.backends) {
        if (other.address == *a) {
          return Error(LineOf(*address),
                       absl::StrCat("backend ", Quote(*a), " listed twice ",
                                    "in tenant ", Quote(spec.name)));
        }
      }
      backend.address = *std::move(a);
      if (const toml::node* weight = b->get("weight")) {
        absl::StatusOr<int64_t> w = GetInt(*weight, "weight", 1, 1000);
        if (!w.ok()) return w.status();
        backend.weight = static_cast<uint32_t>(*w);
      }
      spec.backends.push_back(std::move(backend));
    }
    return absl::OkStatus();
  }

  absl::Status ParseTenant(const toml::table& t, TenantConfig& tenant) {
    if (absl::Status s =
            CheckKeys(t,
                      {"name", "domains", "username", "auth", "passwd_file",
                       "backends", "sni_names", "certificates", "backend_tls"},
                      "in [[tenant]]");
        !s.ok()) {
      return s;
    }
    routing::TenantSpec& spec = tenant.spec;
    const toml::node* name = t.get("name");
    if (name == nullptr) return Error(LineOf(t), "[[tenant]] without 'name'");
    absl::StatusOr<std::string> n = GetString(*name, "name");
    if (!n.ok()) return n.status();
    if (!IsValidTenantName(*n)) {
      return Error(LineOf(*name),
                   absl::StrCat("tenant name ", Quote(*n), " must be 1..",
                                kMaxTenantName, " characters of [a-z0-9._-]"));
    }
    if (!tenant_lines_.emplace(*n, LineOf(t)).second) {
      return Error(LineOf(*name),
                   absl::StrCat("duplicate tenant name ", Quote(*n)));
    }
    spec.name = *std::move(n);

    domains_line_.push_back(LineOf(t));
    if (const toml::node* domains = t.get("domains")) {
      domains_line_.back() = LineOf(*domains);
      const toml::array* array = domains->as_array();
      if (array == nullptr) {
        return WrongType(*domains, "domains", "an array of strings");
      }
      for (const toml::node& d : *array) {
        absl::StatusOr<std::string> domain = GetString(d, "domains[]");
        if (!domain.ok()) return domain.status();
        absl::AsciiStrToLower(&*domain);
        if (!IsValidDomain(*domain)) {
          return Error(LineOf(d),
                       absl::StrCat("invalid domain ", Quote(*domain)));
        }
        // Checked here rather than left to RoutingTable::Build so the error
        // points at the offending entry.
        auto [it, inserted] = domain_owner_.emplace(*domain, spec.name);
        if (!inserted) {
          return Error(LineOf(d), absl::StrCat("domain ", Quote(*domain),
                                               " already belongs to tenant ",
                                               Quote(it->second)));
        }
        spec.domains.push_back(*std::move(domain));
      }
    }

    if (const toml::node* v = t.get("username")) {
      absl::StatusOr<std::string> mode = GetString(*v, "username");
      if (!mode.ok()) return mode.status();
      if (*mode == "full") {
        spec.username_mode = routing::UsernameMode::kFull;
      } else if (*mode == "strip-domain") {
        spec.username_mode = routing::UsernameMode::kStripDomain;
      } else {
        return Error(LineOf(*v),
                     "'username' must be \"full\" or "
                     "\"strip-domain\"");
      }
    }
    Line auth_line = LineOf(t);
    if (const toml::node* v = t.get("auth")) {
      auth_line = LineOf(*v);
      absl::StatusOr<std::string> auth = GetString(*v, "auth");
      if (!auth.ok()) return auth.status();
      if (*auth == "file") {
        tenant.auth = AuthProvider::kFile;
      } else if (*auth == "backend") {
        tenant.auth = AuthProvider::kBackend;
      } else {
        return Error(LineOf(*v), "'auth' must be \"file\" or \"backend\"");
      }
    }
    const toml::node* passwd = t.get("passwd_file");
    if (tenant.auth == AuthProvider::kFile) {
      if (passwd == nullptr) {
        return Error(LineOf(t), absl::StrCat("tenant ", Quote(spec.name),
                                             " has auth = \"file\" but no "
                                             "'passwd_file'"));
      }
      absl::StatusOr<std::string> file = GetPath(*passwd, "passwd_file");
      if (!file.ok()) return file.status();
      tenant.passwd_file = *std::move(file);
      tenant.passwd_file_line = LineOf(*passwd);
    } else if (passwd != nullptr) {
      // Silently ignoring it would hide that the file is not being used.
      return Error(
          LineOf(*passwd),
          absl::StrCat("'passwd_file' is only used with auth = "
                       "\"file\" (tenant ",
                       Quote(spec.name), " has auth on line ", auth_line, ")"));
    }

    if (const toml::node* v = t.get("sni_names")) {
      const toml::array* array = v->as_array();
      if (array == nullptr) {
        return WrongType(*v, "sni_names", "an array of strings");
      }
      for (const toml::node& n : *array) {
        absl::StatusOr<std::string> name = GetString(n, "sni_names[]");
        if (!name.ok()) return name.status();
        absl::AsciiStrToLower(&*name);
        std::string_view bare = *name;
        if (bare.starts_with("*.")) bare.remove_prefix(2);
        if (!IsValidDomain(bare)) {
          return Error(LineOf(n),
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
      absl::StatusOr<std::vector<CertKeyConfig>> certs = GetCertificates(*v);
      if (!certs.ok()) return certs.status();
      tenant.certificates = *std::move(certs);
    }
    if (const toml::node* v = t.get("backend_tls")) {
      if (absl::Status s = ParseBackendTls(*v, tenant); !s.ok()) return s;
    }

    const toml::node* backends = t.get("backends");
    if (backends == nullptr) {
      return Error(LineOf(t), absl::StrCat("tenant ", Quote(spec.name),
                                           " has no 'backends'"));
    }
    return ParseBackends(*backends, spec);
  }

  absl::Status ParseTenants(const toml::table& root, Config& config) {
    const toml::node* node = root.get("tenant");
    if (node == nullptr) {
      return Error(LineOf(root), "at least one [[tenant]] is required");
    }
    absl::StatusOr<std::vector<const toml::table*>> tenants =
        GetTableArray(*node, "tenant");
    if (!tenants.ok()) return tenants.status();
    if (tenants->empty()) {
      return Error(LineOf(*node), "at least one [[tenant]] is required");
    }
    for (const toml::table* t : *tenants) {
      TenantConfig tenant;
      if (absl::Status s = ParseTenant(*t, tenant); !s.ok()) return s;
      config.tenants.push_back(std::move(tenant));
    }
    return absl::OkStatus();
  }

  absl::Status ParseListeners(const toml::table& root, Config& config) {
    const toml::node* node = root.get("listener");
    if (node == nullptr) {
      return Error(LineOf(root), "at least one [[listener]] is required");
    }
    absl::StatusOr<std::vector<const toml::table*>> listeners =
        GetTableArray(*node, "listener");
    if (!listeners.ok()) return listeners.status();
    if (listeners->empty()) {
      return Error(LineOf(*node), "at least one [[listener]] is required");
    }
    for (const toml::table* l : *listeners) {
      if (absl::Status s =
              CheckKeys(*l,
                        {"address", "default_tenant", "tls", "certificates",
                         "plaintext_auth", "ipv6_only"},
                        "in [[listener]]");
          !s.ok()) {
        return s;
      }
      ListenerConfig listener;
      const toml::node* address = l->get("address");
      if (address == nullptr) {
        return Error(LineOf(*l), "[[listener]] without 'address'");
      }
      absl::StatusOr<std::string> a = GetString(*address, "address");
      if (!a.ok()) return a.status();
      if (absl::Status s = ValidateHostPort(*a); !s.ok()) {
        return Error(LineOf(*address), S(s.message()));
      }
      // Two listeners on one address would fail at bind time, long after
      // --check-config said the file was fine.
      for (const ListenerConfig& other : config.listeners) {
        if (other.address == *a) {
          return Error(
              LineOf(*address),
              absl::StrCat("listener address ", Quote(*a), " used twice"));
        }
      }
      listener.address = *std::move(a);
      if (const toml::node* d = l->get("default_tenant")) {
        absl::StatusOr<std::string> name = GetString(*d, "default_tenant");
        if (!name.ok()) return name.status();
        if (!tenant_lines_.contains(*name)) {
          return Error(LineOf(*d), absl::StrCat("default_tenant ", Quote(*name),
                                                " is not a defined tenant"));
        }
        listener.default_tenant = *std::move(name);
      }
      if (const toml::node* v = l->get("tls")) {
        absl::StatusOr<std::string> mode = GetString(*v, "tls");
        if (!mode.ok()) return mode.status();
        if (*mode == "none") {
          listener.tls = ListenerTls::kNone;
        } else if (*mode == "starttls") {
          listener.tls = ListenerTls::kStartTls;
        } else if (*mode == "implicit") {
          listener.tls = ListenerTls::kImplicit;
        } else {
          return Error(LineOf(*v),
                       "'tls' must be \"none\", \"starttls\" "
                       "or \"implicit\"");
        }
      }
      if (const toml::node* v = l->get("certificates")) {
        absl::StatusOr<std::vector<CertKeyConfig>> certs = GetCertificates(*v);
        if (!certs.ok()) return certs.status();
        listener.certificates = *std::move(certs);
      }
      if (listener.tls != ListenerTls::kNone && listener.certificates.empty()) {
        return Error(LineOf(*l),
                     "a TLS listener needs 'certificates' (served "
                     "when no tenant's name matches the SNI)");
      }
      if (const toml::node* v = l->get("plaintext_auth")) {
        absl::StatusOr<std::string> p = GetString(*v, "plaintext_auth");
        if (!p.ok()) return p.status();
        if (*p == "trusted") {
          listener.plaintext_auth = PlaintextAuth::kTrusted;
        } else if (*p == "always") {
          listener.plaintext_auth = PlaintextAuth::kAlways;
        } else if (*p == "never") {
          listener.plaintext_auth = PlaintextAuth::kNever;
        } else {
          return Error(LineOf(*v),
                       "'plaintext_auth' must be \"trusted\", "
                       "\"always\" or \"never\"");
        }
      }
      if (const toml::node* v = l->get("ipv6_only")) {
        absl::StatusOr<bool> b = GetBool(*v, "ipv6_only");
        if (!b.ok()) return b.status();
        listener.ipv6_only = *b;
      }
      config.listeners.push_back(std::move(listener));
    }
    return absl::OkStatus();
  }

  absl::Status CrossCheck(Config& config) {
    for (size_t i = 0; i < config.tenants.size(); ++i) {
      const routing::TenantSpec& spec = config.tenants[i].spec;
      if (!spec.domains.empty()) continue;
      bool is_default = false;
      for (const ListenerConfig& l : config.listeners) {
        is_default = is_default || l.default_tenant == spec.name;
      }
      if (!is_default) {
        return Error(domains_line_[i],
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
      return Error(config.tenants.empty()
                       ? 1
                       : tenant_lines_[config.tenants.front().spec.name],
                   S(table.status().message()));
    }
    return absl::OkStatus();
  }

  std::string name_;
  std::string_view base_dir_;
  absl::flat_hash_map<std::string, Line> tenant_lines_;  // name -> [[tenant]]
  absl::flat_hash_map<std::string, std::string> domain_owner_;
  std::vector<Line> domains_line_;  // per tenant, for the reachability check
};

}  // namespace

absl::Status ValidateHostPort(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "address ", Quote(address), " must be \"[v6-address]:port\""));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
    for (char c : host) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') {
        return absl::InvalidArgumentError(
            absl::StrCat("address ", Quote(address), ": bad IPv6 address"));
      }
    }
    if (host.find(':') == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("address ", Quote(address), ": bad IPv6 address"));
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("address ", Quote(address), " must be \"host:port\""));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "address ", Quote(address), ": put IPv6 addresses in brackets"));
    }
    for (char c : host) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') {
        return absl::InvalidArgumentError(absl::StrCat(
            "address ", Quote(address), ": bad character in host"));
      }
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", Quote(address), ": empty host"));
  }
  uint32_t p = 0;
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) digits = digits && absl::ascii_isdigit(c);
  if (!digits || !absl::SimpleAtoi(A(port), &p) || p == 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", Quote(address), ": port must be 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view name,
                                   std::string_view base_dir) {
  return Parser(name, base_dir).Parse(toml_text);
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  auto fail = [&path](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read config file: ", A(why)));
  };
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  std::string text;
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status = fail(std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = fail("not a regular file");
  } else if (st.st_size > kMaxConfigBytes) {
    status = fail("file too large");
  } else {
    text.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = read(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = fail(std::strerror(errno));
        break;
      }
      if (n == 0) {  // truncated while we read it
        text.resize(done);
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
  close(fd);
  if (!status.ok()) return status;

  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) return fail(ec.message());
  return ParseConfig(text, path, absolute.parent_path().string());
}

}  // namespace popgate
