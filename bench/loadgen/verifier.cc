#include "bench/loadgen/verifier.h"

#include <algorithm>
#include <cstring>

#include "testbed/synth/message.h"

namespace popgate::loadgen {

ExpectedMessage ExpectedContent::Get(const std::string& user, int n,
                                     uint64_t size) {
  auto key = std::make_tuple(user, n, size);
  auto h = headers_.find(key);
  synth::MessageLayout layout;
  if (h == headers_.end()) {
    layout = synth::SynthLayout(user, n, size);
    cached_bytes_ += layout.header_section.size();
    h = headers_
            .emplace(std::move(key), std::make_unique<std::string>(
                                         std::move(layout.header_section)))
            .first;
  }
  uint64_t body_size = size - h->second->size();
  auto b = bodies_.find(body_size);
  if (b == bodies_.end()) {
    auto body = std::make_unique<std::string>(synth::SynthBody(body_size));
    cached_bytes_ += body->size();
    b = bodies_.emplace(body_size, std::move(body)).first;
  }
  return ExpectedMessage{*h->second, *b->second};
}

void MessageVerifier::Begin(uint64_t expected_size,
                            const ExpectedMessage* expected) {
  expected_size_ = expected_size;
  check_content_ = expected != nullptr;
  if (check_content_) expected_ = *expected;
  offset_ = 0;
  mismatch_ = false;
  error_.clear();
}

void MessageVerifier::OnBodyData(std::string_view data) {
  uint64_t start = offset_;
  offset_ += data.size();
  if (mismatch_ || !check_content_) return;
  if (offset_ > expected_size_) {
    mismatch_ = true;
    error_ = "more than the expected " + std::to_string(expected_size_) +
             " octets";
    return;
  }
  // Compare against the header piece, then the body piece.
  std::string_view pieces[2] = {expected_.header, expected_.body};
  uint64_t piece_start = 0;
  for (std::string_view piece : pieces) {
    uint64_t piece_end = piece_start + piece.size();
    if (start < piece_end && !data.empty()) {
      size_t len = std::min<uint64_t>(data.size(), piece_end - start);
      if (std::memcmp(data.data(), piece.data() + (start - piece_start), len) !=
          0) {
        size_t i = 0;
        while (data[i] == piece[start - piece_start + i]) ++i;
        mismatch_ = true;
        error_ = "content differs at octet " + std::to_string(start + i);
        return;
      }
      data.remove_prefix(len);
      start += len;
    }
    piece_start = piece_end;
  }
}

bool MessageVerifier::Finish() {
  if (mismatch_) return false;
  if (offset_ != expected_size_) {
    error_ = "got " + std::to_string(offset_) + " octets, expected " +
             std::to_string(expected_size_);
    return false;
  }
  return true;
}

}  // namespace popgate::loadgen
