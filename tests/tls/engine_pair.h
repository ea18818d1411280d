// A client engine and a server engine wired together in memory: ciphertext
// is pumped from one's PendingOutput to the other's FeedCiphertext.
#ifndef POPGATE_TESTS_TLS_ENGINE_PAIR_H_
#define POPGATE_TESTS_TLS_ENGINE_PAIR_H_

#include <openssl/ssl.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "tls/tls_context.h"
#include "tls/tls_engine.h"

namespace popgate::tls::testing {

// Moves all pending ciphertext of `from` into `to`; returns bytes moved.
size_t Transfer(TlsEngine& from, TlsEngine& to);

// Counts waker calls and lets the test wait for them.
class Waker {
 public:
  std::function<void()> Fn();
  // Waits (up to 10 s) until the waker has fired `n` times in total.
  bool WaitFor(int n);
  int count();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

struct EnginePair {
  std::unique_ptr<TlsEngine> client;
  std::unique_ptr<TlsEngine> server;
  Waker waker;           // installed on the server
  int async_rounds = 0;  // times the server handshake said kWantAsync

  EnginePair(std::shared_ptr<const ClientContext> cctx,
             std::shared_ptr<const ServerContext> sctx,
             const std::string& server_name);

  // Drives both handshakes to completion (waiting for async signing).
  // False on any kError (see the engines' error()).
  bool Handshake();
  // Sends `data` from `from` to `to` and reads it all back; returns what
  // `to` read (stops on error or close).
  std::string Send(TlsEngine& from, TlsEngine& to, const std::string& data);
  // Reads from `e` until kWantRead and returns the plaintext.
  std::string Drain(TlsEngine& e);
};

// A client context that trusts the test CA.
std::shared_ptr<const ClientContext> TestClientContext(bool verify = true);
// A server context with the given default certificates and options.
std::shared_ptr<const ServerContext> TestServerContext(ServerTlsOptions opts);

// Records the sessions a client context receives (TLS 1.3 tickets come
// after the handshake), so the next client can offer the latest one.
class SessionStore {
 public:
  explicit SessionStore(const ClientContext& ctx);
  // The latest session received (null if none).
  SSL_SESSION* latest() { return latest_.get(); }

 private:
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);
  bssl::UniquePtr<SSL_SESSION> latest_;
};

// Subject CN of the server's certificate as seen by the client.
std::string PeerCommonName(TlsEngine& client);
// EVP_PKEY_EC or EVP_PKEY_RSA: the key type of the server's certificate.
int PeerKeyType(TlsEngine& client);

}  // namespace popgate::tls::testing

#endif  // POPGATE_TESTS_TLS_ENGINE_PAIR_H_
