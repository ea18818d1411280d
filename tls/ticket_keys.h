// Session-ticket keys shared by every worker (and, with a key file, by every
// popgate instance): the current key encrypts new tickets, the previous ones
// still decrypt, and keys rotate every `rotation` period. With a key file,
// each period's key is derived from the file's secret and the period number
// (HKDF), so instances sharing the file agree without talking.
#ifndef POPGATE_TLS_TICKET_KEYS_H_
#define POPGATE_TLS_TICKET_KEYS_H_

#include <openssl/base.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace popgate::tls {

struct TicketKey {
  std::array<uint8_t, 16> name;
  std::array<uint8_t, 32> hmac_key;
  std::array<uint8_t, 32> aes_key;  // AES-256-CBC per the ticket callback
};

class TicketKeys {
 public:
  // `key_file`: empty = random secret per process. The file holds at least
  // 32 bytes of secret (raw, or any content: it is hashed).
  static absl::StatusOr<std::shared_ptr<TicketKeys>> Create(
      absl::Duration rotation, const std::string& key_file);

  // Re-reads the secret (a reload): from now on new tickets use keys
  // derived from `key_file`'s contents (empty: a new random secret), and
  // tickets made under the previous secret are no longer accepted (their
  // clients get a full handshake). On an error nothing changes. Returns
  // whether the secret differs from the one in force.
  absl::StatusOr<bool> SetKeyFile(const std::string& key_file);

  // Key for new tickets at `now`.
  TicketKey Current(absl::Time now);
  // Key with this name if still accepted (current or the 2 before it), and
  // whether the ticket should be renewed (it was not made with the current).
  std::optional<TicketKey> Find(const uint8_t name[16], absl::Time now,
                                bool* renew);

  // The body of the SSL_CTX_set_tlsext_ticket_key_cb callback (same
  // arguments and return values): AES-256-CBC + HMAC-SHA256 under the key
  // of Now(). The HMAC key schedule is done once per key, not per ticket:
  // `hmac_ctx` is a copy of a context keyed when the key was derived.
  int InitTicketCrypto(uint8_t key_name[16], uint8_t* iv,
                       EVP_CIPHER_CTX* cipher_ctx, HMAC_CTX* hmac_ctx,
                       int encrypt);

  ~TicketKeys();  // wipes the secret and derived keys
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  absl::Duration rotation() const { return rotation_; }
  // The time the TLS ticket callback uses: absl::Now() unless a test clock
  // is set (so tests can age tickets by whole rotation periods).
  absl::Time Now() const;
  void SetClockForTesting(std::function<absl::Time()> clock);

 private:
  // A derived key with its HMAC context already keyed. Immutable once
  // built, so workers copy from it concurrently without a lock; shared so
  // that eviction never frees one still being copied.
  struct Prepared;

  TicketKeys() = default;
  // The 32-byte secret for `key_file` (random if empty). Errors name the
  // file, never its contents.
  static absl::Status ReadSecret(const std::string& key_file,
                                 std::array<uint8_t, 32>& secret);
  TicketKey Derive(int64_t period) const;
  int64_t Period(absl::Time now) const;
  std::shared_ptr<const Prepared> KeyForPeriod(int64_t period);
  std::shared_ptr<const Prepared> FindPrepared(const uint8_t name[16],
                                               absl::Time now, bool* renew);

  absl::Duration rotation_;
  mutable std::mutex clock_mu_;
  std::function<absl::Time()> clock_;
  std::mutex mu_;
  std::array<uint8_t, 32> secret_{};  // guarded by mu_ once shared
  // Small cache of derived keys (current, 2 previous, 1 spare).
  std::vector<std::shared_ptr<const Prepared>> cache_;
};

}  // namespace popgate::tls

#endif  // POPGATE_TLS_TICKET_KEYS_H_
