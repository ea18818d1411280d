// tls_record_bench: what one TLS 1.3 application-data record costs to seal
// and to open, with BoringSSL's EVP_AEAD (the primitive under every
// record popgate re-encrypts in user space): AES-128-GCM, AES-256-GCM and
// ChaCha20-Poly1305, for a full 16 KiB record and a 1 KiB one.
//
// Each record is built as TLS 1.3 does it (RFC 8446 section 5.2): nonce =
// static IV XOR sequence number, additional data = the 5-byte record header,
// plaintext = data + the inner content type byte. Handshake, record framing
// and buffer handling of popgate's TlsEngine are left out on purpose: the
// engine path (client and server engines in one thread, both directions'
// CPU) is tests/tls/tls_bench.cc, target popgate_tls_bench, BM_Bulk.
//
// Run: tls_record_bench [--benchmark_min_time=0.1]
#include <openssl/aead.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr size_t kHeader = 5;

// The AEADs of TLS 1.3's cipher suites; BENCHMARK_CAPTURE passes one.
using AeadFn = const EVP_AEAD* (*)();

// One direction's record protection state: key, static IV, sequence number.
class RecordLayer {
 public:
  explicit RecordLayer(const EVP_AEAD* aead) {
    // Fixed key and IV: the cost does not depend on their value.
    std::vector<uint8_t> key(EVP_AEAD_key_length(aead), 0x5a);
    iv_.assign(EVP_AEAD_nonce_length(aead), 0xa5);
    ok_ = EVP_AEAD_CTX_init(&ctx_, aead, key.data(), key.size(),
                            EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr) == 1;
  }
  ~RecordLayer() {
    if (ok_) EVP_AEAD_CTX_cleanup(&ctx_);
  }
  RecordLayer(const RecordLayer&) = delete;
  RecordLayer& operator=(const RecordLayer&) = delete;

  bool ok() const { return ok_; }
  // Rewinds the sequence number, so a batch of records can be opened again.
  void set_seq(uint64_t seq) { seq_ = seq; }

  // Seals `data` (+ content type 23) into `record` (header + ciphertext +
  // tag). `record` must hold data.size() + 1 + kHeader + overhead.
  bool Seal(const std::vector<uint8_t>& data, std::vector<uint8_t>& inner,
            std::vector<uint8_t>& record, size_t* record_len) {
    std::memcpy(inner.data(), data.data(), data.size());
    inner[data.size()] = 23;  // application_data
    const size_t inner_len = data.size() + 1;
    const size_t max_out = record.size() - kHeader;
    const size_t ct_len =
        inner_len + EVP_AEAD_max_overhead(EVP_AEAD_CTX_aead(&ctx_));
    WriteHeader(record.data(), ct_len);
    uint8_t nonce[EVP_AEAD_MAX_NONCE_LENGTH];
    NextNonce(nonce);
    size_t out_len = 0;
    if (EVP_AEAD_CTX_seal(&ctx_, record.data() + kHeader, &out_len, max_out,
                          nonce, iv_.size(), inner.data(), inner_len,
                          record.data(), kHeader) != 1) {
      return false;
    }
    *record_len = kHeader + out_len;
    return true;
  }

  // Opens `record` (as sealed by a peer with the same keys and sequence)
  // into `inner`; returns the data length (without the content type).
  bool Open(const uint8_t* record, size_t record_len,
            std::vector<uint8_t>& inner, size_t* data_len) {
    uint8_t nonce[EVP_AEAD_MAX_NONCE_LENGTH];
    NextNonce(nonce);
    size_t out_len = 0;
    if (EVP_AEAD_CTX_open(&ctx_, inner.data(), &out_len, inner.size(), nonce,
                          iv_.size(), record + kHeader, record_len - kHeader,
                          record, kHeader) != 1 ||
        out_len == 0 || inner[out_len - 1] != 23) {
      return false;
    }
    *data_len = out_len - 1;
    return true;
  }

