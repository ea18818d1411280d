// Dot-stuffed message bodies, built once and shared by every session that
// sends them. A RETR of a 100 MB message queues a reference into this
// buffer, never a copy, so N concurrent downloads cost one body in memory.
#ifndef POPGATE_TESTBED_SYNTH_WIRE_CACHE_H_
#define POPGATE_TESTBED_SYNTH_WIRE_CACHE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace popgate::synth {

class BodyWireCache {
 public:
  // SynthBodyWire(body_size), generated on first use. Bodies depend only on
  // their length, and messages of one configured size have one body length
  // (see kPaddedHeaderSize), so the cache holds about one entry per
  // configured size. Not thread-safe: pop3-synth has one thread.
  std::shared_ptr<const std::string> Get(size_t body_size);

  size_t entries() const { return bodies_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  absl::flat_hash_map<size_t, std::shared_ptr<const std::string>> bodies_;
  size_t bytes_ = 0;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_WIRE_CACHE_H_
