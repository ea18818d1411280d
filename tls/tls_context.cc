#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "tls/async_private_key.h"
#include "tls/cert_loader.h"
#include "tls/cert_selection.h"
#include "tls/conn_state.h"
#include "tls/server_context_impl.h"
#include "tls/tls_errors.h"
#include "tls/traffic_secrets.h"

namespace popgate::tls {
namespace {

constexpr char kGroups[] = "X25519:P-256:P-384";
constexpr char kSystemCaFile[] = "/etc/ssl/certs/ca-certificates.crt";
constexpr char kSystemCaDir[] = "/etc/ssl/certs";

int ServerImplIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

ServerContext::Impl* GetImpl(const SSL* ssl) {
  return static_cast<ServerContext::Impl*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ServerImplIndex()));
}

// Keeps the last fatal alert so that error() can say what the peer (or we)
// objected to; the error queue alone often just says "alert received".
void InfoCallback(const SSL* ssl, int type, int value) {
  if ((type & SSL_CB_ALERT) == 0) return;
  if ((value >> 8) != SSL3_AL_FATAL) return;
  ConnState* state = GetConnState(ssl);
  if (state == nullptr) return;
  state->last_alert = std::string((type & SSL_CB_READ) ? "received" : "sent") +
                      " fatal alert: " + SSL_alert_desc_string_long(value);
}

// A new context with the protocol settings of both sides, stored in `out`
// (owned by the caller's context object, which frees it even on failure).
absl::Status NewContext(SSL_CTX*& out, bool capture_traffic_secrets) {
  ERR_clear_error();
  out = SSL_CTX_new(TLS_method());
  if (out == nullptr) {
    return absl::InternalError("SSL_CTX_new failed: " + DrainErrorQueue());
  }
  if (!SSL_CTX_set_min_proto_version(out, TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(out, TLS1_3_VERSION) ||
      !SSL_CTX_set1_curves_list(out, kGroups)) {
    return absl::InternalError("TLS context setup failed: " +
                               DrainErrorQueue());
  }
  SSL_CTX_set_info_callback(out, &InfoCallback);
  if (capture_traffic_secrets) CaptureTrafficSecrets(out);
  return absl::OkStatus();
}

enum ssl_select_cert_result_t SelectCertificate(const SSL_CLIENT_HELLO* hello) {
  SSL* ssl = hello->ssl;
  ServerContext::Impl* impl = GetImpl(ssl);
  ConnState* state = GetConnState(ssl);
  if (impl == nullptr || state == nullptr) return ssl_select_cert_error;
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const LoadedGroup* group = impl->certs.ForName(sni != nullptr ? sni : "");
  if (group == nullptr) {
    // No default certificate and an unknown (or no) name.
    OPENSSL_PUT_ERROR(SSL, SSL_R_NO_CERTIFICATE_SET);
    return ssl_select_cert_error;
  }
  state->sni_tenant = group->tenant;
  const LoadedCert& cert = ChooseCert(*group, hello);
  bool async = cert.key_type == EVP_PKEY_RSA && state->signer != nullptr;
  if (async) {
    std::span<const uint16_t> algs = AsyncSigner::RsaSigalgs();
    state->signer->SetKey(cert.key.get());
    if (!SSL_set_chain_and_key(ssl, cert.chain_ptrs.data(),
                               cert.chain_ptrs.size(), nullptr,
                               AsyncSigner::Method()) ||
        !SSL_set_signing_algorithm_prefs(ssl, algs.data(), algs.size())) {
      return ssl_select_cert_error;
    }
  } else if (&cert != impl->certs.Preinstalled() &&
             !SSL_set_chain_and_key(ssl, cert.chain_ptrs.data(),
                                    cert.chain_ptrs.size(), cert.key.get(),
                                    nullptr)) {
    return ssl_select_cert_error;
  }
  return ssl_select_cert_success;
}

// Session tickets: AES-256-CBC + HMAC-SHA256 under the TicketKeys of the
// context, for TLS 1.2 and 1.3 alike.
int TicketKeyCallback(SSL* ssl, uint8_t* key_name, uint8_t* iv,
                      EVP_CIPHER_CTX* cipher_ctx, HMAC_CTX* hmac_ctx,
                      int encrypt) {
  ServerContext::Impl* impl = GetImpl(ssl);
  if (impl == nullptr || impl->ticket_keys == nullptr) return -1;
  return impl->ticket_keys->InitTicketCrypto(key_name, iv, cipher_ctx, hmac_ctx,
                                             encrypt);
}

uint32_t Seconds(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 1, UINT32_MAX));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerContext::Build(
    const ServerTlsOptions& options) {
  absl::StatusOr<CertSelector> certs =
      CertSelector::Build(options.default_certs, options.sni_groups);
  if (!certs.ok()) return certs.status();

  std::shared_ptr<ServerContext> ctx(new ServerContext());
  ctx->impl_ = std::make_unique<Impl>();
  ctx->impl_->certs = std::move(*certs);
  ctx->impl_->sign_pool = options.sign_pool;
  ctx->impl_->ticket_keys = options.ticket_keys;

  if (absl::Status s = NewContext(ctx->ctx_, options.capture_traffic_secrets);
      !s.ok()) {
    return s;
  }
  SSL_CTX* c = ctx->ctx_;
  SSL_CTX_set_ex_data(c, ServerImplIndex(), ctx->impl_.get());
  SSL_CTX_set_select_certificate_cb(c, &SelectCertificate);
  // Every connection starts with the certificate most clients get, so that
  // SelectCertificate sets one only for the others (see Preinstalled()).
  if (const LoadedCert* pre = ctx->impl_->certs.Preinstalled();
      pre != nullptr && !SSL_CTX_set_chain_and_key(c, pre->chain_ptrs.data(),
                                                   pre->chain_ptrs.size(),
                                                   pre->key.get(), nullptr)) {
    return absl::InvalidArgumentError("cert_file " + pre->cert_file +
                                      ": cannot use: " + DrainErrorQueue());
  }
  // BoringSSL servers never renegotiate and answer a client's renegotiation
  // attempt with a no_renegotiation alert: nothing to switch off.

  // Resumption is stateless (tickets) so that every worker and instance can
  // resume every session; no server-side cache to share or lock.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (options.ticket_keys != nullptr) {
    SSL_CTX_set_tlsext_ticket_key_cb(c, &TicketKeyCallback);
    // A ticket stays decryptable for at least two rotation periods; telling
    // clients a longer lifetime would only make them offer dead tickets.
    absl::Duration lifetime =
        std::min(options.session_lifetime, 2 * options.ticket_keys->rotation());
    SSL_CTX_set_timeout(c, Seconds(lifetime));
    SSL_CTX_set_session_psk_dhe_timeout(c, Seconds(lifetime));
    // One TLS 1.3 ticket per handshake, not BoringSSL's default two: each
    // costs a session copy, its encryption and a record. A POP3 client has
    // one connection per mailbox at a time (RFC 1939 locks the maildrop),
    // and the ticket each handshake brings is the one its next connection
    // offers, so a second ticket would go unused.
    SSL_CTX_set_num_tickets(c, 1);
  } else {
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
  }
  return std::shared_ptr<const ServerContext>(std::move(ctx));
}

