#include "tls/tls_engine.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tls/async_private_key.h"
#include "tls/conn_state.h"
#include "tls/ktls_material.h"
#include "tls/server_context_impl.h"
#include "tls/tls_context.h"
#include "tls/tls_errors.h"

namespace popgate::tls {

namespace {

// Follows the record framing of the bytes handed to BoringSSL, so that we
// know whether it holds the start of a record it could not finish yet
// (it reads header and body as far as they go). Kernel TLS can take over
// reading only at a record boundary.
class RecordTracker {
 public:
  void Consume(const char* p, size_t n) {
    while (n > 0) {
      if (body_left_ > 0) {
        size_t t = std::min(n, body_left_);
        body_left_ -= t;
        p += t;
        n -= t;
        continue;
      }
      header_[header_got_++] = static_cast<uint8_t>(*p++);
      --n;
      if (header_got_ == sizeof(header_)) {
        body_left_ = static_cast<size_t>(header_[3]) << 8 | header_[4];
        header_got_ = 0;
      }
    }
  }
  bool AtBoundary() const { return header_got_ == 0 && body_left_ == 0; }

 private:
  uint8_t header_[5] = {};  // type, version (2), length (2)
  size_t header_got_ = 0;
  size_t body_left_ = 0;
};

// Ciphertext in both directions. Vectors rather than a fixed BIO pair so
// that they can grow to a whole flight and be freed when idle.
struct CipherBuffers {
  RecordTracker read_framing;  // what BoringSSL has taken from `in`
  std::vector<char> in;
  size_t in_off = 0;  // consumed prefix of `in`
  std::vector<char> out;
  size_t out_off = 0;  // sent prefix of `out`
};

}  // namespace

struct TlsEngine::Buffers : CipherBuffers {};

struct TlsEngine::Impl {
  // Keeps the SSL_CTX and the context's Impl (callbacks) alive.
  std::shared_ptr<const ServerContext> server_ctx;
  std::shared_ptr<const ClientContext> client_ctx;
  ConnState state;
  std::string client_sni;  // what we sent (client side)
};

namespace {

// The BIO under the SSL: reads from Buffers::in, appends to Buffers::out.
int BioRead(BIO* bio, char* out, int len) {
  auto* b = static_cast<CipherBuffers*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  size_t avail = b->in.size() - b->in_off;
  if (avail == 0) {
    BIO_set_retry_read(bio);  // SSL_ERROR_WANT_READ, not EOF
    return -1;
  }
  size_t n = std::min(avail, static_cast<size_t>(len));
  std::memcpy(out, b->in.data() + b->in_off, n);
  b->read_framing.Consume(b->in.data() + b->in_off, n);
  b->in_off += n;
  if (b->in_off == b->in.size()) {
    b->in.clear();  // keeps capacity; ReleaseBuffers frees it
    b->in_off = 0;
  }
  return static_cast<int>(n);
}

int BioWrite(BIO* bio, const char* in, int len) {
  auto* b = static_cast<CipherBuffers*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  b->out.insert(b->out.end(), in, in + len);
  return len;
}

long BioCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {
  // Writes land in memory immediately, so a flush has nothing to do.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* BufferBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "popgate buffers");
    BIO_meth_set_read(m, &BioRead);
    BIO_meth_set_write(m, &BioWrite);
    BIO_meth_set_ctrl(m, &BioCtrl);
    BIO_meth_set_create(m, &BioCreate);
    return m;
  }();
  return method;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

TlsEngine::TlsEngine()
    : bufs_(std::make_unique<Buffers>()), impl_(std::make_unique<Impl>()) {}

TlsEngine::~TlsEngine() {
  // The signer cancels its pending pool job before anything else goes.
  impl_->state.signer.reset();
  SSL_free(ssl_);  // also frees the BIO, which points into bufs_
}

absl::StatusOr<std::unique_ptr<TlsEngine>> TlsEngine::NewServer(
    std::shared_ptr<const ServerContext> ctx) {
  std::unique_ptr<TlsEngine> e(new TlsEngine());
  ERR_clear_error();
  e->ssl_ = SSL_new(ctx->ctx());
  if (e->ssl_ == nullptr) {
    return absl::InternalError("SSL_new failed: " + DrainErrorQueue());
  }
  if (ctx->impl_->sign_pool != nullptr) {
    e->impl_->state.signer =
        std::make_unique<AsyncSigner>(ctx->impl_->sign_pool);
  }
  e->impl_->server_ctx = std::move(ctx);
  SetConnState(e->ssl_, &e->impl_->state);
  BIO* bio = BIO_new(BufferBioMethod());
  if (bio == nullptr) return absl::InternalError("BIO_new failed");
  BIO_set_data(bio, static_cast<CipherBuffers*>(e->bufs_.get()));
  SSL_set_bio(e->ssl_, bio, bio);  // one reference, used both ways
  SSL_set_accept_state(e->ssl_);
  // Certificates and other handshake-only configuration are dropped once
  // the handshake is done: less memory per idle session.
  SSL_set_shed_handshake_config(e->ssl_, 1);
  return e;
}

absl::StatusOr<std::unique_ptr<TlsEngine>> TlsEngine::NewClient(
    std::shared_ptr<const ClientContext> ctx, std::string_view server_name) {
  std::unique_ptr<TlsEngine> e(new TlsEngine());
  std::string name(server_name);
  if (ctx->verify() && name.empty()) {
    return absl::InvalidArgumentError(
        "TLS to a backend with verification needs a server name");
  }
  ERR_clear_error();
  e->ssl_ = SSL_new(ctx->ctx());
  if (e->ssl_ == nullptr) {
    return absl::InternalError("SSL_new failed: " + DrainErrorQueue());
  }
  bool ip = IsIpAddress(name);
  if (!name.empty() && !ip) {
    // RFC 6066: SNI carries host names only, never addresses.
    if (!SSL_set_tlsext_host_name(e->ssl_, name.c_str())) {
      return absl::InvalidArgumentError("bad TLS server name '" + name + "'");
    }
    e->impl_->client_sni = name;
  }
  if (ctx->verify()) {
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(e->ssl_),
                                                name.c_str())
                : SSL_set1_host(e->ssl_, name.c_str());
    if (!ok) {
      return absl::InvalidArgumentError("bad TLS server name '" + name + "'");
    }
  }
  e->impl_->client_ctx = std::move(ctx);
  SetConnState(e->ssl_, &e->impl_->state);
  BIO* bio = BIO_new(BufferBioMethod());
  if (bio == nullptr) return absl::InternalError("BIO_new failed");
  BIO_set_data(bio, static_cast<CipherBuffers*>(e->bufs_.get()));
  SSL_set_bio(e->ssl_, bio, bio);
  SSL_set_connect_state(e->ssl_);
  SSL_set_renegotiate_mode(e->ssl_, ssl_renegotiate_never);
  return e;
}

void TlsEngine::FeedCiphertext(std::span<const char> data) {
  Buffers& b = *bufs_;
  if (b.in_off > 0) {
    // Drop the consumed prefix before growing.
    b.in.erase(b.in.begin(), b.in.begin() + static_cast<ptrdiff_t>(b.in_off));
    b.in_off = 0;
  }
  b.in.insert(b.in.end(), data.begin(), data.end());
}

std::span<const char> TlsEngine::PendingOutput() const {
  return {bufs_->out.data() + bufs_->out_off,
          bufs_->out.size() - bufs_->out_off};
}

void TlsEngine::TakeOutput(std::vector<char>& out) {
  Buffers& b = *bufs_;
  if (b.out_off > 0) {
    b.out.erase(b.out.begin(),
                b.out.begin() + static_cast<ptrdiff_t>(b.out_off));
    b.out_off = 0;
  }
  out.clear();
  std::swap(out, b.out);
}

void TlsEngine::ConsumeOutput(size_t n) {
  Buffers& b = *bufs_;
  b.out_off += std::min(n, b.out.size() - b.out_off);
  if (b.out_off == b.out.size()) {
    b.out.clear();
    b.out_off = 0;
  }
}

TlsResult TlsEngine::Fail(const char* what, int ret) {
  (void)ret;
  std::string reason;
  long verify = SSL_get_verify_result(ssl_);
  uint32_t err = ERR_peek_error();
  if (verify != X509_V_OK && ERR_GET_LIB(err) == ERR_LIB_SSL &&
      ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    reason = std::string("certificate verify failed: ") +
             X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else {
    reason = DrainErrorQueue();
    if (reason.empty()) reason = "unknown error";
  }
  error_ = std::string(what) + ": " + reason;
  if (!impl_->state.last_alert.empty()) {
    error_ += " (" + impl_->state.last_alert + ")";
  }
  return TlsResult::kError;
}

TlsResult TlsEngine::Map(const char* what, int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return TlsResult::kWantRead;
    case SSL_ERROR_WANT_PRIVATE_KEY_OPERATION:
      return TlsResult::kWantAsync;
    case SSL_ERROR_ZERO_RETURN:
      return TlsResult::kClosed;
    default:
      return Fail(what, ret);
  }
}

TlsResult TlsEngine::Handshake() {
  if (!error_.empty()) return TlsResult::kError;
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return TlsResult::kOk;
  return Map("TLS handshake failed", ret);
}

TlsResult TlsEngine::Read(std::span<char> buf, size_t* n) {
  *n = 0;
  if (!error_.empty()) return TlsResult::kError;
  if (buf.empty()) return TlsResult::kOk;
  ERR_clear_error();
  int ret = SSL_read(ssl_, buf.data(),
                     static_cast<int>(std::min<size_t>(buf.size(), INT_MAX)));
  if (ret > 0) {
    *n = static_cast<size_t>(ret);
    return TlsResult::kOk;
  }
  return Map("TLS read failed", ret);
}

TlsResult TlsEngine::Write(std::span<const char> data) {
  if (!error_.empty()) return TlsResult::kError;
  size_t off = 0;
  while (off < data.size()) {
    ERR_clear_error();
    int len = static_cast<int>(std::min<size_t>(data.size() - off, 1 << 30));
    int ret = SSL_write(ssl_, data.data() + off, len);
    if (ret <= 0) {
      TlsResult r = Map("TLS write failed", ret);
      // Partial progress is not reported: SSL_write only stops before the
      // handshake is complete, where nothing was written yet.
      return r;
    }
    off += static_cast<size_t>(ret);
  }
  return TlsResult::kOk;
}

void TlsEngine::Shutdown() {
  ERR_clear_error();
  // One call queues our close_notify; we do not wait for the peer's.
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

void TlsEngine::SetAsyncWaker(std::function<void()> waker) {
  if (impl_->state.signer != nullptr) {
    impl_->state.signer->SetWaker(std::move(waker));
  }
}

void TlsEngine::ReleaseBuffers() {
  Buffers& b = *bufs_;
  if (b.in.size() == b.in_off) {
    std::vector<char>().swap(b.in);
    b.in_off = 0;
  }
  if (b.out.size() == b.out_off) {
    std::vector<char>().swap(b.out);
    b.out_off = 0;
  }
  // BoringSSL frees its own record buffers whenever they are empty
  // (SSL_MODE_RELEASE_BUFFERS is a no-op there because it is always on).
}

size_t TlsEngine::PendingPlaintext() const {
  return static_cast<size_t>(SSL_pending(ssl_));
}

size_t TlsEngine::BufferedCiphertext() const {
  return bufs_->in.size() - bufs_->in_off;
}

size_t TlsEngine::BufferCapacity() const {
  return bufs_->in.capacity() + bufs_->out.capacity();
}

bool TlsEngine::handshake_done() const {
  return SSL_is_init_finished(ssl_) == 1;
}

std::string_view TlsEngine::sni() const {
  if (!SSL_is_server(ssl_)) return impl_->client_sni;
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

std::string_view TlsEngine::version() const { return SSL_get_version(ssl_); }

std::string_view TlsEngine::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
  return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

absl::StatusOr<KtlsMaterial> TlsEngine::ExportForKernel() const {
  if (!handshake_done()) {
    return absl::FailedPreconditionError("handshake not done");
  }
  // The kernel continues from the next record on the wire: nothing may be
  // waiting here in either direction, not even half a record inside SSL.
  if (!PendingOutput().empty() || BufferedCiphertext() > 0 ||
      SSL_has_pending(ssl_) || !bufs_->read_framing.AtBoundary()) {
    return absl::FailedPreconditionError("bytes buffered in user space");
  }
  return ExportKtlsMaterial(ssl_, impl_->state.secrets, SSL_is_server(ssl_));
}

void TlsEngine::ForgetSecrets() { impl_->state.secrets.Wipe(); }

bool TlsEngine::resumed() const { return SSL_session_reused(ssl_) == 1; }

std::string_view TlsEngine::sni_tenant() const {
  return impl_->state.sni_tenant;
}

}  // namespace popgate::tls
