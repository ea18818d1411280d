#include "testbed/synth/wire_cache.h"

#include "testbed/synth/message.h"

namespace popgate::synth {

std::shared_ptr<const std::string> BodyWireCache::Get(size_t body_size) {
  auto it = bodies_.find(body_size);
  if (it != bodies_.end()) return it->second;
  auto body = std::make_shared<const std::string>(SynthBodyWire(body_size));
  bytes_ += body->size();
  bodies_.emplace(body_size, body);
  return body;
}

}  // namespace popgate::synth
