#include "proxy/tls/ticket_keys.h"

#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"

namespace popgate::tls {
namespace {

// Changing this string changes every derived key: bump it only together
// with an incompatible ticket format change.
constexpr char kSalt[] = "popgate session ticket keys v1";

// Periods we keep derived keys for (current, 2 previous, 1 spare).
constexpr size_t kCacheSize = 4;

}  // namespace

absl::StatusOr<std::shared_ptr<TicketKeys>> TicketKeys::Create(
    absl::Duration rotation, const std::string& key_file) {
  if (rotation < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        "session ticket key rotation must be at least 1s");
  }
  std::shared_ptr<TicketKeys> keys(new TicketKeys());
  keys->rotation_ = rotation;
  if (key_file.empty()) {
    RAND_bytes(keys->secret_.data(), keys->secret_.size());
    return keys;
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
    OPENSSL_cleanse(contents.data(), contents.size());
    return absl::InvalidArgumentError(
        "ticket key file " + key_file +
        ": needs at least 32 bytes of secret (e.g. `head -c 48 /dev/urandom "
        "> FILE`)");
  }
  // Hashing accepts any format (raw, hex, base64) and yields a uniform key.
  SHA256(reinterpret_cast<const uint8_t*>(contents.data()), contents.size(),
         keys->secret_.data());
  OPENSSL_cleanse(contents.data(), contents.size());
  return keys;
}

TicketKeys::~TicketKeys() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
  for (auto& [period, key] : cache_) OPENSSL_cleanse(&key, sizeof(key));
}

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
  OPENSSL_cleanse(out, sizeof(out));
  return key;
}

TicketKey TicketKeys::KeyForPeriod(int64_t period) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [p, key] : cache_) {
    if (p == period) return key;
  }
  TicketKey key = Derive(period);
  if (cache_.size() >= kCacheSize) {
    // Evict the oldest period: time only moves forward.
    auto oldest = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->first < oldest->first) oldest = it;
    }
    OPENSSL_cleanse(&oldest->second, sizeof(oldest->second));
    cache_.erase(oldest);
  }
  cache_.emplace_back(period, key);
  return key;
}

TicketKey TicketKeys::Current(absl::Time now) {
  return KeyForPeriod(Period(now));
}

std::optional<TicketKey> TicketKeys::Find(const uint8_t name[16],
                                          absl::Time now, bool* renew) {
  int64_t current = Period(now);
  for (int64_t p = current; p >= current - 2; --p) {
    TicketKey key = KeyForPeriod(p);
    if (CRYPTO_memcmp(key.name.data(), name, key.name.size()) == 0) {
      *renew = p != current;
      return key;
    }
  }
  return std::nullopt;
}

}  // namespace popgate::tls
