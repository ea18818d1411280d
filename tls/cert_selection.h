// Which certificate a ClientHello gets: the SNI name picks a group (exact
// name first, then "*.domain" wildcard, case-insensitive; else the default
// group), and within the group an ECDSA certificate wins if the client can
// verify it, else RSA.
#ifndef POPGATE_TLS_CERT_SELECTION_H_
#define POPGATE_TLS_CERT_SELECTION_H_

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tls/cert_loader.h"
#include "tls/tls_context.h"

namespace popgate::tls {

struct LoadedGroup {
  std::string tenant;
  std::vector<LoadedCert> certs;  // never empty
};

class CertSelector {
 public:
  // Loads every file; the first error (naming the file) fails the build.
  static absl::StatusOr<CertSelector> Build(
      const std::vector<CertKeyFiles>& default_certs,
      const std::vector<CertGroup>& groups);

  // Group for the SNI name ("" = none sent); the default group if no name
  // matches. Null only if there is no default group and nothing matched.
  const LoadedGroup* ForName(std::string_view sni) const;

  // The certificate most handshakes get: the default group's first ECDSA
  // one (null if it has none). The server SSL_CTX carries it, so every
  // connection starts with it and selection replaces it only when the
  // client needs another; setting a certificate per connection makes
  // BoringSSL parse the leaf's key and compare it with the private key.
  const LoadedCert* Preinstalled() const;

 private:
  std::vector<LoadedGroup> groups_;  // groups_[0] = default (may be empty)
  absl::flat_hash_map<std::string, size_t> exact_;     // "mail.example.com"
  absl::flat_hash_map<std::string, size_t> wildcard_;  // "example.com"
};

// The certificate of `group` to serve to the client that sent `hello`.
const LoadedCert& ChooseCert(const LoadedGroup& group,
                             const SSL_CLIENT_HELLO* hello);

// Whether the client that sent `hello` can verify a signature by `cert`'s
// ECDSA key (sigalgs, and in TLS 1.2 also its curve and cipher suites).
bool ClientAcceptsEcdsa(const SSL_CLIENT_HELLO* hello, const LoadedCert& cert);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_CERT_SELECTION_H_
