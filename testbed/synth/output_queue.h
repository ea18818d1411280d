// Pending output of one connection: a queue of byte ranges, each either
// owned (small responses, coalesced) or a reference into a shared buffer
// (message bodies, see wire_cache.h). The server gathers ranges into iovecs
// and reports how much the kernel took; nothing is copied per connection
// for large bodies.
#ifndef POPGATE_TESTBED_SYNTH_OUTPUT_QUEUE_H_
#define POPGATE_TESTBED_SYNTH_OUTPUT_QUEUE_H_

#include <sys/uio.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

namespace popgate::synth {

class OutputQueue {
 public:
  // Copies `bytes` (into the last owned chunk when there is room).
  void Append(std::string_view bytes);
  // Queues buffer[offset, offset + length) by reference. Short ranges are
  // copied instead: an extra iovec costs more than a small memcpy.
  void AppendShared(std::shared_ptr<const std::string> buffer, size_t offset,
                    size_t length);

  // Fills up to `max` iovecs with the oldest pending bytes; returns how many.
  int Gather(struct iovec* iov, int max) const;
  // Drops the first `n` pending bytes (what the kernel accepted).
  void Consume(size_t n);

  bool empty() const { return chunks_.empty(); }
  size_t chunk_count() const { return chunks_.size(); }
  // Bytes held in owned chunks: the memory this queue costs.
  size_t owned_bytes() const { return owned_bytes_; }
  size_t pending_bytes() const { return pending_bytes_; }

  // Removes and returns everything pending. For tests.
  std::string TakeAll();
  // Drops everything pending (the peer is gone).
  void Clear();

 private:
  struct Chunk {
    std::string owned;
    std::shared_ptr<const std::string> shared;  // null for owned chunks
    size_t begin = 0;
    size_t end = 0;
    const char* data() const {
      return (shared ? shared->data() : owned.data()) + begin;
    }
    size_t size() const { return end - begin; }
  };

  std::deque<Chunk> chunks_;
  size_t owned_bytes_ = 0;
  size_t pending_bytes_ = 0;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_OUTPUT_QUEUE_H_