 private:
  static void WriteHeader(uint8_t* h, size_t len) {
    h[0] = 23;  // opaque_type application_data
    h[1] = 0x03;
    h[2] = 0x03;  // legacy_record_version TLS 1.2
    h[3] = static_cast<uint8_t>(len >> 8);
    h[4] = static_cast<uint8_t>(len);
  }

  void NextNonce(uint8_t* nonce) {
    std::memcpy(nonce, iv_.data(), iv_.size());
    for (size_t i = 0; i < 8; ++i) {
      nonce[iv_.size() - 1 - i] ^= static_cast<uint8_t>(seq_ >> (8 * i));
    }
    ++seq_;
  }

  EVP_AEAD_CTX ctx_;
  std::vector<uint8_t> iv_;
  uint64_t seq_ = 0;
  bool ok_ = false;
};

// range(0): plaintext bytes per record.
void BM_Seal(benchmark::State& state, AeadFn aead_fn) {
  const EVP_AEAD* aead = aead_fn();
  const size_t size = static_cast<size_t>(state.range(0));
  RecordLayer layer(aead);
  if (!layer.ok()) {
    state.SkipWithError("EVP_AEAD_CTX_init failed");
    return;
  }
  std::vector<uint8_t> data(size, 'x');
  std::vector<uint8_t> inner(size + 1);
  std::vector<uint8_t> record(kHeader + size + 1 + EVP_AEAD_max_overhead(aead));
  size_t record_len = 0;
  for (auto _ : state) {
    if (!layer.Seal(data, inner, record, &record_len)) {
      state.SkipWithError("seal failed");
      break;
    }
    benchmark::DoNotOptimize(record.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetItemsProcessed(state.iterations());
}

// Opening needs a record sealed for the receiver's sequence number: seal a
// batch once, outside the timed loop, and rewind the receiver's sequence at
// the end of each batch to open the same records again.
void BM_Open(benchmark::State& state, AeadFn aead_fn) {
  const EVP_AEAD* aead = aead_fn();
  const size_t size = static_cast<size_t>(state.range(0));
  RecordLayer sender(aead);
  RecordLayer receiver(aead);
  if (!sender.ok() || !receiver.ok()) {
    state.SkipWithError("EVP_AEAD_CTX_init failed");
    return;
  }
  constexpr size_t kBatch = 64;
  const size_t record_cap = kHeader + size + 1 + EVP_AEAD_max_overhead(aead);
  std::vector<uint8_t> data(size, 'x');
  std::vector<uint8_t> inner(size + 1);
  std::vector<std::vector<uint8_t>> records(kBatch,
                                            std::vector<uint8_t>(record_cap));
  std::vector<size_t> lengths(kBatch);
  for (size_t i = 0; i < kBatch; ++i) {
    if (!sender.Seal(data, inner, records[i], &lengths[i])) {
      state.SkipWithError("seal failed");
      return;
    }
  }
  size_t next = 0;
  for (auto _ : state) {
    size_t data_len = 0;
    if (!receiver.Open(records[next].data(), lengths[next], inner, &data_len) ||
        data_len != size) {
      state.SkipWithError("open failed");
      break;
    }
    if (++next == kBatch) {
      next = 0;
      receiver.set_seq(0);
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_Seal, AES_128_GCM, EVP_aead_aes_128_gcm)
    ->Arg(16384)
    ->Arg(1024);
BENCHMARK_CAPTURE(BM_Seal, AES_256_GCM, EVP_aead_aes_256_gcm)
    ->Arg(16384)
    ->Arg(1024);
BENCHMARK_CAPTURE(BM_Seal, CHACHA20_POLY1305, EVP_aead_chacha20_poly1305)
    ->Arg(16384)
    ->Arg(1024);
BENCHMARK_CAPTURE(BM_Open, AES_128_GCM, EVP_aead_aes_128_gcm)
    ->Arg(16384)
    ->Arg(1024);
BENCHMARK_CAPTURE(BM_Open, AES_256_GCM, EVP_aead_aes_256_gcm)
    ->Arg(16384)
    ->Arg(1024);
BENCHMARK_CAPTURE(BM_Open, CHACHA20_POLY1305, EVP_aead_chacha20_poly1305)
    ->Arg(16384)
    ->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
