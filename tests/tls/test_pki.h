// Throw-away PKI for the TLS tests, made at test time with BoringSSL (no
// keys in the repository): a CA, leaves with SANs (ECDSA P-256 and RSA-2048),
// an expired leaf and a leaf from a CA nobody trusts, as PEM files in a
// temporary directory.
#ifndef POPGATE_TESTS_TLS_TEST_PKI_H_
#define POPGATE_TESTS_TLS_TEST_PKI_H_

#include <string>
#include <vector>

#include "tls/tls_context.h"

namespace popgate::tls::testing {

struct TestPki {
  std::string dir;
  std::string ca_file;      // the trusted CA
  CertKeyFiles ecdsa;       // CN/SAN mail.example.test, P-256
  CertKeyFiles rsa;         // CN/SAN mail.example.test, RSA-2048
  CertKeyFiles acme_ecdsa;  // CN mail.acme.test, SAN + *.acme.net
  CertKeyFiles acme_rsa;    // same names, RSA
  CertKeyFiles expired;     // mail.example.test, expired yesterday
  CertKeyFiles untrusted;   // mail.example.test from an unknown CA
  CertKeyFiles client;      // a client certificate (ECDSA)
};

// Built once per test binary (RSA key generation is slow under ASan).
const TestPki& Pki();

// Writes `contents` to a new file in Pki().dir and returns its path.
std::string WriteTempFile(const std::string& name, const std::string& contents);

}  // namespace popgate::tls::testing

#endif  // POPGATE_TESTS_TLS_TEST_PKI_H_
