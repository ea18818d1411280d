// A Stream over TLS: a TlsEngine (BoringSSL, no I/O) whose ciphertext moves
// through this worker's io_uring. Receives use the worker's provided-buffer
// ring, so a session waiting for data holds no receive buffer; the engine
// frees its own buffers when they are empty.
//
// One reader and one writer may use the stream at the same time (the two
// forwarding directions); sending ciphertext is serialised by a mutex
// because reads can produce output too (alerts, TLS 1.3 key updates).
#ifndef POPGATE_FORWARD_TLS_STREAM_H_
#define POPGATE_FORWARD_TLS_STREAM_H_

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/async_mutex.h"
#include "runtime/buffer_ring.h"
#include "runtime/stream.h"
#include "tls/tls_engine.h"

namespace popgate {

class TlsStream final : public Stream {
 public:
  TlsStream(Ring& ring, BufferRing& buffers, int fd,
            std::unique_ptr<tls::TlsEngine> engine);
  ~TlsStream() override;

  // 0 when established; -EPROTO (engine().error() says why), -ECANCELED on
  // timeout, or another -errno.
  Task<int> Handshake(absl::Duration timeout);
  Task<int> Read(std::span<char> buf, absl::Duration timeout) override;
  Task<int> WriteAll(std::string_view data, absl::Duration timeout) override;
  Task<int> WaitReadable(absl::Duration timeout) override;
  // Best effort close_notify, once (also after the kernel hand-off, through
  // the kernel).
  Task<void> Close(absl::Duration timeout) override;
  int fd() const override { return fd_; }
  bool IsPlainSocket() const override { return false; }
  std::string_view TlsVersion() const override;
  void ForgetSecrets() override;

  // Null once handed to the kernel.
  tls::TlsEngine& engine() { return *engine_; }

  // Gives the connection to kernel TLS (tls/ktls_socket.h): from then on
  // the socket reads and writes plaintext and this stream, whose engine is
  // freed, must not be used again (Close and TlsVersion excepted). Call
  // only when no read or write is in flight. FailedPrecondition: nothing
  // changed, carry on with this stream; any other error: the connection is
  // unusable.
  absl::Status HandOffToKernel() override;
  // Ciphertext fed in but not yet consumed: after STLS, bytes the client
  // pipelined in plaintext must be discarded, not decrypted.
  Task<int> Flush(absl::Duration timeout);

 private:
  // Receives ciphertext into the engine. >0 bytes, 0 EOF, -errno.
  Task<int> Fill(absl::Duration timeout);
  Task<void> WaitAsync();
  void ReleaseIdleBuffers();

  Ring& ring_;
  BufferRing& buffers_;
  int fd_;
  std::unique_ptr<tls::TlsEngine> engine_;
  AsyncMutex send_mu_;
  std::vector<char> sending_;  // ciphertext being sent (freed when idle)
  // SSL_get_version's static string, kept across the kernel hand-off.
  std::string_view version_;
  bool close_sent_ = false;

  // Hand-off for private-key operations completing on a pool thread.
  struct AsyncState {
    Ring* ring;
    std::atomic<int> state{0};  // 0 idle, 1 waiting, 2 fired
    std::coroutine_handle<> waiter;
  };
  std::shared_ptr<AsyncState> async_;
};

}  // namespace popgate

#endif  // POPGATE_FORWARD_TLS_STREAM_H_
