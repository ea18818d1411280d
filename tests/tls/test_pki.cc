#include "tests/tls/test_pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace popgate::tls::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

bssl::UniquePtr<EVP_PKEY> NewEcKey() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  Check(ec && EC_KEY_generate_key(ec.get()), "EC key");
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  Check(EVP_PKEY_assign_EC_KEY(pkey.get(), ec.release()), "EC assign");
  return pkey;
}

bssl::UniquePtr<EVP_PKEY> NewRsaKey() {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  Check(BN_set_word(e.get(), RSA_F4) &&
            RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr),
        "RSA key");
  bssl::UniquePtr<EVP_PKEY> pkey(EVP_PKEY_new());
  Check(EVP_PKEY_assign_RSA(pkey.get(), rsa.release()), "RSA assign");
  return pkey;
}

bssl::UniquePtr<X509_NAME> Name(const std::string& cn) {
  bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
  Check(X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const uint8_t*>(cn.c_str()),
                                   -1, -1, 0),
        "name");
  return name;
}

struct Issuer {
  X509_NAME* name;
  EVP_PKEY* key;
};

// Makes a certificate for `key`; self-signed if `issuer` is null.
bssl::UniquePtr<X509> MakeCert(const std::string& cn,
                               const std::vector<std::string>& sans,
                               EVP_PKEY* key, const Issuer* issuer, bool ca,
                               long not_before, long not_after) {
  static long serial = 1;
  bssl::UniquePtr<X509> x(X509_new());
  bssl::UniquePtr<X509_NAME> subject = Name(cn);
  Check(X509_set_version(x.get(), X509_VERSION_3) &&
            ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++) &&
            X509_gmtime_adj(X509_getm_notBefore(x.get()), not_before) &&
            X509_gmtime_adj(X509_getm_notAfter(x.get()), not_after) &&
            X509_set_subject_name(x.get(), subject.get()) &&
            X509_set_issuer_name(x.get(),
                                 issuer ? issuer->name : subject.get()) &&
            X509_set_pubkey(x.get(), key),
        "cert fields");
  if (ca) {
    bssl::UniquePtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
    bc->ca = 0xff;  // ASN1_BOOLEAN true
    Check(X509_add1_ext_i2d(x.get(), NID_basic_constraints, bc.get(), 1,
                            X509V3_ADD_DEFAULT),
          "basic constraints");
  }
  if (!sans.empty()) {
    GENERAL_NAMES* gens = sk_GENERAL_NAME_new_null();
    for (const std::string& san : sans) {
      GENERAL_NAME* gen = GENERAL_NAME_new();
      ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
      Check(ASN1_STRING_set(ia5, san.data(), static_cast<int>(san.size())),
            "SAN");
      GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
      sk_GENERAL_NAME_push(gens, gen);
    }
    int ok = X509_add1_ext_i2d(x.get(), NID_subject_alt_name, gens, 0,
                               X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    Check(ok, "SAN ext");
  }
  Check(X509_sign(x.get(), issuer ? issuer->key : key, EVP_sha256()), "sign");
  return x;
}

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "w"));
  Check(bio != nullptr, "open");
  if (cert) Check(PEM_write_bio_X509(bio.get(), cert), "write cert");
  if (key) {
    Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                   nullptr),
          "write key");
  }
}

constexpr long kDay = 24 * 3600;

TestPki* MakePki() {
  auto* pki = new TestPki();
  char tmpl[] = "/tmp/popgate-tls-test-XXXXXX";
  Check(mkdtemp(tmpl) != nullptr, "mkdtemp");
  pki->dir = tmpl;
  auto path = [&](const std::string& f) { return pki->dir + "/" + f; };

  bssl::UniquePtr<EVP_PKEY> ca_key = NewEcKey();
  bssl::UniquePtr<X509> ca = MakeCert("popgate test CA", {}, ca_key.get(),
                                      nullptr, true, -kDay, 30 * kDay);
  pki->ca_file = path("ca.pem");
  WritePem(pki->ca_file, ca.get(), nullptr);
  Issuer issuer{X509_get_subject_name(ca.get()), ca_key.get()};

  bssl::UniquePtr<EVP_PKEY> rsa_key = NewRsaKey();
  auto leaf = [&](const std::string& stem, const std::string& cn,
                  std::vector<std::string> sans, EVP_PKEY* key,
                  const Issuer* by, long nb, long na) {
    bssl::UniquePtr<X509> x = MakeCert(cn, sans, key, by, false, nb, na);
    CertKeyFiles f{path(stem + ".crt"), path(stem + ".key")};
    // The chain file carries the leaf then the CA, as in production.
    {
      bssl::UniquePtr<BIO> bio(BIO_new_file(f.cert_file.c_str(), "w"));
      Check(PEM_write_bio_X509(bio.get(), x.get()), "write leaf");
      if (by == &issuer) {
        Check(PEM_write_bio_X509(bio.get(), ca.get()), "write chain");
      }
    }
    WritePem(f.key_file, nullptr, key);
    return f;
  };
  bssl::UniquePtr<EVP_PKEY> ec1 = NewEcKey(), ec2 = NewEcKey(),
                            ec3 = NewEcKey(), ec4 = NewEcKey(),
                            ec5 = NewEcKey();
  pki->ecdsa = leaf("ecdsa", "mail.example.test", {"mail.example.test"},
                    ec1.get(), &issuer, -kDay, 30 * kDay);
  pki->rsa = leaf("rsa", "mail.example.test", {"mail.example.test"},
                  rsa_key.get(), &issuer, -kDay, 30 * kDay);
  pki->acme_ecdsa =
      leaf("acme-ecdsa", "mail.acme.test", {"mail.acme.test", "*.acme.net"},
           ec2.get(), &issuer, -kDay, 30 * kDay);
  pki->acme_rsa =
      leaf("acme-rsa", "mail.acme.test", {"mail.acme.test", "*.acme.net"},
           rsa_key.get(), &issuer, -kDay, 30 * kDay);
  pki->expired = leaf("expired", "mail.example.test", {"mail.example.test"},
                      ec3.get(), &issuer, -30 * kDay, -kDay);
  pki->client = leaf("client", "popgate client", {}, ec5.get(), &issuer, -kDay,
                     30 * kDay);

  bssl::UniquePtr<EVP_PKEY> other_ca_key = NewEcKey();
  bssl::UniquePtr<X509> other_ca =
      MakeCert("someone else's CA", {}, other_ca_key.get(), nullptr, true,
               -kDay, 30 * kDay);
  Issuer other{X509_get_subject_name(other_ca.get()), other_ca_key.get()};
  pki->untrusted = leaf("untrusted", "mail.example.test", {"mail.example.test"},
                        ec4.get(), &other, -kDay, 30 * kDay);
  return pki;
}

}  // namespace

const TestPki& Pki() {
  static const TestPki* pki = [] {
    TestPki* p = MakePki();
    std::atexit([] { std::filesystem::remove_all(Pki().dir); });
    return p;
  }();
  return *pki;
}

std::string WriteTempFile(const std::string& name,
                          const std::string& contents) {
  std::string path = Pki().dir + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

}  // namespace popgate::tls::testing
