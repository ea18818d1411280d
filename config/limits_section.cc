// [limits]: where the login counters live (local memory or Redis), how
// client addresses are grouped, who is exempt, the connection limits and
// the brute-force thresholds. Every value is checked here, where its line
// is known.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "config/sections.h"
#include "config/toml_fields.h"
#include "net/cidr_set.h"
#include "net/socket_address.h"

namespace popgate::config_internal {
namespace {

constexpr size_t kMaxRedisPrefix = 64;
constexpr size_t kMaxRedisUser = 128;
// A Redis round trip this slow is an outage, and a login waiting on it
// holds its connection.
constexpr absl::Duration kMaxRedisTimeout = absl::Seconds(10);
// The delay is a timer (no thread), but the connection stays open for it.
constexpr absl::Duration kMaxFailureDelay = absl::Minutes(5);
// A held refusal keeps its descriptor: a short while is all it needs.
constexpr absl::Duration kMaxRefusalDelay = absl::Seconds(30);

// Keys that only mean something with store = "redis".
constexpr std::string_view kRedisKeys[] = {
    "redis_address", "redis_user",    "redis_password_file", "redis_db",
    "redis_prefix",  "redis_timeout", "redis_down"};

absl::Status ParseStore(const Fields& f, const toml::table& t,
                        LimitsConfig& limits) {
  limits.store_line = LineOf(t);
  if (const toml::node* v = t.get("store")) {
    limits.store_line = LineOf(*v);
    absl::StatusOr<std::string> store = f.GetString(*v, "store");
    if (!store.ok()) return store.status();
    if (*store == "local") {
      limits.redis = false;
    } else if (*store == "redis") {
      limits.redis = true;
    } else {
      return f.Error(LineOf(*v), "'store' must be \"local\" or \"redis\"");
    }
  }
  if (!limits.redis) {
    // Silently ignoring them would hide that no Redis is used.
    for (std::string_view key : kRedisKeys) {
      if (const toml::node* v = t.get(key)) {
        return f.Error(
            LineOf(*v),
            absl::StrCat(Quote(key), " is used only with store = \"redis\""));
      }
    }
    return absl::OkStatus();
  }
  const toml::node* address = t.get("redis_address");
  if (address == nullptr) {
    return f.Error(limits.store_line,
                   "store = \"redis\" needs 'redis_address' (\"host:port\" "
                   "or \"unix:PATH\")");
  }
  absl::StatusOr<std::string> a = f.GetString(*address, "redis_address");
  if (!a.ok()) return a.status();
  if (IsUnixAddress(*a)) {
    if (absl::Status s =
            CheckUnixAddress(f, LineOf(*address), "redis_address", *a);
        !s.ok()) {
      return s;
    }
  } else if (absl::Status s = ValidateHostPort(*a); !s.ok()) {
    return f.Error(LineOf(*address),
                   absl::StrCat("'redis_address': ", s.message()));
  }
  limits.redis_address = *std::move(a);
  if (const toml::node* v = t.get("redis_user")) {
    absl::StatusOr<std::string> u = f.GetString(*v, "redis_user");
    if (!u.ok()) return u.status();
    // Redis takes any bytes in an ACL user name; printable ones without
    // spaces keep the AUTH argument and the errors that name it plain.
    bool ok = !u->empty() && u->size() <= kMaxRedisUser;
    for (char c : *u) ok = ok && c > 0x20 && c < 0x7f;
    if (!ok) {
      return f.Error(LineOf(*v),
                     absl::StrCat("'redis_user' must be 1..", kMaxRedisUser,
                                  " printable ASCII characters without "
                                  "spaces (the Redis ACL user)"));
    }
    if (t.get("redis_password_file") == nullptr) {
      return f.Error(LineOf(*v),
                     "'redis_user' needs 'redis_password_file' (the ACL "
                     "user's password)");
    }
    limits.redis_user = *std::move(u);
  }
  if (const toml::node* v = t.get("redis_password_file")) {
    absl::StatusOr<std::string> p = f.GetPath(*v, "redis_password_file");
    if (!p.ok()) return p.status();
    limits.redis_password_file = *std::move(p);
    limits.redis_password_file_line = LineOf(*v);
  }
  if (const toml::node* v = t.get("redis_db")) {
    absl::StatusOr<int64_t> n = f.GetInt(*v, "redis_db", 0, 65535);
    if (!n.ok()) return n.status();
    limits.redis_db = static_cast<int>(*n);
  }
  if (const toml::node* v = t.get("redis_prefix")) {
    absl::StatusOr<std::string> p = f.GetString(*v, "redis_prefix");
    if (!p.ok()) return p.status();
    // It starts every key popgate sends in a command: printable, no
    // spaces, so a key is one token in Redis's logs and MONITOR.
    bool ok = !p->empty() && p->size() <= kMaxRedisPrefix;
    for (char c : *p) ok = ok && c > 0x20 && c < 0x7f;
    if (!ok) {
      return f.Error(LineOf(*v),
                     absl::StrCat("'redis_prefix' must be 1..", kMaxRedisPrefix,
                                  " printable ASCII characters without "
                                  "spaces, e.g. \"popgate:\""));
    }
    limits.redis_prefix = *std::move(p);
  }
  if (const toml::node* v = t.get("redis_timeout")) {
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, "redis_timeout", false);
    if (!d.ok()) return d.status();
    if (*d > kMaxRedisTimeout) {
      return f.Error(LineOf(*v),
                     absl::StrCat("'redis_timeout' must be at most ",
                                  absl::FormatDuration(kMaxRedisTimeout)));
    }
    limits.redis_timeout = *d;
  }
  if (const toml::node* v = t.get("redis_down")) {
    absl::StatusOr<std::string> policy = f.GetString(*v, "redis_down");
    if (!policy.ok()) return policy.status();
    if (*policy == "fail_open") {
      limits.redis_down = StoreDownPolicy::kFailOpen;
    } else if (*policy == "fail_closed") {
      limits.redis_down = StoreDownPolicy::kFailClosed;
    } else {
      return f.Error(LineOf(*v),
                     "'redis_down' must be \"fail_open\" or \"fail_closed\"");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> GetNetworks(const Fields& f,
                                                     const toml::node& node,
                                                     std::string_view key) {
  const toml::array* array = node.as_array();
  if (array == nullptr) return f.WrongType(node, key, "an array of strings");
  const std::string element_key = absl::StrCat(A(key), "[]");
  std::vector<std::string> out;
  for (const toml::node& n : *array) {
    absl::StatusOr<std::string> net = f.GetString(n, element_key);
    if (!net.ok()) return net.status();
    // The same parser as the running server's (net/cidr_set), so what
    // passes here is what the server matches.
    if (absl::Status s = CidrSet::Validate(*net); !s.ok()) {
      return f.Error(LineOf(n), absl::StrCat(Quote(key), ": ", s.message()));
    }
    out.push_back(*std::move(net));
  }
  return out;
}

absl::Status ParseLimits(const Fields& f, const toml::node& node,
                         LimitsConfig& limits) {
  absl::StatusOr<const toml::table*> table = f.GetTable(node, "limits");
  if (!table.ok()) return table.status();
  const toml::table& t = **table;
  if (absl::Status s = f.CheckKeys(t,
                                   {"store",
                                    "redis_address",
                                    "redis_user",
                                    "redis_password_file",
                                    "redis_db",
                                    "redis_prefix",
                                    "redis_timeout",
                                    "redis_down",
                                    "ipv4_prefix",
                                    "ipv6_prefix",
                                    "exempt_networks",
                                    "max_connections",
                                    "max_connections_per_address",
                                    "max_prelogin_per_address",
                                    "max_new_connections_per_address",
                                    "max_sessions_per_user",
                                    "failure_window",
                                    "max_failure_delay",
                                    "address_failures_to_block",
                                    "user_failures_to_block",
                                    "address_users_to_block",
                                    "block_time",
                                    "refusal_delay",
                                    "max_refusals_held"},
                                   "in [limits]");
      !s.ok()) {
    return s;
  }
  limits.line = LineOf(t);
  if (absl::Status s = ParseStore(f, t, limits); !s.ok()) return s;

  struct IntField {
    std::string_view key;
    int* out;
    int64_t hi;  // every one is >= 0; 0 = no limit (or off)
  };
  for (const IntField& field : {
           IntField{"ipv4_prefix", &limits.ipv4_prefix, 32},
           IntField{"ipv6_prefix", &limits.ipv6_prefix, 128},
           IntField{"max_connections", &limits.max_connections, 10000000},
           IntField{"max_connections_per_address",
                    &limits.max_connections_per_address, 1000000},
           IntField{"max_prelogin_per_address",
                    &limits.max_prelogin_per_address, 1000000},
           IntField{"max_new_connections_per_address",
                    &limits.max_new_connections_per_address, 1000000},
           IntField{"max_sessions_per_user", &limits.max_sessions_per_user,
                    100000},
           IntField{"address_failures_to_block",
                    &limits.address_failures_to_block, 1000000},
           IntField{"user_failures_to_block", &limits.user_failures_to_block,
                    1000000},
           IntField{"address_users_to_block", &limits.address_users_to_block,
                    1000000},
           IntField{"max_refusals_held", &limits.max_refusals_held, 1000000},
       }) {
    const toml::node* v = t.get(field.key);
    if (v == nullptr) continue;
    absl::StatusOr<int64_t> n = f.GetInt(*v, field.key, 0, field.hi);
    if (!n.ok()) return n.status();
    *field.out = static_cast<int>(*n);
  }

  struct DurationField {
    std::string_view key;
    absl::Duration* out;
    bool allow_zero;
  };
  for (const DurationField& field : {
           DurationField{"failure_window", &limits.failure_window, false},
           // Zero: no growing delay (only [server] auth_failure_delay).
           DurationField{"max_failure_delay", &limits.max_failure_delay, true},
           DurationField{"block_time", &limits.block_time, false},
           // Zero: refusals are answered at once.
           DurationField{"refusal_delay", &limits.refusal_delay, true},
       }) {
    const toml::node* v = t.get(field.key);
    if (v == nullptr) continue;
    absl::StatusOr<absl::Duration> d =
        f.GetDuration(*v, field.key, field.allow_zero);
    if (!d.ok()) return d.status();
    *field.out = *d;
  }
  if (const toml::node* v = t.get("refusal_delay");
      v != nullptr && limits.refusal_delay > kMaxRefusalDelay) {
    return f.Error(LineOf(*v),
                   absl::StrCat("'refusal_delay' must be at most ",
                                absl::FormatDuration(kMaxRefusalDelay)));
  }
  if (const toml::node* v = t.get("max_failure_delay");
      v != nullptr && limits.max_failure_delay > kMaxFailureDelay) {
    return f.Error(LineOf(*v),
                   absl::StrCat("'max_failure_delay' must be at most ",
                                absl::FormatDuration(kMaxFailureDelay)));
  }

  if (const toml::node* v = t.get("exempt_networks")) {
    absl::StatusOr<std::vector<std::string>> nets =
        GetNetworks(f, *v, "exempt_networks");
    if (!nets.ok()) return nets.status();
    limits.exempt_networks = *std::move(nets);  // [] = nobody is exempt
  }
  return absl::OkStatus();
}

}  // namespace popgate::config_internal
