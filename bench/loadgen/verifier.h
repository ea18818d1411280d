// Checks a retrieved message against what pop3-synth serves for
// (user, n, size) - a pure function of the triple (bench/synth/message.h).
//
// The check compares the unstuffed bytes with the expected bytes as they
// stream in, instead of hashing them with SynthChecksum (FNV-1a): FNV-1a is
// one multiply per byte in a dependency chain, ~1 GB/s, which would make the
// generator the bottleneck of a 1-2 GB/s throughput run. memcmp against the
// expected message runs at memory speed and is a strictly stronger check
// (it also says WHERE the first difference is). The expected bodies are
// cached per size (the synthetic body depends only on its size) and the
// small header sections per (user, n, size).
#ifndef POPGATE_BENCH_LOADGEN_VERIFIER_H_
#define POPGATE_BENCH_LOADGEN_VERIFIER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>

#include "bench/loadgen/pop3_client.h"

namespace popgate::loadgen {

// The expected message, as two pieces whose concatenation is the message.
struct ExpectedMessage {
  std::string_view header;
  std::string_view body;
  uint64_t size() const { return header.size() + body.size(); }
};

// Per-thread cache (not thread-safe, on purpose: each worker has its own).
class ExpectedContent {
 public:
  // Returned views stay valid for the cache's lifetime.
  ExpectedMessage Get(const std::string& user, int n, uint64_t size);
  uint64_t cached_bytes() const { return cached_bytes_; }

 private:
  std::map<uint64_t, std::unique_ptr<std::string>> bodies_;
  std::map<std::tuple<std::string, int, uint64_t>, std::unique_ptr<std::string>>
      headers_;
  uint64_t cached_bytes_ = 0;
};

// A BodySink that checks the size and, if given an expected message, the
// content of one RETR body.
class MessageVerifier : public BodySink {
 public:
  // `expected` null: count and size-check only (--no-verify).
  void Begin(uint64_t expected_size, const ExpectedMessage* expected);
  void OnBodyData(std::string_view data) override;
  // True if exactly expected_size bytes arrived and all matched.
  bool Finish();
  // Why Finish() returned false.
  const std::string& error() const { return error_; }

 private:
  uint64_t expected_size_ = 0;
  ExpectedMessage expected_;
  bool check_content_ = false;
  uint64_t offset_ = 0;
  bool mismatch_ = false;
  std::string error_;
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_VERIFIER_H_
