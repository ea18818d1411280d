// Asynchronous private-key signing: BoringSSL asks for a signature, we hand
// the work to a thread pool and return ssl_private_key_retry; the handshake
// reports kWantAsync, the pool calls the connection's waker when the
// signature is ready, and BoringSSL's `complete` picks it up. Used for RSA,
// whose signatures cost ~1 ms, so io_uring workers never stall on them.
#ifndef POPGATE_TLS_ASYNC_PRIVATE_KEY_H_
#define POPGATE_TLS_ASYNC_PRIVATE_KEY_H_

#include <openssl/base.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "auth/hash_pool.h"

namespace popgate::tls {

// Signs `in` with `key` per the TLS signature algorithm `sigalg`.
bool SignWithKey(EVP_PKEY* key, uint16_t sigalg, std::span<const uint8_t> in,
                 std::vector<uint8_t>* sig);

// One per connection. Not thread-safe except for the pool side, which only
// touches the shared operation record.
class AsyncSigner {
 public:
  explicit AsyncSigner(auth::HashPool* pool) : pool_(pool) {}
  // Cancels a pending operation: after this returns the waker is never
  // called (the pool calls it under the operation's lock).
  ~AsyncSigner();
  AsyncSigner(const AsyncSigner&) = delete;
  AsyncSigner& operator=(const AsyncSigner&) = delete;

  // The key the next signature uses (reference taken).
  void SetKey(EVP_PKEY* key);
  void SetWaker(std::function<void()> waker) { waker_ = std::move(waker); }

  // The method to pass to SSL_set_chain_and_key; finds the signer through
  // GetConnState(ssl)->signer.
  static const SSL_PRIVATE_KEY_METHOD* Method();
  // RSA signature algorithms to announce with SSL_set_signing_algorithm_prefs
  // (a custom key method has no key for BoringSSL to derive them from).
  static std::span<const uint16_t> RsaSigalgs();

 private:
  struct Op;
  static enum ssl_private_key_result_t Sign(SSL* ssl, uint8_t* out,
                                            size_t* out_len, size_t max_out,
                                            uint16_t sigalg, const uint8_t* in,
                                            size_t in_len);
  static enum ssl_private_key_result_t Complete(SSL* ssl, uint8_t* out,
                                                size_t* out_len,
                                                size_t max_out);

  auth::HashPool* pool_;
  bssl::UniquePtr<EVP_PKEY> key_;
  std::function<void()> waker_;
  std::shared_ptr<Op> op_;  // pending operation, shared with the pool job
};

}  // namespace popgate::tls

#endif  // POPGATE_TLS_ASYNC_PRIVATE_KEY_H_
