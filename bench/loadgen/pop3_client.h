// An incremental POP3 response parser (RFC 1939 3): feed it whatever recv()
// returned, in pieces of any size, and it reports when one response is
// complete. Multi-line bodies are dot-unstuffed on the fly and handed to a
// sink as views into the caller's buffer, so a 10 MB RETR is never copied
// into a string just to be checked. No sockets here: it is unit-tested on
// byte strings split at every position.
#ifndef POPGATE_BENCH_LOADGEN_POP3_CLIENT_H_
#define POPGATE_BENCH_LOADGEN_POP3_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popgate::loadgen {

// Receives the unstuffed body of a multi-line response, piece by piece. The
// views are valid only during the call.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void OnBodyData(std::string_view data) = 0;
};

// Collects a small body (LIST) into a string.
class StringSink : public BodySink {
 public:
  void OnBodyData(std::string_view data) override { text.append(data); }
  std::string text;
};

class ResponseParser {
 public:
  enum class Kind {
    kSingleLine,  // +OK/-ERR and one line (USER, PASS, STAT, QUIT, LIST n)
    kMultiLine,   // +OK line, body, ".CRLF"; -ERR is a single line (RETR)
  };
  enum class Result {
    kNeedMore,  // everything consumed, response not complete yet
    kDone,      // a response is complete; unconsumed bytes remain the
                // caller's (the start of the next response, if pipelined)
    kError,     // protocol violation; see error()
  };

  // RFC 2449 limits status lines to 512 octets; be lenient but bounded so a
  // misbehaving server cannot make us buffer without end.
  static constexpr size_t kMaxStatusLine = 4096;

  // Starts a new response. `sink` receives the body of a multi-line +OK
  // response (may be null to discard it) and must outlive the response.
  void Begin(Kind kind, BodySink* sink);

  // Consumes a prefix of `data`, stores the count in *consumed.
  Result Feed(std::string_view data, size_t* consumed);

  // Valid after kDone.
  bool ok() const { return ok_; }
  // The status line without CRLF, e.g. "+OK 2 320".
  const std::string& status_line() const { return status_; }
  // Octets of unstuffed body delivered (multi-line +OK only).
  uint64_t body_bytes() const { return body_bytes_; }
  const std::string& error() const { return error_; }

 private:
  enum class State {
    kStatus,           // reading the status line
    kLineStart,        // at the start of a body line
    kLineStartDot,     // a body line started with '.'
    kLineStartDotCr,   // ... followed by CR: terminator if LF comes next
    kInLine,           // inside a body line
    kDone,
    kError,
  };
  Result Fail(std::string message);
  void Emit(std::string_view data);

  Kind kind_ = Kind::kSingleLine;
  BodySink* sink_ = nullptr;
  State state_ = State::kDone;
  bool ok_ = false;
  std::string status_;
  uint64_t body_bytes_ = 0;
  std::string error_;
};

// The index of the first LF at or after `pos` that is followed by a '.'
// (i.e. a body line starting with a dot), or npos. Exposed for tests.
size_t FindLfDot(std::string_view data, size_t pos);

// Parses "+OK nn mm" (STAT) into message count and maildrop size.
bool ParseStat(std::string_view status_line, int64_t* count, uint64_t* size);
// Parses a "n size" scan line (a LIST body line or "+OK n size").
bool ParseScanLine(std::string_view line, int64_t* n, uint64_t* size);

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_POP3_CLIENT_H_
