// What the kernel needs to carry on a TLS connection that BoringSSL
// started: cipher, per-direction key, nonce base and the next record
// sequence number. Derived from the connection after its handshake (TLS
// 1.3: HKDF-Expand-Label on the captured traffic secrets, RFC 8446 7.3;
// TLS 1.2: the key block, RFC 5246 6.3), for the AEADs the kernel
// implements: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305.
#ifndef POPGATE_TLS_KTLS_MATERIAL_H_
#define POPGATE_TLS_KTLS_MATERIAL_H_

#include <openssl/base.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "tls/traffic_secrets.h"

namespace popgate::tls {

enum class KtlsCipher { kAes128Gcm, kAes256Gcm, kChacha20Poly1305 };

struct KtlsDirection {
  std::array<uint8_t, 32> key{};
  size_t key_len = 0;
  // The 12-byte per-record nonce before the sequence number is mixed in.
  // TLS 1.3 and ChaCha20: the write IV, XORed with the sequence number.
  // TLS 1.2 AES-GCM: 4-byte implicit salt, then the 8-byte explicit nonce
  // of the next record (we, like BoringSSL, use the sequence number).
  std::array<uint8_t, 12> nonce_base{};
  uint64_t seq = 0;  // sequence number of the next record
};

struct KtlsMaterial {
  uint16_t version = 0;  // 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3)
  KtlsCipher cipher = KtlsCipher::kAes128Gcm;
  KtlsDirection tx;  // what we send
  KtlsDirection rx;  // what we receive

  KtlsMaterial() = default;
  ~KtlsMaterial();  // wipes the keys
  KtlsMaterial(const KtlsMaterial&) = delete;
  KtlsMaterial& operator=(const KtlsMaterial&) = delete;
  KtlsMaterial(KtlsMaterial&& other) noexcept;
  KtlsMaterial& operator=(KtlsMaterial&&) = delete;
};

// Derives the material of `ssl` (handshake done) for our side (`is_server`).
// Fails with FailedPrecondition (the connection stays usable in user space)
// for versions or ciphers the kernel does not take, or TLS 1.3 secrets that
// were not captured.
absl::StatusOr<KtlsMaterial> ExportKtlsMaterial(const SSL* ssl,
                                                const TrafficSecrets& secrets,
                                                bool is_server);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_KTLS_MATERIAL_H_
