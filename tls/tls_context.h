// TLS contexts: what a listener serves (certificates chosen by SNI and by
// what the client supports, TLS 1.2/1.3 only, X25519 first, session tickets
// with rotating keys shared by all workers, RSA signing on a thread pool)
// and what popgate uses towards backends (CA file, name verification,
// optional client certificate). Built on the main thread (reads files),
// immutable afterwards, shared by workers; a reload builds new ones.
#ifndef POPGATE_TLS_TLS_CONTEXT_H_
#define POPGATE_TLS_TLS_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/hash_pool.h"
#include "tls/ticket_keys.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace popgate::tls {

struct CertKeyFiles {
  std::string cert_file;  // PEM: leaf first, then intermediates
  std::string key_file;   // PEM: RSA or ECDSA P-256/P-384 private key
};

// A set of certificates served for some SNI names (or as the default).
// Several entries of different key types (ECDSA and RSA) may be given: a
// client that supports ECDSA gets the ECDSA one.
struct CertGroup {
  std::string tenant;              // tenant these names select ("" = none)
  std::vector<std::string> names;  // exact names or "*.example.com"
  std::vector<CertKeyFiles> certs;
};

struct ServerTlsOptions {
  std::vector<CertKeyFiles> default_certs;  // served when no SNI matches
  std::vector<CertGroup> sni_groups;
  // Private-key signing with RSA keys runs here (may be null: inline).
  auth::HashPool* sign_pool = nullptr;
  std::shared_ptr<TicketKeys> ticket_keys;  // null: tickets disabled
  absl::Duration session_lifetime = absl::Hours(12);
  // Keep the TLS 1.3 traffic secrets so kernel TLS can take over after the
  // login (set only where the kernel has the "tls" ULP).
  bool capture_traffic_secrets = false;
};

class ServerContext {
 public:
  static absl::StatusOr<std::shared_ptr<const ServerContext>> Build(
      const ServerTlsOptions& options);
  ~ServerContext();
  SSL_CTX* ctx() const { return ctx_; }
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // Implementation detail (public only so the SSL callbacks can name it).
  struct Impl;

 private:
  ServerContext() = default;
  friend class TlsEngine;
  SSL_CTX* ctx_ = nullptr;
  std::unique_ptr<Impl> impl_;
};

struct ClientTlsOptions {
  bool verify = true;        // verify the backend's certificate and name
  std::string ca_file;       // PEM bundle; empty = system default paths
  CertKeyFiles client_cert;  // optional (both empty = none)
  bool capture_traffic_secrets = false;  // as in ServerTlsOptions
};

class ClientContext {
 public:
  static absl::StatusOr<std::shared_ptr<const ClientContext>> Build(
      const ClientTlsOptions& options);
  ~ClientContext();
  SSL_CTX* ctx() const { return ctx_; }
  bool verify() const { return verify_; }
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

 private:
  ClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
};

}  // namespace popgate::tls

#endif  // POPGATE_TLS_TLS_CONTEXT_H_
