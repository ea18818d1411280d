// popgate's configuration: one TOML file, every setting with a safe default.
// Unknown keys and wrong types are errors reported as "file:line: reason".
#ifndef POPGATE_CONFIG_CONFIG_H_
#define POPGATE_CONFIG_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/socket_address.h"
#include "routing/routing_table.h"

namespace popgate {

struct ServerConfig {
  int workers = 0;            // 0 = one per online CPU
  int auth_threads = 2;       // hash pool size
  int max_auth_failures = 3;  // per connection, then close
  absl::Duration preauth_idle_timeout = absl::Seconds(60);
  // Connect, greeting, STLS and the USER reply from a backend.
  absl::Duration backend_timeout = absl::Seconds(10);
  // The backend's reply to PASS: backends delay failed logins on purpose
  // (Dovecot: 2 s and growing), so this one is longer.
  absl::Duration backend_auth_timeout = absl::Seconds(30);
  // PASS pipelined with CAPA and USER to a backend whose CAPA listed
  // PIPELINING at the previous login (backend/capa_memo.h).
  bool backend_pipelining = true;
  absl::Duration auth_failure_delay = absl::Seconds(2);
  absl::Duration shutdown_grace = absl::Seconds(30);
  // A forwarded session with no byte moving either way for this long is
  // closed (both sides, no QUIT). RFC 1939 asks servers for >= 10 minutes of
  // autologout; backends usually close first.
  absl::Duration forward_idle_timeout = absl::Minutes(30);
  std::string greeting = "popgate ready.";
  // Total time from accept to a successful login (a per-read timer alone
  // lets a client trickling one byte per second stay for ever).
  absl::Duration login_timeout = absl::Seconds(60);
  // Commands a connection may send before it logs in (CAPA, USER, ...).
  int max_preauth_commands = 50;
  // Jobs waiting for the hashing/signing pool; beyond that a login gets
  // -ERR [SYS/TEMP] at once.
  int auth_queue_limit = 1024;
  // Start even if another process already listens on one of our addresses
  // (a takeover during an upgrade); otherwise that is a start-up error.
  bool takeover_listeners = false;
  // Zero-downtime upgrade: the unix socket on which the running process
  // hands its listening sockets to a new one started with the same setting
  // (an absolute path, resolved against the config's directory; "" = off).
  std::string handover_socket;
  uint32_t handover_socket_line = 0;
  // Kernel socket buffer bound per forwarded socket (SO_SNDBUF/SO_RCVBUF,
  // bytes) once forwarding starts; 0 = leave the kernel's autotuning.
  int forward_socket_buffer = 512 * 1024;
  // After the backend ends a forwarded session, how long the client may
  // take to read what was already sent before both sides are closed.
  absl::Duration client_drain_timeout = absl::Seconds(10);
  // On a proxy_protocol listener: the whole PROXY header must have arrived
  // within this long after accept, else the connection is closed.
  absl::Duration proxy_protocol_timeout = absl::Seconds(5);
  // Started as root: once every socket is open, switch to this user (a
  // name) and group (default: the user's primary group), keeping no
  // capability. Empty = stay who we are, which as root needs allow_root.
  std::string user;
  std::string group;
  bool allow_root = false;
  uint32_t user_line = 0;  // where `user` (or [server]) was, for errors
};

// A certificate chain and its private key (PEM files, absolute paths).
struct CertKeyConfig {
  std::string cert;
  std::string key;
  uint32_t line = 0;  // where it was named, for load errors
};

enum class ListenerTls { kNone, kStartTls, kImplicit };
// Whether USER/PASS/AUTH are allowed on a connection that is not (yet) TLS.
enum class PlaintextAuth { kTrusted, kAlways, kNever };

struct ListenerConfig {
  std::string address;         // "127.0.0.1:1110", "[::1]:110"
  std::string default_tenant;  // tenant name, empty = none
  ListenerTls tls = ListenerTls::kNone;
  // Served when the client's SNI matches no tenant (required with TLS).
  std::vector<CertKeyConfig> certificates;
  PlaintextAuth plaintext_auth = PlaintextAuth::kTrusted;
  // For "[::]:port" only: false (default) = dual-stack (IPv4 clients too,
  // as v4-mapped addresses), true = IPv6 clients only.
  bool ipv6_only = false;
  // A front load balancer (HAProxy send-proxy / send-proxy-v2, a cloud
  // balancer) sends a PROXY v1 or v2 header first on every connection: it
  // is required, and accepted only from proxy_trusted_networks (CIDRs,
  // required non-empty when proxy_protocol is on); a connection from
  // anywhere else is closed. The header's client address is then the
  // client's address everywhere (trusted_networks, limits, throttling,
  // the session log, client_identity to backends).
  bool proxy_protocol = false;
  std::vector<std::string> proxy_trusted_networks;
  uint32_t line = 0;          // the [[listener]] table, for load errors
  uint32_t address_line = 0;  // its 'address'
};

// [tls]: settings shared by all TLS listeners.
struct TlsConfig {
  bool session_tickets = true;
  absl::Duration ticket_key_rotation = absl::Hours(12);
  std::string ticket_key_file;  // shared secret for several instances
  uint32_t ticket_key_file_line = 0;
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Networks where plaintext_auth = "trusted" allows plain logins.
  std::vector<std::string> trusted_networks = {"127.0.0.0/8", "::1/128"};
  bool ktls = true;  // hand TLS to the kernel where it supports it
};

enum class BackendTls { kNone, kStartTls, kImplicit };

struct BackendTlsConfig {
  BackendTls mode = BackendTls::kNone;
  bool verify = true;
  std::string ca_file;  // empty = system CA store
  std::string name;     // name to verify; empty = host part of the address
  CertKeyConfig client_cert;  // optional
  uint32_t line = 0;          // the backend_tls table, for load errors
  uint32_t ca_file_line = 0;
};

enum class AuthProvider { kFile, kBackend };

// What happens to a user whose backend cannot take a new session.
enum class Failover {
  kNone,  // sharded storage: -ERR [SYS/TEMP] at once, nobody moves
  kNext,  // shared storage: the next usable backend in the user's own
          // rendezvous order (the same on every instance)
};

// How a backend learns the real client's address.
enum class ClientIdentity {
  kNone,     // it sees popgate's address
  kProxyV2,  // a PROXY protocol v2 header first on the connection
  kXclient,  // Dovecot's XCLIENT, when offered (Dovecot: "+OK [XCLIENT]"
             // in its greeting to login_trusted_networks; others: CAPA)
};

// Whose credentials log in to the backend.
enum class BackendLoginMode {
  kClient,  // the client's own USER/PASS (or decoded SASL)
  kMaster,  // after local verification: a master user on the user's behalf
};
enum class MasterLoginMethod {
  kSeparator,  // USER <user><separator><master>, PASS <master password>
  kSaslPlain,  // AUTH PLAIN authzid=<user> authcid=<master>
};

// [tenant.health_check]: active checks of each backend of the pool, and
// passive marking from real logins.
struct HealthCheckConfig {
  // Active checks run only when the table is given (and `active` is not
  // false); passive marking runs unless `passive = false`.
  bool active = false;
  bool passive = true;
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(2);  // one whole check
  int rise = 2;      // consecutive good checks: down/unknown -> up
  int fall = 3;      // consecutive failures (checks or real logins): -> down
  bool capa = true;  // send CAPA and require a well-formed answer
  bool tls = true;   // do the backend_tls handshake (STLS/implicit) too
  uint32_t line = 0;
};

struct TenantConfig {
  routing::TenantSpec spec;
  AuthProvider auth = AuthProvider::kFile;
  std::string passwd_file;  // absolute (resolved against the config's dir)
  uint32_t passwd_file_line = 0;  // where it was named, for load errors
  // TLS names that select this tenant (and its certificates) by SNI; by
  // default its domains and "*." + each domain.
  std::vector<std::string> sni_names;
  std::vector<CertKeyConfig> certificates;
  BackendTlsConfig backend_tls;
  HealthCheckConfig health_check;
  Failover failover = Failover::kNone;
  ClientIdentity client_identity = ClientIdentity::kNone;
  BackendLoginMode backend_login = BackendLoginMode::kClient;
  MasterLoginMethod master_login = MasterLoginMethod::kSeparator;
  std::string master_user;           // required with backend_login = "master"
  std::string master_password_file;  // absolute; mode 0600/0400, our owner
  uint32_t master_password_file_line = 0;
  std::string master_separator = "*";  // Dovecot's auth_master_user_separator
  // What CAPA offers before login on a listener whose default tenant (or
  // SNI name) is this one, besides USER/SASL/STLS which popgate decides.
  // Upper-case tokens with arguments, e.g. "TOP", "EXPIRE 30".
  std::vector<std::string> capabilities = {"PIPELINING", "RESP-CODES",
                                           "AUTH-RESP-CODE", "TOP", "UIDL"};
  // Concurrent logged-in sessions of this tenant on this instance
  // (0 = no limit): beyond, -ERR [SYS/TEMP].
  int max_sessions = 0;
  // The auth cache (auth = "file" only): verdicts of recent logins keyed
  // by an HMAC of user and password under a per-process secret, so a
  // repeated login (a client polling every minute, a stuffing attacker's
  // repeated guess) costs no hash. Emptied by every reload. 0 = off.
  int auth_cache_size = 10000;                                 // entries
  absl::Duration auth_cache_ttl = absl::Minutes(5);            // good logins
  absl::Duration auth_cache_negative_ttl = absl::Seconds(60);  // failed
  uint32_t line = 0;          // the [[tenant]] table
  uint32_t domains_line = 0;  // 'domains' (the table if absent)
  // Per spec.backends entry: the line of its address, for load errors.
  std::vector<uint32_t> backend_lines;
};

// When the shared store (Redis) cannot be reached in time.
enum class StoreDownPolicy {
  kFailOpen,    // use this instance's local counters; log once a minute
  kFailClosed,  // refuse logins with -ERR [SYS/TEMP] until it is back
};

// [limits]: connection limits and brute-force defence. Every refusal is
// answered with an RFC 2449/3206 code, counted and logged, then closed.
struct LimitsConfig {
  // Where the login counters (failures per address and per user, blocks,
  // sessions per user) live: "local" (this instance's memory) or "redis"
  // (shared by every instance that names the same Redis).
  bool redis = false;
  std::string redis_address;        // "host:port" or "unix:PATH" (redis)
  std::string redis_user;           // Redis ACL user; "" = "default"
  std::string redis_password_file;  // optional: AUTH with its first line
  uint32_t redis_password_file_line = 0;
  int redis_db = 0;
  std::string redis_prefix = "popgate:";  // every key starts with it
  // One Redis round trip; past it the store counts as down for this try.
  absl::Duration redis_timeout = absl::Milliseconds(250);
  StoreDownPolicy redis_down = StoreDownPolicy::kFailOpen;
  uint32_t store_line = 0;

