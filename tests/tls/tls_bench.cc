// TLS engine microbenchmarks, client and server engine in one thread:
// full handshakes (ECDSA P-256, RSA-2048), resumed handshakes, and bulk
// record throughput. Both sides' CPU is counted, so a server-only rate is
// higher. Run: popgate_tls_bench [--benchmark_filter=...]
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"
#include "tls/tls_engine.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::Pki;

std::shared_ptr<const ServerContext> Server(const CertKeyFiles& cert) {
  ServerTlsOptions opts;
  opts.default_certs = {cert};
  opts.ticket_keys = *TicketKeys::Create(absl::Hours(1), "");
  return testing::TestServerContext(opts);
}

void FullHandshake(benchmark::State& state, const CertKeyFiles& cert,
                   bool tls12) {
  auto server = Server(cert);
  auto client = testing::TestClientContext(/*verify=*/false);
  for (auto _ : state) {
    EnginePair p(client, server, "mail.example.test");
    if (tls12) SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
    if (!p.Handshake()) state.SkipWithError("handshake failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_FullHandshakeEcdsa13(benchmark::State& s) {
  FullHandshake(s, Pki().ecdsa, false);
}
void BM_FullHandshakeRsa13(benchmark::State& s) {
  FullHandshake(s, Pki().rsa, false);
}
void BM_FullHandshakeEcdsa12(benchmark::State& s) {
  FullHandshake(s, Pki().ecdsa, true);
}
BENCHMARK(BM_FullHandshakeEcdsa13);
BENCHMARK(BM_FullHandshakeRsa13);
BENCHMARK(BM_FullHandshakeEcdsa12);

void BM_ResumedHandshake13(benchmark::State& state) {
  auto server = Server(Pki().ecdsa);
  auto client = testing::TestClientContext(/*verify=*/false);
  testing::SessionStore store(*client);
  {
    EnginePair p(client, server, "mail.example.test");
    p.Handshake();
    p.Send(*p.server, *p.client, "+OK\r\n");  // carries the tickets
  }
  bssl::UniquePtr<SSL_SESSION> session(store.latest());
  SSL_SESSION_up_ref(session.get());
  for (auto _ : state) {
    EnginePair p(client, server, "mail.example.test");
    SSL_set_session(p.client->ssl(), session.get());
    if (!p.Handshake() || !p.server->resumed()) {
      state.SkipWithError("not resumed");
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResumedHandshake13);

// Server encrypts, client decrypts, 16 KB writes (one full record each).
void BM_Bulk(benchmark::State& state) {
  EnginePair p(testing::TestClientContext(false), Server(Pki().ecdsa),
               "mail.example.test");
  p.Handshake();
  std::string chunk(static_cast<size_t>(state.range(0)), 'x');
  std::vector<char> buf(16384);
  for (auto _ : state) {
    p.server->Write(chunk);
    testing::Transfer(*p.server, *p.client);
    size_t n;
    while (p.client->Read(buf, &n) == TlsResult::kOk) {
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Bulk)->Arg(16384)->Arg(1024);

}  // namespace
}  // namespace popgate::tls

BENCHMARK_MAIN();
