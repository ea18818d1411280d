// Frames POP3 command lines out of a byte stream, without any I/O, so it can
// be tested on split reads, overlong lines, NUL bytes and bare LF.
//
// RFC 2449 caps a command at 255 octets including CRLF. A longer line is
// reported once as kTooLong and its remainder discarded up to its newline,
// so a client cannot make us buffer without bound. A line that never ends
// would be discarded for ever, so a reader may bound that too (max_discard):
// past it, kEndless tells the caller to give up on the peer.
#ifndef POPGATE_POP3_LINE_READER_H_
#define POPGATE_POP3_LINE_READER_H_

#include <cstddef>
#include <span>
#include <string_view>

#include "base/block_pool.h"

namespace popgate {

class LineReader {
 public:
  static constexpr size_t kMaxLine = 255;  // octets, including CRLF

  enum class Result { kLine, kNeedMore, kTooLong, kEndless };

  // `max_line`: longest accepted line in octets including CRLF (255 for
  // client commands, 512 for server responses per RFC 2449).
  // `max_discard`: 0 = discard an overlong line's rest however long it is;
  // else once one overlong line has gone on for more than this many octets
  // without a newline, Next returns kEndless (once; it keeps discarding).
  explicit LineReader(size_t capacity = 1024, size_t max_line = kMaxLine,
                      size_t max_discard = 0);

  // Space to read into; never empty while a line is incomplete (the reader
  // compacts or discards as needed).
  std::span<char> WritableSpace();
  void Commit(size_t n);

  // kLine: `line` is the next line without its CRLF/LF, valid until the
  // next call. kTooLong: an overlong line was dropped (reported once per
  // line). kEndless: that line went past max_discard. kNeedMore: read more
  // bytes.
  Result Next(std::string_view& line);

  // Bytes received but not yet returned as lines (pipelined data the
  // session hands to the backend after login).
  std::string_view Pending() const {
    return {buf_.get() + start_, end_ - start_};
  }
  size_t capacity() const { return capacity_; }

 private:
  PooledBuffer buf_;  // a session's: from its worker's block pool
  size_t capacity_;
  size_t max_line_;
  size_t start_ = 0;
  size_t end_ = 0;
  size_t max_discard_;
  bool discarding_ = false;  // inside an overlong line
  size_t discarded_ = 0;     // octets of it dropped so far
  bool endless_reported_ = false;
};

}  // namespace popgate

#endif  // POPGATE_POP3_LINE_READER_H_