  // Client addresses are counted by network: IPv4 /32, IPv6 /64 by
  // default (one IPv6 host owns a whole /64).
  int ipv4_prefix = 32;
  int ipv6_prefix = 64;
  // Sources no limit or throttle applies to (monitoring, webmail hosts).
  std::vector<std::string> exempt_networks = {"127.0.0.0/8", "::1/128"};

  // Connections, per instance (0 = no limit).
  int max_connections = 20000;               // all clients together
  int max_connections_per_address = 50;      // open connections
  int max_prelogin_per_address = 10;         // of those, not logged in yet
  int max_new_connections_per_address = 20;  // accepted per second
  // Concurrent logged-in sessions of one user ([IN-USE] beyond); shared
  // across instances with store = "redis". 0 = no limit.
  int max_sessions_per_user = 10;

  // Failed logins, counted per address and per user over a sliding window.
  absl::Duration failure_window = absl::Minutes(15);
  // Each failure in the window doubles the reply delay from
  // [server] auth_failure_delay, up to this.
  absl::Duration max_failure_delay = absl::Seconds(30);
  int address_failures_to_block = 20;  // from one address, any users
  int user_failures_to_block = 10;     // for one user, from any addresses
  // Password spraying: this many distinct users failing from one address.
  int address_users_to_block = 5;
  absl::Duration block_time = absl::Minutes(15);
  // A refused connection (a connection limit) and a blocked login are
  // answered after this long, a timer on the worker (no hash, no thread):
  // an attacker's connection waits as a failed login's would instead of
  // looping as fast as we refuse. 0 = answer at once.
  absl::Duration refusal_delay = absl::Seconds(1);
  // Refused connections held for refusal_delay at once, per instance
  // (each holds a descriptor); beyond, they are answered at once.
  int max_refusals_held = 1000;
  uint32_t line = 0;  // the [limits] table
};

// [admin] (optional): the admin API's HTTP listener (docs/admin-api.md).
// Read at start only (a reload that changes it warns: restart-only).
struct AdminConfig {
  // "" = off (the default); "127.0.0.1:9110", "[::1]:9110", or
  // "unix:/run/popgate/admin.sock" (an absolute path; the socket is made
  // mode 0660, so its directory and group decide who may connect).
  std::string listen;
  // A file whose first line is the bearer token every request but
  // /healthz and /readyz must carry ("" = none). Required unless `listen`
  // is a unix socket or a numeric loopback address.
  std::string token_file;
  // Admin connections at once; more are answered 503 and closed.
  int max_connections = 64;
  // Reading a request and producing its answer, in total.
  absl::Duration request_timeout = absl::Seconds(5);
  uint32_t line = 0;             // the [admin] table, for errors
  uint32_t token_file_line = 0;  // where token_file was set
};

// [log] (optional): where log lines go and which are written
// (docs/logging.md). Read at start only (restart-only), but
// session_start, which each new session reads from its snapshot.
enum class LogOutput { kStderr, kSyslog, kJournald };
struct LogConfig {
  LogOutput output = LogOutput::kStderr;
  // One "session_start" line as each connection is accepted.
  bool session_start = false;
  // syslog: the facility's name ("mail", "daemon", "local0".."local7",
  // ...) and the local socket the datagrams go to.
  std::string syslog_facility = "mail";
  int syslog_facility_code = 2;  // LOG_MAIL >> 3, from syslog_facility
  std::string syslog_socket = "/dev/log";
  // journald: the journal's native-protocol socket.
  std::string journal_socket = "/run/systemd/journal/socket";
  uint32_t line = 0;  // the [log] table, for errors
};

struct Config {
  std::string path;  // the file it came from
  ServerConfig server;
  TlsConfig tls;
  LimitsConfig limits;
  AdminConfig admin;
  LogConfig log;
  std::vector<ListenerConfig> listeners;  // at least one
  std::vector<TenantConfig> tenants;      // at least one
};

// Parses TOML text. Relative paths are resolved against `base_dir`.
// `name` appears in errors ("name:line: reason").
absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view name,
                                   std::string_view base_dir);
// Reads `path` and parses it.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// "host:port" / "[v6]:port" split; numeric host or name; port 1..65535.
// The syntax is net/socket_address's ParseHostPort (the one parser).
absl::Status ValidateHostPort(std::string_view address);

// Refuses backend `backend` of tenant `tenant`, at `backend_addr`, when a
// connection to it would reach one of this config's own listeners
// (`listeners`: per config.listeners, nullopt where not known) on this
// host, wildcard listeners included (`local`: the host's interface
// addresses, net/local_address.h): "path:line: ..." of the backend. Config
// loading checks numeric addresses; Snapshot::Build resolved names.
absl::Status CheckBackendLoop(
    const Config& config, size_t tenant, size_t backend,
    const SocketAddress& backend_addr,
    const std::vector<std::optional<SocketAddress>>& listeners,
    const std::vector<SocketAddress>& local);

}  // namespace popgate

#endif  // POPGATE_CONFIG_CONFIG_H_
