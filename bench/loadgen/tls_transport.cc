#include "bench/loadgen/tls_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace popgate::loadgen {
namespace {

std::string DrainErrors() {
  std::string out;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// First plaintext buffer; it doubles when a read fills it. Small, so that
// hold mode's thousands of idle connections stay cheap; throughput mode
// grows it once to its steady size.
constexpr size_t kInitialPlain = 4096;

}  // namespace

// The BIO under every SSL: reads from the bytes Open() is feeding, appends
// writes to the transport's output string.
struct TlsBio {
  static int Read(BIO* bio, char* out, int len) {
    auto* t = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (t->in_len_ == 0) {
      BIO_set_retry_read(bio);  // SSL_ERROR_WANT_READ, not EOF
      return -1;
    }
    size_t n = std::min(t->in_len_, static_cast<size_t>(len));
    std::memcpy(out, t->in_, n);
    t->in_ += n;
    t->in_len_ -= n;
    return static_cast<int>(n);
  }
  static int Write(BIO* bio, const char* in, int len) {
    auto* t = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    t->out_.append(in, static_cast<size_t>(len));
    return len;
  }
  static long Ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
  }
  static int Create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }
  static const BIO_METHOD* Method() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                   "loadgen tls");
      BIO_meth_set_read(m, &Read);
      BIO_meth_set_write(m, &Write);
      BIO_meth_set_ctrl(m, &Ctrl);
      BIO_meth_set_create(m, &Create);
      return m;
    }();
    return method;
  }
};

// --- TlsClient

std::unique_ptr<TlsClient> TlsClient::Create(const Options& options,
                                             std::string* error) {
  std::unique_ptr<TlsClient> c(new TlsClient());
  ERR_clear_error();
  // Without verification nothing needs the certificates as X509 objects:
  // the buffer-based method skips parsing them, and the custom verify
  // callback skips the (ignored) chain check that SSL_VERIFY_NONE still
  // runs. Both are client CPU per full handshake that the server's figure
  // should not compete with.
  c->ctx_ = SSL_CTX_new(options.tls_verify ? TLS_method()
                                           : TLS_with_buffers_method());
  if (c->ctx_ == nullptr) {
    *error = "SSL_CTX_new failed: " + DrainErrors();
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  uint16_t min = options.tls_version == TlsVersion::k13 ? TLS1_3_VERSION
                                                        : TLS1_2_VERSION;
  uint16_t max = options.tls_version == TlsVersion::k12 ? TLS1_2_VERSION
                                                        : TLS1_3_VERSION;
  if (!SSL_CTX_set_min_proto_version(ctx, min) ||
      !SSL_CTX_set_max_proto_version(ctx, max)) {
    *error = "cannot set TLS versions: " + DrainErrors();
    return nullptr;
  }
  // The signature algorithms we accept decide which certificate a server
  // holding both an ECDSA and an RSA one presents; for TLS 1.2 the cipher
  // suites (ECDHE_ECDSA / ECDHE_RSA) say it too.
  static constexpr uint16_t kEcdsa[] = {SSL_SIGN_ECDSA_SECP256R1_SHA256,
                                        SSL_SIGN_ECDSA_SECP384R1_SHA384,
                                        SSL_SIGN_ECDSA_SECP521R1_SHA512};
  static constexpr uint16_t kRsa[] = {
      SSL_SIGN_RSA_PSS_RSAE_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA384,
      SSL_SIGN_RSA_PSS_RSAE_SHA512, SSL_SIGN_RSA_PKCS1_SHA256,
      SSL_SIGN_RSA_PKCS1_SHA384,    SSL_SIGN_RSA_PKCS1_SHA512};
  const char* ciphers = nullptr;
  bool ok = true;
  switch (options.tls_sigalgs) {
    case TlsSigalgs::kAny:
      break;
    case TlsSigalgs::kEcdsa:
      ok = SSL_CTX_set_verify_algorithm_prefs(ctx, kEcdsa, std::size(kEcdsa));
      ciphers =
          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
          "ECDHE-ECDSA-CHACHA20-POLY1305";
      break;
    case TlsSigalgs::kRsa:
      ok = SSL_CTX_set_verify_algorithm_prefs(ctx, kRsa, std::size(kRsa));
      ciphers =
          "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
          "ECDHE-RSA-CHACHA20-POLY1305";
      break;
  }
  if (!ok || (ciphers != nullptr &&
              !SSL_CTX_set_strict_cipher_list(ctx, ciphers))) {
    *error = "cannot set signature algorithms: " + DrainErrors();
    return nullptr;
  }
  c->verify_ = options.tls_verify;
  c->server_name_ = options.tls_server_name;
  if (c->verify_) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int loaded = options.tls_ca.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx)
                     : SSL_CTX_load_verify_locations(
                           ctx, options.tls_ca.c_str(), nullptr);
    if (!loaded) {
      *error = "--tls-ca " + options.tls_ca + ": " + DrainErrors();
      return nullptr;
    }
    if (c->server_name_.empty()) {
      char text[INET6_ADDRSTRLEN] = "";
      const sockaddr_storage& a = options.target.addr;
      if (a.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr,
                  text, sizeof(text));
      } else {
        inet_ntop(AF_INET6,
                  &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, text,
                  sizeof(text));
      }
      c->verify_ip_ = text;
    }
  } else {
    SSL_CTX_set_custom_verify(
        ctx, SSL_VERIFY_PEER,
        [](SSL*, uint8_t*) -> ssl_verify_result_t { return ssl_verify_ok; });
  }
  // Tickets stay enabled without --tls-resume too: servers then do the
  // work they do for every real client (issue tickets); we just never use
  // them.
  c->resume_ = options.tls_resume;
  if (c->resume_) {
    SSL_CTX_set_session_cache_mode(
        ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, &TlsTransport::OnNewSession);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return c;
}

