// The client's (or a backend's) byte stream as the session and forwarding
// see it: plain TCP here, TLS in forward/tls_stream.h. Callers use only this
// interface (half-close, close, the kernel hand-off included), so nothing
// downcasts to the TLS implementation.
#ifndef POPGATE_RUNTIME_STREAM_H_
#define POPGATE_RUNTIME_STREAM_H_

#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate {

class Stream {
 public:
  virtual ~Stream() = default;
  // Bytes read (0 = EOF), or -errno (-ECANCELED on timeout).
  virtual Task<int> Read(std::span<char> buf, absl::Duration timeout) = 0;
  // Writes everything or fails: 0, or -errno.
  virtual Task<int> WriteAll(std::string_view data, absl::Duration timeout) = 0;
  // Waits until Read would return without waiting, holding no buffer
  // meanwhile: > 0 ready (or EOF/error pending), 0 EOF seen, -errno
  // (-ECANCELED on timeout).
  virtual Task<int> WaitReadable(absl::Duration timeout) = 0;
  virtual int fd() const = 0;
  // True when the bytes on fd() are the application bytes (no TLS), so
  // forwarding may splice them.
  virtual bool IsPlainSocket() const = 0;

  // Says goodbye at the stream's own level, best effort, within `timeout`:
  // TLS sends close_notify; plain TCP has nothing to say. Does not touch
  // the socket itself (see ShutdownWrite).
  virtual Task<void> Close(absl::Duration timeout) = 0;
  // Half-close: no more bytes from us (FIN). Call Close first so that a TLS
  // peer gets its close_notify before the FIN (a bare FIN can look like a
  // truncation attack).
  void ShutdownWrite();

  // "TLSv1.3" and the like; "" for plain TCP.
  virtual std::string_view TlsVersion() const { return {}; }
  // Gives the TLS connection to the kernel (kernel TLS) so its bytes can be
  // spliced: from then on fd() carries plaintext for the kernel's TLS and
  // this stream must not be read or written again. FailedPrecondition:
  // nothing changed (plain TCP, a send in flight, a cipher the kernel
  // cannot take): carry on with this stream. Another error: the connection
  // is unusable.
  virtual absl::Status HandOffToKernel() {
    return absl::FailedPreconditionError("not a TLS stream");
  }
  // Wipes secrets kept for a kernel hand-off that will not happen.
  virtual void ForgetSecrets() {}
};

class PlainStream final : public Stream {
 public:
  PlainStream(Ring& ring, int fd) : ring_(ring), fd_(fd) {}
  Task<int> Read(std::span<char> buf, absl::Duration timeout) override;
  Task<int> WriteAll(std::string_view data, absl::Duration timeout) override;
  Task<int> WaitReadable(absl::Duration timeout) override;
  Task<void> Close(absl::Duration timeout) override;
  int fd() const override { return fd_; }
  bool IsPlainSocket() const override { return true; }

 private:
  Ring& ring_;
  int fd_;
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_STREAM_H_
