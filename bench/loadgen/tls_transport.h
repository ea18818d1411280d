// TLS for loadgen, on BoringSSL (popgate_boringssl; never the system
// OpenSSL).
//
// TlsClient is the run's one SSL_CTX (versions, signature algorithms,
// verification, the session-ticket callback), built on the main thread and
// shared by every worker (BoringSSL's SSL_CTX is thread-safe for SSL_new).
// TlsTransport is one connection's TLS state: an SSL over an in-memory BIO
// that reads straight from the received bytes (no copy into a staging
// buffer) and appends its output to a string the connection sends. It does
// no I/O, so the ring stays the only thing that touches sockets and the
// transport is testable against an in-memory server.
//
// Why not popgate_tls's TlsEngine/ClientContext: the ClientContext is
// immutable and shared, with no knobs for versions, signature algorithms or
// a client session cache, and the engine copies all ciphertext into a
// buffer of its own first. A load generator wants the opposite trade-offs;
// the tests use popgate_tls's server side as the peer.
//
// Resumption: with --tls-resume every connection slot owns a TlsSession.
// A new TLS session offers the slot's session (SSL_set_session) and every
// session the server issues replaces it (SSL_CTX_sess_set_new_cb with
// SSL_SESS_CACHE_CLIENT). TLS 1.3 tickets arrive after the handshake, with
// the server's first application data, which the connection always reads.
#ifndef POPGATE_BENCH_LOADGEN_TLS_TRANSPORT_H_
#define POPGATE_BENCH_LOADGEN_TLS_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "bench/loadgen/options.h"
#include "bench/loadgen/transport.h"

struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

namespace popgate::loadgen {

class TlsClient {
 public:
  // Null (and *error set) if the options cannot be honoured (bad CA file).
  static std::unique_ptr<TlsClient> Create(const Options& options,
                                           std::string* error);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }
  bool resume() const { return resume_; }
  bool verify() const { return verify_; }
  const std::string& server_name() const { return server_name_; }
  // --tls-verify without a server name checks the target's address.
  const std::string& verify_ip() const { return verify_ip_; }

 private:
  TlsClient() = default;
  ssl_ctx_st* ctx_ = nullptr;
  bool resume_ = false;
  bool verify_ = false;
  std::string server_name_;
  std::string verify_ip_;  // "127.0.0.1" / "::1" form
};

// One connection slot's resumable session (owns one SSL_SESSION reference).
class TlsSession {
 public:
  TlsSession() = default;
  ~TlsSession() { reset(); }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  // Takes ownership of `session`'s reference.
  void reset(ssl_session_st* session = nullptr);
  ssl_session_st* get() const { return session_; }

 private:
  ssl_session_st* session_ = nullptr;
};

// The server certificate's key type, from the signature it made in a full
// handshake (kNone: resumed, or not known yet).
enum class PeerKey { kNone, kEcdsa, kRsa, kOther };

class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(const TlsClient* client);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // Begins a new TLS session (a fresh SSL; the previous one is freed).
  // With resumption on, `slot` (may be null) is offered for resumption and
  // receives the sessions the server issues.
  bool Reset(TlsSession* slot, std::string* error);
  // Ends the TLS session: frees the SSL (the buffers stay for the next).
  void Release();

  // The SSL_CTX's new-session callback (hands the session to the slot).
  static int OnNewSession(ssl_st* ssl, ssl_session_st* session);

  bool handshake_done() const override;
  bool StartHandshake(std::string* error) override;
  bool Open(std::string_view wire, std::string_view* plaintext,
            std::string* error) override;
  bool Seal(std::string_view plaintext, std::string_view* wire,
            std::string* error) override;
  std::string_view TakeWire() override;

  // After the handshake.
  bool resumed() const;
  PeerKey peer_key() const;
  std::string_view version() const;
  // The server sent close_notify.
  bool peer_closed() const { return peer_closed_; }
  // Queues our close_notify (TakeWire()) in answer to the server's: some
  // servers wait for it before they close the socket (nginx: up to 3 s).
  bool SendCloseNotify(std::string* error);
  bool close_notify_sent() const { return close_notify_sent_; }

  // Bytes held for this connection outside BoringSSL (tests, sizing).
  size_t BufferCapacity() const { return out_.capacity() + plain_cap_; }

 private:
  friend struct TlsBio;
  // Drops output already handed out (it has been sent by now).
  void RecycleOut();
  bool Fail(const char* what, int ret, std::string* error);

  const TlsClient* client_;
  ssl_st* ssl_ = nullptr;
  TlsSession* slot_ = nullptr;
  // The received bytes Open() is feeding to BoringSSL.
  const char* in_ = nullptr;
  size_t in_len_ = 0;
  // Wire output; the prefix [0, out_taken_) has been handed out.
  std::string out_;
  size_t out_taken_ = 0;
  // Decrypted application bytes of the last Open().
  std::unique_ptr<char[]> plain_;
  size_t plain_cap_ = 0;
  bool peer_closed_ = false;
  bool close_notify_sent_ = false;
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_TLS_TRANSPORT_H_