TlsClient::~TlsClient() { SSL_CTX_free(ctx_); }

// --- TlsSession

void TlsSession::reset(ssl_session_st* session) {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  session_ = session;
}

// --- TlsTransport

TlsTransport::TlsTransport(const TlsClient* client) : client_(client) {}

TlsTransport::~TlsTransport() { Release(); }

int TlsTransport::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* t = static_cast<TlsTransport*>(SSL_get_app_data(ssl));
  if (t == nullptr || t->slot_ == nullptr) return 0;  // not kept
  t->slot_->reset(session);  // keeps the newest; we own the reference
  return 1;
}

bool TlsTransport::SendCloseNotify(std::string* error) {
  close_notify_sent_ = true;
  ERR_clear_error();
  int ret = SSL_shutdown(ssl_);
  if (ret < 0) return Fail("TLS shutdown failed", ret, error);
  return true;
}

void TlsTransport::Release() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);  // and its BIO
    ssl_ = nullptr;
  }
  slot_ = nullptr;
  in_ = nullptr;
  in_len_ = 0;
}

bool TlsTransport::Reset(TlsSession* slot, std::string* error) {
  Release();
  out_.clear();
  out_taken_ = 0;
  peer_closed_ = false;
  close_notify_sent_ = false;
  ERR_clear_error();
  ssl_ = SSL_new(client_->ctx());
  if (ssl_ == nullptr) {
    *error = "SSL_new failed: " + DrainErrors();
    return false;
  }
  SSL_set_app_data(ssl_, this);
  BIO* bio = BIO_new(TlsBio::Method());
  if (bio == nullptr) {
    *error = "BIO_new failed";
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, used both ways
  SSL_set_connect_state(ssl_);
  const std::string& name = client_->server_name();
  if (!name.empty() && !SSL_set_tlsext_host_name(ssl_, name.c_str())) {
    *error = "bad --tls-server-name '" + name + "'";
    return false;
  }
  if (client_->verify()) {
    int ok = name.empty()
                 ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_),
                                                 client_->verify_ip().c_str())
                 : SSL_set1_host(ssl_, name.c_str());
    if (!ok) {
      *error = "cannot set the name to verify: " + DrainErrors();
      return false;
    }
  }
  if (client_->resume() && slot != nullptr) {
    slot_ = slot;
    if (slot->get() != nullptr && !SSL_set_session(ssl_, slot->get())) {
      *error = "SSL_set_session failed: " + DrainErrors();
      return false;
    }
  }
  return true;
}

void TlsTransport::RecycleOut() {
  if (out_taken_ == out_.size()) {
    out_.clear();  // keeps the capacity
    out_taken_ = 0;
  }
}

bool TlsTransport::Fail(const char* what, int ret, std::string* error) {
  int err = SSL_get_error(ssl_, ret);
  std::string reason = DrainErrors();
  if (reason.empty()) {
    reason = err == SSL_ERROR_SYSCALL ? "unexpected end of data"
                                      : "SSL error " + std::to_string(err);
  }
  long verify = SSL_get_verify_result(ssl_);
  if (client_->verify() && verify != X509_V_OK) {
    reason += std::string(" (certificate: ") +
              X509_verify_cert_error_string(verify) + ")";
  }
  *error = std::string(what) + ": " + reason;
  in_ = nullptr;
  in_len_ = 0;
  return false;
}

