#include "tls/async_private_key.h"

#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>

#include <cstring>
#include <mutex>
#include <utility>

#include "tls/conn_state.h"

namespace popgate::tls {

// Shared by the connection and the pool job, so a job that outlives its
// connection still has somewhere to write.
struct AsyncSigner::Op {
  std::mutex mu;
  bool done = false;
  bool ok = false;
  bool cancelled = false;
  std::vector<uint8_t> sig;
  std::function<void()> waker;
};

bool SignWithKey(EVP_PKEY* key, uint16_t sigalg, std::span<const uint8_t> in,
                 std::vector<uint8_t>* sig) {
  if (SSL_get_signature_algorithm_key_type(sigalg) != EVP_PKEY_id(key)) {
    return false;
  }
  const EVP_MD* md = SSL_get_signature_algorithm_digest(sigalg);
  bssl::ScopedEVP_MD_CTX ctx;
  EVP_PKEY_CTX* pctx = nullptr;
  if (!EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key)) return false;
  if (SSL_is_signature_algorithm_rsa_pss(sigalg) &&
      (!EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) ||
       !EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1 /* = digest length */))) {
    return false;
  }
  size_t len = 0;
  if (!EVP_DigestSign(ctx.get(), nullptr, &len, in.data(), in.size())) {
    return false;
  }
  sig->resize(len);
  if (!EVP_DigestSign(ctx.get(), sig->data(), &len, in.data(), in.size())) {
    return false;
  }
  sig->resize(len);
  return true;
}

AsyncSigner::~AsyncSigner() {
  if (op_ == nullptr) return;
  std::lock_guard<std::mutex> lock(op_->mu);
  op_->cancelled = true;
  op_->waker = nullptr;
}

void AsyncSigner::SetKey(EVP_PKEY* key) {
  EVP_PKEY_up_ref(key);
  key_.reset(key);
}

const SSL_PRIVATE_KEY_METHOD* AsyncSigner::Method() {
  static const SSL_PRIVATE_KEY_METHOD method = {
      .sign = &AsyncSigner::Sign,
      .decrypt = nullptr,  // no RSA key exchange: TLS 1.2 uses ECDHE only
      .complete = &AsyncSigner::Complete,
  };
  return &method;
}

std::span<const uint16_t> AsyncSigner::RsaSigalgs() {
  static const uint16_t kAlgs[] = {
      SSL_SIGN_RSA_PSS_RSAE_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA384,
      SSL_SIGN_RSA_PSS_RSAE_SHA512, SSL_SIGN_RSA_PKCS1_SHA256,
      SSL_SIGN_RSA_PKCS1_SHA384,    SSL_SIGN_RSA_PKCS1_SHA512,
      SSL_SIGN_RSA_PKCS1_SHA1,  // TLS 1.2 clients without SHA-2 sigalgs
  };
  return kAlgs;
}

enum ssl_private_key_result_t AsyncSigner::Sign(
    SSL* ssl, uint8_t* /*out*/, size_t* /*out_len*/, size_t /*max_out*/,
    uint16_t sigalg, const uint8_t* in, size_t in_len) {
  ConnState* state = GetConnState(ssl);
  if (state == nullptr || state->signer == nullptr ||
      state->signer->key_ == nullptr) {
    return ssl_private_key_failure;
  }
  AsyncSigner* self = state->signer.get();
  auto op = std::make_shared<Op>();
  op->waker = self->waker_;
  self->op_ = op;
  // The job owns copies of everything it needs: the connection may be gone
  // by the time it runs.
  bssl::UniquePtr<EVP_PKEY> key = bssl::UpRef(self->key_.get());
  std::vector<uint8_t> input(in, in + in_len);
  // A bounded queue (HashPool::TrySubmit): under a handshake flood a
  // signature that would wait behind the whole queue fails the handshake
  // now instead of growing memory; BoringSSL turns the failure into an
  // alert and the session logs tls_handshake_failed.
  const bool queued = self->pool_->TrySubmit(
      [op, sigalg, input = std::move(input),
       key = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free)] {
        {
          std::lock_guard<std::mutex> lock(op->mu);
          if (op->cancelled) return;
        }
        std::vector<uint8_t> sig;
        bool ok = SignWithKey(key.get(), sigalg, input, &sig);
        std::lock_guard<std::mutex> lock(op->mu);
        op->sig = std::move(sig);
        op->ok = ok;
        op->done = true;
        // Under the lock so that ~AsyncSigner (which takes it) guarantees no
        // call after the connection is gone. Wakers only post to a ring.
        if (!op->cancelled && op->waker) op->waker();
      });
  if (!queued) {
    self->op_.reset();
    return ssl_private_key_failure;
  }
  return ssl_private_key_retry;
}

enum ssl_private_key_result_t AsyncSigner::Complete(SSL* ssl, uint8_t* out,
                                                    size_t* out_len,
                                                    size_t max_out) {
  ConnState* state = GetConnState(ssl);
  if (state == nullptr || state->signer == nullptr ||
      state->signer->op_ == nullptr) {
    return ssl_private_key_failure;
  }
  std::shared_ptr<Op> op = state->signer->op_;
  std::lock_guard<std::mutex> lock(op->mu);
  if (!op->done) return ssl_private_key_retry;
  state->signer->op_.reset();
  if (!op->ok || op->sig.size() > max_out) return ssl_private_key_failure;
  std::memcpy(out, op->sig.data(), op->sig.size());
  *out_len = op->sig.size();
  return ssl_private_key_success;
}

}  // namespace popgate::tls
