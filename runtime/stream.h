// The client's byte stream as the session sees it before forwarding starts.
// Plain TCP today; TLS plugs in as another implementation (the session only
// uses this interface, and asks IsPlainSocket() before choosing splice).
#ifndef POPGATE_RUNTIME_STREAM_H_
#define POPGATE_RUNTIME_STREAM_H_

#include <span>
#include <string_view>

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
};

class PlainStream final : public Stream {
 public:
  PlainStream(Ring& ring, int fd) : ring_(ring), fd_(fd) {}
  Task<int> Read(std::span<char> buf, absl::Duration timeout) override;
  Task<int> WriteAll(std::string_view data, absl::Duration timeout) override;
  Task<int> WaitReadable(absl::Duration timeout) override;
  int fd() const override { return fd_; }
  bool IsPlainSocket() const override { return true; }

 private:
  Ring& ring_;
  int fd_;
};

}  // namespace popgate

#endif  // POPGATE_RUNTIME_STREAM_H_
