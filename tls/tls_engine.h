// One TLS connection driven without any I/O: ciphertext from the network is
// fed in, ciphertext for the network is taken out, plaintext goes through
// Read/Write. The io_uring side (TlsStream) moves the bytes; this class only
// runs BoringSSL, so it is testable in memory (client engine <-> server
// engine) and never blocks.
//
// Buffers are owned here and freed whenever they are empty (ReleaseBuffers),
// so an idle TLS session does not keep 2 x 17 KB around.
#ifndef POPGATE_TLS_TLS_ENGINE_H_
#define POPGATE_TLS_TLS_ENGINE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tls/ktls_material.h"

typedef struct ssl_st SSL;

namespace popgate::tls {

class ServerContext;
class ClientContext;

enum class TlsResult {
  kOk,         // progress made / done
  kWantRead,   // feed more ciphertext (after flushing PendingOutput)
  kWantAsync,  // a private-key operation runs on the pool; the waker will be
               // called (from another thread) when it is done: call again
  kClosed,     // the peer sent close_notify (or clean EOF for Read)
  kError,      // fatal; error() says why (never contains secrets)
};

class TlsEngine {
 public:
  // Server side; the context picks certificates by SNI and client support.
  static absl::StatusOr<std::unique_ptr<TlsEngine>> NewServer(
      std::shared_ptr<const ServerContext> ctx);
  // Client side (to a backend): `server_name` is sent as SNI and verified
  // against the certificate when the context verifies.
  static absl::StatusOr<std::unique_ptr<TlsEngine>> NewClient(
      std::shared_ptr<const ClientContext> ctx, std::string_view server_name);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // --- Network side.
  // Ciphertext received from the peer.
  void FeedCiphertext(std::span<const char> data);
  // Ciphertext waiting to be sent; after sending n bytes, ConsumeOutput(n).
  std::span<const char> PendingOutput() const;
  void ConsumeOutput(size_t n);
  // Hands all pending ciphertext over by swapping buffers (no copy): `out`
  // receives it, and its old storage (contents dropped, capacity kept) becomes
  // the engine's output buffer.
  void TakeOutput(std::vector<char>& out);

  // --- Application side.
  TlsResult Handshake();
  // Decrypts up to buf.size() bytes into buf; *n = bytes produced.
  TlsResult Read(std::span<char> buf, size_t* n);
  // Encrypts all of `data` into the output buffer (records of up to 16 KB).
  // kWantRead before the handshake is done. Server side: BoringSSL holds
  // the TLS 1.3 session tickets back and sends them with the first Write.
  TlsResult Write(std::span<const char> data);
  // Queues a close_notify.
  void Shutdown();

  // Called from a pool thread when a kWantAsync operation completes. Set
  // before Handshake(); must be thread-safe (e.g. Ring::Post).
  void SetAsyncWaker(std::function<void()> waker);

  // Frees the ciphertext buffers if they are empty (call when idle).
  void ReleaseBuffers();
  // Bytes of plaintext BoringSSL already decrypted and holds (no network
  // read is needed to return them).
  size_t PendingPlaintext() const;
  // Unconsumed ciphertext already fed in.
  size_t BufferedCiphertext() const;
  // Bytes allocated for the ciphertext buffers (in + out), for tests and
  // memory metrics.
  size_t BufferCapacity() const;

  // --- After the handshake.
  bool handshake_done() const;
  std::string_view sni() const;      // "" if the client sent none
  std::string_view version() const;  // "TLSv1.3"
  std::string_view cipher() const;
  bool resumed() const;
  // The tenant the SNI name selected (server side; "" if none).
  std::string_view sni_tenant() const;
  const std::string& error() const { return error_; }

  // --- Kernel TLS hand-off (contexts built with capture_traffic_secrets).
  // The keys and record sequence numbers the kernel needs to carry on from
  // here. FailedPrecondition (stay in user space) while any byte waits in
  // either direction here, or for what the kernel cannot take.
  absl::StatusOr<KtlsMaterial> ExportForKernel() const;
  // Wipes the captured traffic secrets (once handed over or not wanted).
  void ForgetSecrets();
  SSL* ssl() { return ssl_; }

 private:
  TlsEngine();
  struct Buffers;
  struct Impl;
  TlsResult Fail(const char* what, int ret);
  TlsResult Map(const char* what, int ret);
  SSL* ssl_ = nullptr;
  std::unique_ptr<Buffers> bufs_;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

}  // namespace popgate::tls

#endif  // POPGATE_TLS_TLS_ENGINE_H_
