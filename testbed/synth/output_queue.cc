#include "testbed/synth/output_queue.h"

#include <algorithm>
#include <utility>

namespace popgate::synth {
namespace {

// Owned chunks grow up to this size before a new one is started, so many
// pipelined small responses go out in one iovec.
constexpr size_t kOwnedChunkLimit = 16 * 1024;
constexpr size_t kCopyBelow = 4 * 1024;

}  // namespace

void OutputQueue::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  if (chunks_.empty() || chunks_.back().shared ||
      chunks_.back().owned.size() + bytes.size() > kOwnedChunkLimit) {
    chunks_.emplace_back();
  }
  Chunk& c = chunks_.back();
  c.owned.append(bytes);
  c.end = c.owned.size();
  owned_bytes_ += bytes.size();
  pending_bytes_ += bytes.size();
}

void OutputQueue::AppendShared(std::shared_ptr<const std::string> buffer,
                               size_t offset, size_t length) {
  if (length == 0) return;
  if (length < kCopyBelow) {
    Append(std::string_view(*buffer).substr(offset, length));
    return;
  }
  Chunk& c = chunks_.emplace_back();
  c.shared = std::move(buffer);
  c.begin = offset;
  c.end = offset + length;
  pending_bytes_ += length;
}

int OutputQueue::Gather(struct iovec* iov, int max) const {
  int n = 0;
  for (auto it = chunks_.begin(); it != chunks_.end() && n < max; ++it, ++n) {
    iov[n].iov_base = const_cast<char*>(it->data());
    iov[n].iov_len = it->size();
  }
  return n;
}

void OutputQueue::Consume(size_t n) {
  pending_bytes_ -= std::min(n, pending_bytes_);
  while (n > 0 && !chunks_.empty()) {
    Chunk& c = chunks_.front();
    size_t take = std::min(n, c.size());
    c.begin += take;
    n -= take;
    if (!c.shared) owned_bytes_ -= take;
    if (c.begin == c.end) chunks_.pop_front();
  }
}

std::string OutputQueue::TakeAll() {
  std::string out;
  out.reserve(pending_bytes_);
  for (const Chunk& c : chunks_) out.append(c.data(), c.size());
  chunks_.clear();
  owned_bytes_ = 0;
  pending_bytes_ = 0;
  return out;
}

void OutputQueue::Clear() {
  chunks_.clear();
  owned_bytes_ = 0;
  pending_bytes_ = 0;
}

}  // namespace popgate::synth
