#include "tls/ticket_keys.h"

#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "base/wipe.h"

namespace popgate::tls {
namespace {

// Changing this string changes every derived key: bump it only together
// with an incompatible ticket format change.
constexpr char kSalt[] = "popgate session ticket keys v1";

// Periods we keep derived keys for (current, 2 previous, 1 spare).
constexpr size_t kCacheSize = 4;

}  // namespace

struct TicketKeys::Prepared {
  int64_t period = 0;
  TicketKey key;
  bssl::ScopedHMAC_CTX hmac;  // keyed with key.hmac_key; wiped on cleanup
  ~Prepared() { WipeBytes(&key, sizeof(key)); }
};

absl::Status TicketKeys::ReadSecret(const std::string& key_file,
                                    std::array<uint8_t, 32>& secret) {
  if (key_file.empty()) {
    RAND_bytes(secret.data(), secret.size());
    return absl::OkStatus();
  }
  std::ifstream in(key_file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError("ticket key file " + key_file +
                                      ": cannot open: " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string contents = ss.str();
  if (contents.size() < 32) {
    WipeBytes(contents.data(), contents.size());
    return absl::InvalidArgumentError(
        "ticket key file " + key_file +
        ": needs at least 32 bytes of secret (e.g. `head -c 48 /dev/urandom "
        "> FILE`)");
  }
  // Hashing accepts any format (raw, hex, base64) and yields a uniform key.
  SHA256(reinterpret_cast<const uint8_t*>(contents.data()), contents.size(),
         secret.data());
  WipeBytes(contents.data(), contents.size());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<TicketKeys>> TicketKeys::Create(
    absl::Duration rotation, const std::string& key_file) {
  if (rotation < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "session ticket key rotation must be at least 1s");
  }
  std::shared_ptr<TicketKeys> keys(new TicketKeys());
  keys->rotation_ = rotation;
  if (absl::Status s = ReadSecret(key_file, keys->secret_); !s.ok()) return s;
  return keys;
}

absl::StatusOr<bool> TicketKeys::SetKeyFile(const std::string& key_file) {
  std::array<uint8_t, 32> secret{};
  if (absl::Status s = ReadSecret(key_file, secret); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  const bool changed =
      CRYPTO_memcmp(secret.data(), secret_.data(), secret.size()) != 0;
  if (changed) {
    secret_ = secret;
    // Keys in use elsewhere stay alive (shared) until their user is done.
    cache_.clear();
  }
  WipeBytes(secret.data(), secret.size());
  return changed;
}

// Cached keys wipe themselves when their last user lets go.
TicketKeys::~TicketKeys() { WipeBytes(secret_.data(), secret_.size()); }

absl::Time TicketKeys::Now() const {
  std::lock_guard<std::mutex> lock(clock_mu_);
  return clock_ ? clock_() : absl::Now();
}

void TicketKeys::SetClockForTesting(std::function<absl::Time()> clock) {
  std::lock_guard<std::mutex> lock(clock_mu_);
  clock_ = std::move(clock);
}

int64_t TicketKeys::Period(absl::Time now) const {
  absl::Duration rem;
  return absl::IDivDuration(now - absl::UnixEpoch(), rotation_, &rem);
}

TicketKey TicketKeys::Derive(int64_t period) const {
  uint8_t info[8];
  for (int i = 0; i < 8; ++i) {
    info[i] =
        static_cast<uint8_t>(static_cast<uint64_t>(period) >> (56 - 8 * i));
  }
  uint8_t out[sizeof(TicketKey::name) + sizeof(TicketKey::hmac_key) +
              sizeof(TicketKey::aes_key)];
  HKDF(out, sizeof(out), EVP_sha256(), secret_.data(), secret_.size(),
       reinterpret_cast<const uint8_t*>(kSalt), sizeof(kSalt) - 1, info,
       sizeof(info));
  TicketKey key;
  std::memcpy(key.name.data(), out, 16);
  std::memcpy(key.hmac_key.data(), out + 16, 32);
  std::memcpy(key.aes_key.data(), out + 48, 32);
  WipeBytes(out, sizeof(out));
  return key;
}

std::shared_ptr<const TicketKeys::Prepared> TicketKeys::KeyForPeriod(
    int64_t period) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& p : cache_) {
    if (p->period == period) return p;
  }
  auto p = std::make_shared<Prepared>();
  p->period = period;
  p->key = Derive(period);
  if (!HMAC_Init_ex(p->hmac.get(), p->key.hmac_key.data(),
                    p->key.hmac_key.size(), EVP_sha256(), nullptr)) {
    return nullptr;  // allocation failure: the callback fails the ticket
  }
  if (cache_.size() >= kCacheSize) {
    // Evict the oldest period: time only moves forward.
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if ((*it)->period < (*oldest)->period) oldest = it;
    }
    cache_.erase(oldest);
  }
  cache_.push_back(p);
  return p;
}

std::shared_ptr<const TicketKeys::Prepared> TicketKeys::FindPrepared(
    const uint8_t name[16], absl::Time now, bool* renew) {
  int64_t current = Period(now);
  for (int64_t p = current; p >= current - 2; --p) {
    std::shared_ptr<const Prepared> key = KeyForPeriod(p);
    if (key != nullptr &&
        CRYPTO_memcmp(key->key.name.data(), name, key->key.name.size()) == 0) {
      *renew = p != current;
      return key;
    }
  }
  return nullptr;
}

TicketKey TicketKeys::Current(absl::Time now) {
  std::shared_ptr<const Prepared> p = KeyForPeriod(Period(now));
  return p != nullptr ? p->key : TicketKey{};
}

std::optional<TicketKey> TicketKeys::Find(const uint8_t name[16],
                                          absl::Time now, bool* renew) {
  std::shared_ptr<const Prepared> p = FindPrepared(name, now, renew);
  if (p == nullptr) return std::nullopt;
  return p->key;
}

int TicketKeys::InitTicketCrypto(uint8_t key_name[16], uint8_t* iv,
                                 EVP_CIPHER_CTX* cipher_ctx, HMAC_CTX* hmac_ctx,
                                 int encrypt) {
  absl::Time now = Now();
  if (encrypt) {
    std::shared_ptr<const Prepared> p = KeyForPeriod(Period(now));
    if (p == nullptr) return -1;
    std::memcpy(key_name, p->key.name.data(), p->key.name.size());
    if (!RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) ||
        !EVP_EncryptInit_ex(cipher_ctx, EVP_aes_256_cbc(), nullptr,
                            p->key.aes_key.data(), iv) ||
        !HMAC_CTX_copy_ex(hmac_ctx, p->hmac.get())) {
      return -1;
    }
    return 1;
  }
  bool renew = false;
  std::shared_ptr<const Prepared> p = FindPrepared(key_name, now, &renew);
  if (p == nullptr) return 0;  // unknown or expired key: full handshake
  if (!EVP_DecryptInit_ex(cipher_ctx, EVP_aes_256_cbc(), nullptr,
                          p->key.aes_key.data(), iv) ||
      !HMAC_CTX_copy_ex(hmac_ctx, p->hmac.get())) {
    return -1;
  }
  return renew ? 2 : 1;
}

}  // namespace popgate::tls
