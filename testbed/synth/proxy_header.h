// The PROXY protocol header (v2 binary or v1 text, haproxy's
// proxy-protocol.txt) that pop3-synth --proxy-protocol expects before the
// greeting, as popgate sends it with client_identity = "proxy-v2". Only
// read and skipped: the benchmark needs a backend that accepts the
// preamble, not the addresses in it. testbed/ may include only base/, so
// this is a small reader of its own, not net/proxy_protocol.
#ifndef POPGATE_TESTBED_SYNTH_PROXY_HEADER_H_
#define POPGATE_TESTBED_SYNTH_PROXY_HEADER_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace popgate::synth {

// A connection's bytes are fed in as they arrive; the reader buffers them
// until a whole header is there. Bounded: a header that would be longer
// than kMaxHeader bytes is an error, as is anything that is not a header
// (the flag means every connection starts with one).
class ProxyHeaderReader {
 public:
  static constexpr size_t kMaxHeader = 4096;
  // v1's longest line, "PROXY TCP6 <39> <39> 65535 65535\r\n".
  static constexpr size_t kMaxV1Line = 107;

  enum class State { kNeedMore, kDone, kError };
  enum class Command { kNone, kLocal, kProxy };

  // Appends `bytes`; once kDone, rest() is what followed the header (the
  // client's first POP3 bytes, if it pipelined them).
  State Feed(std::string_view bytes);

  State state() const { return state_; }
  Command command() const { return command_; }
  int version() const { return version_; }
  size_t header_size() const { return header_size_; }
  std::string_view rest() const;
  // Why the header was refused (for --verbose); never contains its bytes.
  const std::string& error() const { return error_; }

 private:
  State Parse();
  State ParseV1();
  State ParseV2();
  State Fail(std::string why);

  std::string buffer_;
  State state_ = State::kNeedMore;
  Command command_ = Command::kNone;
  int version_ = 0;
  size_t header_size_ = 0;
  std::string error_;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_PROXY_HEADER_H_