bool TlsTransport::handshake_done() const {
  return ssl_ != nullptr && SSL_is_init_finished(ssl_);
}

bool TlsTransport::StartHandshake(std::string* error) {
  if (ssl_ == nullptr) {
    *error = "TLS session not set up";
    return false;
  }
  RecycleOut();
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1 || SSL_get_error(ssl_, ret) == SSL_ERROR_WANT_READ) {
    return true;
  }
  return Fail("TLS handshake failed", ret, error);
}

bool TlsTransport::Open(std::string_view wire, std::string_view* plaintext,
                        std::string* error) {
  *plaintext = {};
  if (ssl_ == nullptr) {
    *error = "TLS session not set up";
    return false;
  }
  RecycleOut();
  in_ = wire.data();
  in_len_ = wire.size();
  if (!SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    int ret = SSL_do_handshake(ssl_);
    if (ret != 1) {
      if (SSL_get_error(ssl_, ret) == SSL_ERROR_WANT_READ) {
        in_len_ = 0;  // all consumed: BoringSSL buffers partial records
        return true;
      }
      return Fail("TLS handshake failed", ret, error);
    }
  }
  // Decrypt everything the bytes complete. BoringSSL reads from the BIO
  // until it runs dry (it keeps a partial record itself), so nothing of
  // `wire` is left over when SSL_read asks for more.
  size_t len = 0;
  while (true) {
    if (len == plain_cap_) {
      size_t cap = std::max(kInitialPlain, 2 * plain_cap_);
      std::unique_ptr<char[]> bigger(new char[cap]);
      if (len > 0) std::memcpy(bigger.get(), plain_.get(), len);
      plain_ = std::move(bigger);
      plain_cap_ = cap;
    }
    ERR_clear_error();
    int ret = SSL_read(ssl_, plain_.get() + len,
                       static_cast<int>(std::min<size_t>(plain_cap_ - len,
                                                         INT_MAX)));
    if (ret > 0) {
      len += static_cast<size_t>(ret);
      continue;
    }
    int err = SSL_get_error(ssl_, ret);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify
      peer_closed_ = true;
      break;
    }
    return Fail("TLS read failed", ret, error);
  }
  in_ = nullptr;
  in_len_ = 0;
  *plaintext = std::string_view(plain_.get(), len);
  return true;
}

bool TlsTransport::Seal(std::string_view plaintext, std::string_view* wire,
                        std::string* error) {
  *wire = {};
  if (ssl_ == nullptr || !SSL_is_init_finished(ssl_)) {
    *error = "TLS write before the handshake";
    return false;
  }
  RecycleOut();
  while (!plaintext.empty()) {
    ERR_clear_error();
    int n = static_cast<int>(std::min<size_t>(plaintext.size(), 1 << 30));
    int ret = SSL_write(ssl_, plaintext.data(), n);
    if (ret <= 0) return Fail("TLS write failed", ret, error);
    plaintext.remove_prefix(static_cast<size_t>(ret));
  }
  *wire = TakeWire();
  return true;
}

std::string_view TlsTransport::TakeWire() {
  std::string_view w(out_.data() + out_taken_, out_.size() - out_taken_);
  out_taken_ = out_.size();
  return w;
}

bool TlsTransport::resumed() const {
  return ssl_ != nullptr && SSL_session_reused(ssl_);
}

PeerKey TlsTransport::peer_key() const {
  // A resumed session remembers the original handshake's algorithm; no
  // signature was made in this one.
  if (ssl_ == nullptr || SSL_session_reused(ssl_)) return PeerKey::kNone;
  uint16_t alg = SSL_get_peer_signature_algorithm(ssl_);
  if (alg == 0) return PeerKey::kNone;
  switch (SSL_get_signature_algorithm_key_type(alg)) {
    case EVP_PKEY_EC: return PeerKey::kEcdsa;
    case EVP_PKEY_RSA: return PeerKey::kRsa;
    default: return PeerKey::kOther;
  }
}

std::string_view TlsTransport::version() const {
  return ssl_ != nullptr ? SSL_get_version(ssl_) : "";
}

}  // namespace popgate::loadgen
