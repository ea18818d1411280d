#include "tls/ktls_material.h"

#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/wipe.h"

namespace popgate::tls {
namespace {

void WipeDirection(KtlsDirection& d) {
  WipeBytes(d.key.data(), d.key.size());
  WipeBytes(d.nonce_base.data(), d.nonce_base.size());
}

// RFC 8446 7.1: HKDF-Expand-Label(secret, label, "", length).
bool ExpandLabel(const EVP_MD* md, std::span<const uint8_t> secret,
                 const std::string& label, uint8_t* out, size_t len) {
  std::string full = "tls13 " + label;
  std::vector<uint8_t> info;
  info.push_back(static_cast<uint8_t>(len >> 8));
  info.push_back(static_cast<uint8_t>(len));
  info.push_back(static_cast<uint8_t>(full.size()));
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);  // empty context
  return HKDF_expand(out, len, md, secret.data(), secret.size(), info.data(),
                     info.size()) == 1;
}

bool Tls13Direction(const EVP_MD* md, std::span<const uint8_t> secret,
                    size_t key_len, KtlsDirection& d) {
  if (secret.empty() || secret.size() != EVP_MD_size(md)) return false;
  d.key_len = key_len;
  return ExpandLabel(md, secret, "key", d.key.data(), key_len) &&
         ExpandLabel(md, secret, "iv", d.nonce_base.data(),
                     d.nonce_base.size());
}

void PutSeq(uint64_t seq, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(seq);
    seq >>= 8;
  }
}

}  // namespace

KtlsMaterial::~KtlsMaterial() {
  WipeDirection(tx);
  WipeDirection(rx);
}

KtlsMaterial::KtlsMaterial(KtlsMaterial&& other) noexcept
    : version(other.version), cipher(other.cipher), tx(other.tx), rx(other.rx) {
  WipeDirection(other.tx);
  WipeDirection(other.rx);
}

absl::StatusOr<KtlsMaterial> ExportKtlsMaterial(const SSL* ssl,
                                                const TrafficSecrets& secrets,
                                                bool is_server) {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  if (c == nullptr || SSL_in_init(ssl)) {
    return absl::FailedPreconditionError("handshake not done");
  }
  KtlsMaterial m;
  size_t key_len = 0;
  size_t tls12_iv_len = 0;  // fixed IV bytes in the TLS 1.2 key block
  switch (SSL_CIPHER_get_cipher_nid(c)) {
    case NID_aes_128_gcm:
      m.cipher = KtlsCipher::kAes128Gcm;
      key_len = 16;
      tls12_iv_len = 4;
      break;
    case NID_aes_256_gcm:
      m.cipher = KtlsCipher::kAes256Gcm;
      key_len = 32;
      tls12_iv_len = 4;
      break;
    case NID_chacha20_poly1305:
      m.cipher = KtlsCipher::kChacha20Poly1305;
      key_len = 32;
      tls12_iv_len = 12;
      break;
    default:
      return absl::FailedPreconditionError(
          std::string("cipher not offered by kernel TLS: ") +
          SSL_CIPHER_get_name(c));
  }
  m.version = SSL_version(ssl);
  m.tx.seq = SSL_get_write_sequence(ssl);
  m.rx.seq = SSL_get_read_sequence(ssl);
  KtlsDirection& client_dir = is_server ? m.rx : m.tx;
  KtlsDirection& server_dir = is_server ? m.tx : m.rx;

  if (m.version == TLS1_3_VERSION) {
    const EVP_MD* md = EVP_get_digestbynid(SSL_CIPHER_get_prf_nid(c));
    if (md == nullptr) return absl::InternalError("no digest for the PRF");
    if (!Tls13Direction(md, secrets.client(), key_len, client_dir) ||
        !Tls13Direction(md, secrets.server(), key_len, server_dir)) {
      return absl::FailedPreconditionError(
          "TLS 1.3 traffic secrets were not captured");
    }
    return m;
  }
  if (m.version != TLS1_2_VERSION) {
    return absl::FailedPreconditionError(
        "TLS version not offered by kernel TLS");
  }
  // RFC 5246 6.3 with AEADs (no MAC keys): client key, server key, client
  // IV, server IV.
  size_t block_len = SSL_get_key_block_len(ssl);
  if (block_len != 2 * (key_len + tls12_iv_len)) {
    return absl::InternalError("unexpected TLS 1.2 key block length");
  }
  std::array<uint8_t, 2 * (32 + 12)> block{};
  if (!SSL_generate_key_block(ssl, block.data(), block_len)) {
    return absl::InternalError("cannot derive the TLS 1.2 key block");
  }
  const uint8_t* p = block.data();
  for (KtlsDirection* d : {&client_dir, &server_dir}) {
    d->key_len = key_len;
    std::copy(p, p + key_len, d->key.begin());
    p += key_len;
  }
  for (KtlsDirection* d : {&client_dir, &server_dir}) {
    std::copy(p, p + tls12_iv_len, d->nonce_base.begin());
    p += tls12_iv_len;
    if (tls12_iv_len == 4) PutSeq(d->seq, d->nonce_base.data() + 4);
  }
  WipeBytes(block.data(), block.size());
  return m;
}

}  // namespace popgate::tls
