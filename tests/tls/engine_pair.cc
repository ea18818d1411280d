#include "tests/tls/engine_pair.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "tests/tls/test_pki.h"

namespace popgate::tls::testing {

size_t Transfer(TlsEngine& from, TlsEngine& to) {
  std::span<const char> out = from.PendingOutput();
  size_t n = out.size();
  if (n > 0) {
    to.FeedCiphertext(out);
    from.ConsumeOutput(n);
  }
  return n;
}

std::function<void()> Waker::Fn() {
  return [this] {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    cv_.notify_all();
  };
}

bool Waker::WaitFor(int n) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::seconds(10),
                      [&] { return count_ >= n; });
}

int Waker::count() {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

EnginePair::EnginePair(std::shared_ptr<const ClientContext> cctx,
                       std::shared_ptr<const ServerContext> sctx,
                       const std::string& server_name) {
  auto c = TlsEngine::NewClient(std::move(cctx), server_name);
  auto s = TlsEngine::NewServer(std::move(sctx));
  if (!c.ok() || !s.ok()) throw std::runtime_error("engine creation failed");
  client = std::move(*c);
  server = std::move(*s);
  server->SetAsyncWaker(waker.Fn());
}

bool EnginePair::Handshake() {
  bool client_done = false, server_done = false;
  for (int round = 0; round < 50; ++round) {
    TlsResult rc = client->Handshake();
    if (rc == TlsResult::kError) return false;
    client_done = rc == TlsResult::kOk;
    Transfer(*client, *server);
    TlsResult rs = server->Handshake();
    if (rs == TlsResult::kError) {
      Transfer(*server, *client);  // deliver the alert
      client->Handshake();
      return false;
    }
    if (rs == TlsResult::kWantAsync) {
      ++async_rounds;
      if (!waker.WaitFor(async_rounds)) return false;
      continue;
    }
    server_done = rs == TlsResult::kOk;
    Transfer(*server, *client);
    if (client_done && server_done && client->PendingOutput().empty()) {
      return true;
    }
  }
  return false;
}

std::string EnginePair::Drain(TlsEngine& e) {
  std::string got;
  std::vector<char> buf(4096);
  for (;;) {
    size_t n = 0;
    TlsResult r = e.Read(buf, &n);
    got.append(buf.data(), n);
    if (r != TlsResult::kOk) break;
  }
  return got;
}

std::string EnginePair::Send(TlsEngine& from, TlsEngine& to,
                             const std::string& data) {
  if (from.Write(data) != TlsResult::kOk) return "<write failed>";
  Transfer(from, to);
  std::string got = Drain(to);
  Transfer(to, from);  // e.g. tickets or alerts going back
  return got;
}

std::shared_ptr<const ClientContext> TestClientContext(bool verify) {
  ClientTlsOptions opts;
  opts.verify = verify;
  opts.ca_file = Pki().ca_file;
  auto ctx = ClientContext::Build(opts);
  if (!ctx.ok()) throw std::runtime_error(ctx.status().ToString());
  return *ctx;
}

std::shared_ptr<const ServerContext> TestServerContext(ServerTlsOptions opts) {
  auto ctx = ServerContext::Build(opts);
  if (!ctx.ok()) throw std::runtime_error(ctx.status().ToString());
  return *ctx;
}

namespace {
int StoreIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
}  // namespace

SessionStore::SessionStore(const ClientContext& ctx) {
  SSL_CTX_set_ex_data(ctx.ctx(), StoreIndex(), this);
  SSL_CTX_set_session_cache_mode(ctx.ctx(), SSL_SESS_CACHE_CLIENT);
  SSL_CTX_sess_set_new_cb(ctx.ctx(), &SessionStore::OnNewSession);
}

int SessionStore::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<SessionStore*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), StoreIndex()));
  self->latest_.reset(session);
  return 1;  // we took the reference
}

std::string PeerCommonName(TlsEngine& client) {
  bssl::UniquePtr<X509> cert(SSL_get_peer_certificate(client.ssl()));
  if (cert == nullptr) return "<none>";
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()),
                                    NID_commonName, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

int PeerKeyType(TlsEngine& client) {
  bssl::UniquePtr<X509> cert(SSL_get_peer_certificate(client.ssl()));
  if (cert == nullptr) return 0;
  bssl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(cert.get()));
  return EVP_PKEY_id(key.get());
}

}  // namespace popgate::tls::testing
