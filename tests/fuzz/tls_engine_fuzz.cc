// The TLS engine's server side (tls/tls_engine) fed arbitrary client bytes
// in memory, as a client's first flights arrive on a TLS listener: the
// record layer, ClientHello parsing (SNI selecting a tenant's certificate,
// ALPN, session tickets decrypted with our ticket keys), alerts. Input:
// byte 0 = how many of the next bytes are read sizes, then the bytes.
//
// The context is built once, like a listener's: ECDSA certificates from the
// TLS tests' throw-away PKI, an SNI group, tickets with a fixed key file
// (so that ticket names are stable and the fuzzer can reach the ticket
// decryption), traffic-secret capture for kernel TLS.
//
// Properties: nothing crashes, leaks or reads out of bounds; an error has
// a reason; the engine never hands out plaintext before its handshake is
// done; a failed engine stays failed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/tls/test_pki.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"
#include "tls/tls_engine.h"

namespace {

using popgate::tls::ServerContext;
using popgate::tls::TlsEngine;
using popgate::tls::TlsResult;

std::shared_ptr<const ServerContext> Context() {
  static const std::shared_ptr<const ServerContext> ctx = [] {
    const popgate::tls::testing::TestPki& pki = popgate::tls::testing::Pki();
    popgate::tls::ServerTlsOptions opts;
    opts.default_certs = {pki.ecdsa};
    opts.sni_groups = {
        {"acme", {"mail.acme.test", "*.acme.net"}, {pki.acme_ecdsa}}};
    const std::string key_file = popgate::tls::testing::WriteTempFile(
        "ticket.key", std::string(48, 'k'));
    absl::StatusOr<std::shared_ptr<popgate::tls::TicketKeys>> keys =
        popgate::tls::TicketKeys::Create(absl::Hours(12), key_file);
    FUZZ_CHECK(keys.ok());
    opts.ticket_keys = *keys;
    opts.capture_traffic_secrets = true;
    absl::StatusOr<std::shared_ptr<const ServerContext>> built =
        ServerContext::Build(opts);
    FUZZ_CHECK(built.ok());
    return *built;
  }();
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Context();  // the PKI and context once, outside the timed executions
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n_sizes = std::min<size_t>(data[0] % 8, size - 1);
  std::string_view sizes(reinterpret_cast<const char*>(data) + 1, n_sizes);
  std::string_view input(reinterpret_cast<const char*>(data) + 1 + n_sizes,
                         size - 1 - n_sizes);

  absl::StatusOr<std::unique_ptr<TlsEngine>> made =
      TlsEngine::NewServer(Context());
  FUZZ_CHECK(made.ok());
  TlsEngine& e = **made;
  e.SetAsyncWaker([] {});  // ECDSA signs inline; never called

  std::vector<char> out;
  char plain[4096];
  bool failed = false;
  size_t k = 0;
  while (!input.empty() && !failed) {
    size_t n = input.size();
    if (!sizes.empty()) {
      const size_t want = static_cast<unsigned char>(sizes[k++ % n_sizes]);
      if (want != 0) n = std::min(n, want * 16);
    }
    e.FeedCiphertext(std::span<const char>(input.data(), n));
    input.remove_prefix(n);
    TlsResult r = e.handshake_done() ? TlsResult::kOk : e.Handshake();
    if (r == TlsResult::kError) {
      FUZZ_CHECK(!e.error().empty());
      failed = true;
    }
    if (e.handshake_done()) {
      size_t got = 0;
      while ((r = e.Read(plain, &got)) == TlsResult::kOk && got > 0) {
      }
      if (r == TlsResult::kError) failed = true;
    } else if (!failed) {
      size_t got = 0;
      FUZZ_CHECK(e.Read(plain, &got) != TlsResult::kOk || got == 0);
    }
    e.TakeOutput(out);  // what we would send to the client
  }
  if (failed) {
    // Fatal means fatal: nothing more happens on this connection.
    FUZZ_CHECK(e.Handshake() == TlsResult::kError || e.handshake_done());
  }
  e.Shutdown();
  e.TakeOutput(out);
  e.ReleaseBuffers();
  return 0;
}