ServerContext::~ServerContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::shared_ptr<const ClientContext>> ClientContext::Build(
    const ClientTlsOptions& options) {
  std::shared_ptr<ClientContext> ctx(new ClientContext());
  ctx->verify_ = options.verify;
  if (absl::Status s = NewContext(ctx->ctx_, options.capture_traffic_secrets);
      !s.ok()) {
    return s;
  }
  SSL_CTX* c = ctx->ctx_;

  if (options.verify) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    int ok;
    if (!options.ca_file.empty()) {
      ok = SSL_CTX_load_verify_locations(c, options.ca_file.c_str(), nullptr);
    } else if (std::filesystem::exists(kSystemCaFile)) {
      ok = SSL_CTX_load_verify_locations(c, kSystemCaFile, nullptr);
    } else {
      ok = SSL_CTX_load_verify_locations(c, nullptr, kSystemCaDir);
    }
    if (!ok) {
      std::string file =
          options.ca_file.empty() ? kSystemCaFile : options.ca_file;
      return absl::InvalidArgumentError(
          "ca_file " + file +
          ": cannot load CA certificates: " + DrainErrorQueue());
    }
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }

  const CertKeyFiles& cc = options.client_cert;
  if (!cc.cert_file.empty() || !cc.key_file.empty()) {
    absl::StatusOr<LoadedCert> cert = LoadCertKey(cc);
    if (!cert.ok()) return cert.status();
    if (!SSL_CTX_set_chain_and_key(c, cert->chain_ptrs.data(),
                                   cert->chain_ptrs.size(), cert->key.get(),
                                   nullptr)) {
      return absl::InvalidArgumentError("cert_file " + cc.cert_file +
                                        ": cannot use: " + DrainErrorQueue());
    }
  }
  return std::shared_ptr<const ClientContext>(std::move(ctx));
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

}  // namespace popgate::tls
