#include "tls/cert_selection.h"

#include <openssl/bytestring.h>
#include <openssl/evp.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"

namespace popgate::tls {
namespace {

constexpr uint16_t kExtSupportedGroups = 10;
constexpr uint16_t kExtSignatureAlgorithms = 13;
constexpr uint16_t kExtSupportedVersions = 43;

std::string Lower(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToLower(&out);
  return out;
}

// Reads a ClientHello extension holding a list of u16 values behind a
// `prefix_bytes`-byte length. False if absent or malformed.
bool GetU16List(const SSL_CLIENT_HELLO* hello, uint16_t type, int prefix_bytes,
                std::vector<uint16_t>* out) {
  const uint8_t* data;
  size_t len;
  if (!SSL_early_callback_ctx_extension_get(hello, type, &data, &len)) {
    return false;
  }
  CBS ext, list;
  CBS_init(&ext, data, len);
  int ok = prefix_bytes == 1 ? CBS_get_u8_length_prefixed(&ext, &list)
                             : CBS_get_u16_length_prefixed(&ext, &list);
  if (!ok || CBS_len(&ext) != 0) return false;
  while (CBS_len(&list) > 0) {
    uint16_t v;
    if (!CBS_get_u16(&list, &v)) return false;
    out->push_back(v);
  }
  return true;
}

bool Contains(const std::vector<uint16_t>& v, uint16_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// TLS 1.2 ECDHE_ECDSA suites BoringSSL implements.
bool OffersEcdsaSuite(const SSL_CLIENT_HELLO* hello) {
  static constexpr uint16_t kSuites[] = {0xc02b, 0xc02c, 0xcca9, 0xc009,
                                         0xc00a, 0xc023, 0xc024};
  CBS suites;
  CBS_init(&suites, hello->cipher_suites, hello->cipher_suites_len);
  while (CBS_len(&suites) >= 2) {
    uint16_t s;
    CBS_get_u16(&suites, &s);
    if (std::find(std::begin(kSuites), std::end(kSuites), s) !=
        std::end(kSuites)) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<CertSelector> CertSelector::Build(
    const std::vector<CertKeyFiles>& default_certs,
    const std::vector<CertGroup>& groups) {
  CertSelector sel;
  sel.groups_.emplace_back();
  for (const CertKeyFiles& f : default_certs) {
    absl::StatusOr<LoadedCert> c = LoadCertKey(f);
    if (!c.ok()) return c.status();
    sel.groups_[0].certs.push_back(std::move(*c));
  }
  for (const CertGroup& g : groups) {
    if (g.certs.empty()) {
      return absl::InvalidArgumentError("certificate group for tenant '" +
                                        g.tenant + "' has no certificate");
    }
    LoadedGroup lg;
    lg.tenant = g.tenant;
    for (const CertKeyFiles& f : g.certs) {
      absl::StatusOr<LoadedCert> c = LoadCertKey(f);
      if (!c.ok()) return c.status();
      lg.certs.push_back(std::move(*c));
    }
    size_t index = sel.groups_.size();
    sel.groups_.push_back(std::move(lg));
    for (const std::string& name : g.names) {
      std::string n = Lower(name);
      bool wild = n.starts_with("*.");
      auto& map = wild ? sel.wildcard_ : sel.exact_;
      std::string key = wild ? n.substr(2) : n;
      if (key.empty() || key.find('*') != std::string::npos) {
        return absl::InvalidArgumentError("bad certificate name '" + name +
                                          "' (exact or *.domain expected)");
      }
      if (!map.emplace(key, index).second) {
        return absl::InvalidArgumentError("certificate name '" + name +
                                          "' is listed twice");
      }
    }
  }
  if (sel.groups_[0].certs.empty() && sel.groups_.size() == 1) {
    return absl::InvalidArgumentError("no TLS certificate configured");
  }
  return sel;
}

const LoadedGroup* CertSelector::ForName(std::string_view sni) const {
  if (!sni.empty()) {
    std::string name = Lower(sni);
    if (auto it = exact_.find(name); it != exact_.end()) {
      return &groups_[it->second];
    }
    // A wildcard covers exactly one label, as in certificate matching.
    if (size_t dot = name.find('.'); dot != std::string::npos && dot > 0) {
      if (auto it = wildcard_.find(name.substr(dot + 1));
          it != wildcard_.end()) {
        return &groups_[it->second];
      }
    }
  }
  if (groups_[0].certs.empty()) return nullptr;
  return &groups_[0];
}

const LoadedCert* CertSelector::Preinstalled() const {
  for (const LoadedCert& c : groups_[0].certs) {
    if (c.key_type == EVP_PKEY_EC) return &c;
  }
  return nullptr;
}

bool ClientAcceptsEcdsa(const SSL_CLIENT_HELLO* hello, const LoadedCert& cert) {
  std::vector<uint16_t> sigalgs;
  // Without the extension a TLS 1.2 client implies SHA-1 only; we do not
  // sign with ECDSA-SHA1, so such clients get RSA.
  if (!GetU16List(hello, kExtSignatureAlgorithms, 2, &sigalgs)) return false;
  std::vector<uint16_t> versions;
  GetU16List(hello, kExtSupportedVersions, 1, &versions);
  if (Contains(versions, TLS1_3_VERSION)) {
    // We speak TLS 1.3, so it will be negotiated; there the sigalg names
    // the curve.
    return Contains(sigalgs, cert.tls13_sigalg);
  }
  // TLS 1.2: any ECDSA hash works, but the client must support the curve
  // and an ECDHE_ECDSA cipher suite.
  bool any_ecdsa = std::any_of(sigalgs.begin(), sigalgs.end(), [](uint16_t a) {
    return SSL_get_signature_algorithm_key_type(a) == EVP_PKEY_EC;
  });
  if (!any_ecdsa || !OffersEcdsaSuite(hello)) return false;
  std::vector<uint16_t> curves;
  if (!GetU16List(hello, kExtSupportedGroups, 2, &curves)) {
    return true;  // RFC 8422: no extension = any curve
  }
  return Contains(curves, cert.group);
}

const LoadedCert& ChooseCert(const LoadedGroup& group,
                             const SSL_CLIENT_HELLO* hello) {
  const LoadedCert* rsa = nullptr;
  for (const LoadedCert& c : group.certs) {
    if (c.key_type == EVP_PKEY_EC && ClientAcceptsEcdsa(hello, c)) return c;
    if (c.key_type == EVP_PKEY_RSA && rsa == nullptr) rsa = &c;
  }
  // No usable ECDSA certificate: RSA if we have one, else let the
  // handshake try (and fail cleanly) with the first.
  return rsa != nullptr ? *rsa : group.certs.front();
}

}  // namespace popgate::tls
