#include "tls/cert_loader.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/status/status.h"
#include "base/wipe.h"
#include "tls/tls_errors.h"

namespace popgate::tls {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(std::string(what) + " " + path +
                                      ": cannot open: " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status FileError(const char* what, const std::string& path,
                       const std::string& reason) {
  // The queue may hold PEM parser details; they describe structure, not
  // content, but we only need our own reason here.
  ERR_clear_error();
  return absl::InvalidArgumentError(std::string(what) + " " + path + ": " +
                                    reason);
}

// Parses every CERTIFICATE block of `pem`, leaf first.
absl::Status LoadChain(const std::string& path, const std::string& pem,
                       LoadedCert* out) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), pem.size()));
  for (;;) {
    bssl::UniquePtr<X509> x(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (x == nullptr) break;
    uint8_t* der = nullptr;
    int len = i2d_X509(x.get(), &der);
    if (len <= 0) return FileError("cert_file", path, "cannot encode");
    bssl::UniquePtr<uint8_t> der_owner(der);
    out->chain.emplace_back(
        CRYPTO_BUFFER_new(der, static_cast<size_t>(len), nullptr));
  }
  // Running off the end of the input is the normal way the loop stops.
  uint32_t err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM &&
                    ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
    return FileError("cert_file", path,
                     "bad PEM certificate: " + DrainErrorQueue());
  }
  ERR_clear_error();
  if (out->chain.empty()) {
    return FileError("cert_file", path, "no PEM certificate found");
  }
  for (auto& b : out->chain) out->chain_ptrs.push_back(b.get());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoadedCert> LoadCertKey(const CertKeyFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a certificate needs both cert_file and key_file");
  }
  LoadedCert out;
  out.cert_file = files.cert_file;
  absl::StatusOr<std::string> cert_pem = ReadFile(files.cert_file, "cert_file");
  if (!cert_pem.ok()) return cert_pem.status();
  if (absl::Status s = LoadChain(files.cert_file, *cert_pem, &out); !s.ok()) {
    return s;
  }

  absl::StatusOr<std::string> key_pem = ReadFile(files.key_file, "key_file");
  if (!key_pem.ok()) return key_pem.status();
  {
    bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(key_pem->data(), key_pem->size()));
    out.key.reset(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  // The PEM text is key material: do not leave it in freed heap memory.
  WipeBytes(key_pem->data(), key_pem->size());
  if (out.key == nullptr) {
    return FileError("key_file", files.key_file,
                     "no PEM private key found (encrypted keys are not "
                     "supported)");
  }

  // The key must belong to the leaf certificate.
  const uint8_t* der = CRYPTO_BUFFER_data(out.chain[0].get());
  bssl::UniquePtr<X509> leaf(
      d2i_X509(nullptr, &der, CRYPTO_BUFFER_len(out.chain[0].get())));
  if (leaf == nullptr) {
    return FileError("cert_file", files.cert_file, "cannot parse leaf");
  }
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey(leaf.get()));
  if (pub == nullptr || EVP_PKEY_cmp(pub.get(), out.key.get()) != 1) {
    return FileError("key_file", files.key_file,
                     "does not match the certificate in " + files.cert_file);
  }

  out.key_type = EVP_PKEY_id(out.key.get());
  if (out.key_type == EVP_PKEY_RSA) {
    if (EVP_PKEY_bits(out.key.get()) < 2048) {
      return FileError("key_file", files.key_file,
                       "RSA keys must have at least 2048 bits");
    }
  } else if (out.key_type == EVP_PKEY_EC) {
    const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(out.key.get());
    out.curve_nid = EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
    if (out.curve_nid == NID_X9_62_prime256v1) {
      out.group = SSL_CURVE_SECP256R1;
      out.tls13_sigalg = SSL_SIGN_ECDSA_SECP256R1_SHA256;
    } else if (out.curve_nid == NID_secp384r1) {
      out.group = SSL_CURVE_SECP384R1;
      out.tls13_sigalg = SSL_SIGN_ECDSA_SECP384R1_SHA384;
    } else {
      return FileError("key_file", files.key_file,
                       "ECDSA keys must be on P-256 or P-384");
    }
  } else {
    return FileError("key_file", files.key_file,
                     "unsupported key type (RSA or ECDSA expected)");
  }
  return out;
}

}  // namespace popgate::tls
