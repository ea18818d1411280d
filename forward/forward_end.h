// How a forwarded session ended: one value, named for the log, saying which
// side ended it and how. The session turns it into its own result.
#ifndef POPGATE_FORWARD_FORWARD_END_H_
#define POPGATE_FORWARD_FORWARD_END_H_

#include <cstddef>
#include <string_view>

namespace popgate {

enum class ForwardEnd {
  kQuit,           // the client sent QUIT, the backend answered and closed
  kClientClosed,   // the client closed first, without QUIT (DELE discarded)
  kClientReset,    // the client reset or its socket failed
  kBackendClosed,  // the backend closed without the client's QUIT (it died
                   // mid-response, or ended the session on its own)
  kBackendReset,   // the backend reset or its socket failed
  kIdleTimeout,    // no byte either way for forward_idle_timeout
  kProxyError,     // our side failed (a kernel TLS error)
};

// Stable names for logs and metrics ("quit", "client_closed", ...).
constexpr std::string_view ForwardEndName(ForwardEnd e) {
  switch (e) {
    case ForwardEnd::kQuit:
      return "quit";
    case ForwardEnd::kClientClosed:
      return "client_closed";
    case ForwardEnd::kClientReset:
      return "client_reset";
    case ForwardEnd::kBackendClosed:
      return "backend_closed";
    case ForwardEnd::kBackendReset:
      return "backend_reset";
    case ForwardEnd::kIdleTimeout:
      return "idle_timeout";
    case ForwardEnd::kProxyError:
      return "proxy_error";
  }
  return "proxy_error";
}

// Whether the last complete line the client sent was QUIT (any case, CRLF
// or LF): a backend that closes after that ended the session as asked
// (kQuit), one that closes otherwise died or gave up (kBackendClosed).
// Fed the client's bytes, which are in user space anyway (the splice path
// copies the client's direction, commands only; the copy path sees every
// chunk), looking at the last line of each read only: the backend's
// spliced mail is never touched.
class QuitTracker {
 public:
  // Client bytes that were seen, in order.
  void Feed(std::string_view bytes) {
    size_t nl = bytes.rfind('\n');
    if (nl == std::string_view::npos) {
      Append(bytes);
      return;
    }
    size_t prev = nl == 0 ? std::string_view::npos : bytes.rfind('\n', nl - 1);
    if (prev == std::string_view::npos) {
      Append(bytes.substr(0, nl));
    } else {
      Reset();
      Append(bytes.substr(prev + 1, nl - prev - 1));
    }
    quit_ = IsQuit();
    Reset();
    Append(bytes.substr(nl + 1));
  }
  // Client bytes that went by unseen (were a client direction ever
  // spliced): the last complete line is unknown, so not QUIT. The next
  // seen bytes are taken to start a line: a client runs out of data at the
  // end of what it wrote, whole commands.
  void Unseen() {
    quit_ = false;
    len_ = 0;
  }
  bool last_line_quit() const { return quit_; }

 private:
  static constexpr size_t kMax = 5;  // "QUIT\r"
  static constexpr size_t kOverflow = kMax + 1;

  void Reset() { len_ = 0; }
  void Append(std::string_view b) {
    if (len_ + b.size() > kMax) {
      len_ = kOverflow;
      return;
    }
    for (char c : b) line_[len_++] = c;
  }
  bool IsQuit() const {
    size_t n = len_;
    if (n == kOverflow) return false;
    if (n > 0 && line_[n - 1] == '\r') --n;
    if (n != 4) return false;
    const char* want = "quit";
    for (size_t i = 0; i < 4; ++i) {
      if ((line_[i] | 0x20) != want[i]) return false;
    }
    return true;
  }

  char line_[kMax] = {};
  size_t len_ = 0;  // kOverflow: longer than any QUIT line, or unknown
  bool quit_ = false;
};

}  // namespace popgate

#endif  // POPGATE_FORWARD_FORWARD_END_H_
