// Loading a PEM certificate chain and its private key into the forms
// BoringSSL's SSL_set_chain_and_key wants (CRYPTO_BUFFERs + EVP_PKEY).
// Errors name the file and the reason, never any key material.
#ifndef POPGATE_TLS_CERT_LOADER_H_
#define POPGATE_TLS_CERT_LOADER_H_

#include <openssl/base.h>
#include <openssl/pool.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tls/tls_context.h"

namespace popgate::tls {

struct LoadedCert {
  std::string cert_file;                              // for messages
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;  // leaf first
  std::vector<CRYPTO_BUFFER*> chain_ptrs;  // views of `chain` for the API
  bssl::UniquePtr<EVP_PKEY> key;
  int key_type = 0;           // EVP_PKEY_RSA or EVP_PKEY_EC
  int curve_nid = 0;          // EC only: NID_X9_62_prime256v1 / NID_secp384r1
  uint16_t group = 0;         // EC only: TLS supported_groups id of the curve
  uint16_t tls13_sigalg = 0;  // EC only: the one TLS 1.3 sigalg it can do
};

// Reads `files`, checks the key matches the leaf and is RSA (>= 2048 bits)
// or ECDSA P-256/P-384.
absl::StatusOr<LoadedCert> LoadCertKey(const CertKeyFiles& files);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_CERT_LOADER_H_
