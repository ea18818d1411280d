// Which certificate the server picks: by SNI (tenant groups, wildcards,
// case) and by what the client can verify (ECDSA over RSA); RSA signing on
// the pool.
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "auth/hash_pool.h"
#include "gtest/gtest.h"
#include "tls/tls_context.h"
#include "tls/tls_engine.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::PeerCommonName;
using testing::PeerKeyType;
using testing::Pki;
using testing::TestClientContext;
using testing::TestServerContext;

ServerTlsOptions TenantOptions() {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().ecdsa, Pki().rsa};
  CertGroup acme;
  acme.tenant = "acme";
  acme.names = {"mail.acme.test", "*.acme.net"};
  acme.certs = {Pki().acme_rsa, Pki().acme_ecdsa};  // order must not matter
  opts.sni_groups = {acme};
  return opts;
}

void OnlyRsa(SSL* client) {
  static const uint16_t kRsa[] = {SSL_SIGN_RSA_PSS_RSAE_SHA256,
                                  SSL_SIGN_RSA_PKCS1_SHA256};
  ASSERT_TRUE(SSL_set_verify_algorithm_prefs(client, kRsa, 2));
}

struct SniCase {
  std::string sni;
  std::string tenant;
  std::string cn;
};

class SniTest : public ::testing::TestWithParam<SniCase> {};

TEST_P(SniTest, PicksGroup) {
  auto server = TestServerContext(TenantOptions());
  // Verification off: the wildcard names are not in every certificate.
  EnginePair p(TestClientContext(/*verify=*/false), server, GetParam().sni);
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  EXPECT_EQ(p.server->sni_tenant(), GetParam().tenant);
  EXPECT_EQ(PeerCommonName(*p.client), GetParam().cn);
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_EC);
}

INSTANTIATE_TEST_SUITE_P(
    Names, SniTest,
    ::testing::Values(SniCase{"mail.acme.test", "acme", "mail.acme.test"},
                      SniCase{"MAIL.Acme.TEST", "acme", "mail.acme.test"},
                      SniCase{"pop.acme.net", "acme", "mail.acme.test"},
                      // A wildcard covers one label only.
                      SniCase{"a.b.acme.net", "", "mail.example.test"},
                      SniCase{"acme.net", "", "mail.example.test"},
                      SniCase{"mail.example.test", "", "mail.example.test"},
                      SniCase{"unknown.test", "", "mail.example.test"},
                      SniCase{"", "", "mail.example.test"}));

TEST(CertSelectionTest, TenantNameVerifiesWithCa) {
  EnginePair p(TestClientContext(), TestServerContext(TenantOptions()),
               "pop.acme.net");
  ASSERT_TRUE(p.Handshake()) << p.client->error();
  EXPECT_EQ(p.server->sni_tenant(), "acme");
}

TEST(CertSelectionTest, RsaWhenClientOnlyVerifiesRsa) {
  for (bool tls12 : {false, true}) {
    SCOPED_TRACE(tls12 ? "TLS 1.2" : "TLS 1.3");
    EnginePair p(TestClientContext(), TestServerContext(TenantOptions()),
                 "mail.acme.test");
    OnlyRsa(p.client->ssl());
    if (tls12) SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
    ASSERT_TRUE(p.Handshake())
        << p.client->error() << " / " << p.server->error();
    EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
    EXPECT_EQ(PeerCommonName(*p.client), "mail.acme.test");
    EXPECT_EQ(p.server->sni_tenant(), "acme");
  }
}

TEST(CertSelectionTest, EcdsaInTls12) {
  EnginePair p(TestClientContext(), TestServerContext(TenantOptions()),
               "mail.example.test");
  SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
  ASSERT_TRUE(p.Handshake());
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_EC);
}

TEST(CertSelectionTest, Tls12ClientWithoutEcdsaSuitesGetsRsa) {
  EnginePair p(TestClientContext(), TestServerContext(TenantOptions()),
               "mail.example.test");
  SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
  ASSERT_TRUE(SSL_set_strict_cipher_list(p.client->ssl(),
                                         "ECDHE-RSA-AES128-GCM-SHA256"));
  ASSERT_TRUE(p.Handshake()) << p.server->error();
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
}

TEST(CertSelectionTest, Tls12ClientWithoutP256GetsRsa) {
  EnginePair p(TestClientContext(), TestServerContext(TenantOptions()),
               "mail.example.test");
  SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
  ASSERT_TRUE(SSL_set1_curves_list(p.client->ssl(), "X25519:P-384"));
  ASSERT_TRUE(p.Handshake()) << p.server->error();
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
}

TEST(CertSelectionTest, OnlyRsaConfigured) {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().rsa};
  EnginePair p(TestClientContext(), TestServerContext(opts),
               "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
  EXPECT_EQ(p.async_rounds, 0);  // no pool: signed inline
}

TEST(CertSelectionTest, AsyncRsaSigningOnPool) {
  auth::HashPool pool(2);
  ServerTlsOptions opts = TenantOptions();
  opts.sign_pool = &pool;
  auto server = TestServerContext(opts);
  for (bool tls12 : {false, true}) {
    SCOPED_TRACE(tls12 ? "TLS 1.2" : "TLS 1.3");
    EnginePair p(TestClientContext(), server, "mail.example.test");
    OnlyRsa(p.client->ssl());
    if (tls12) SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
    ASSERT_TRUE(p.Handshake())
        << p.client->error() << " / " << p.server->error();
    EXPECT_EQ(p.async_rounds, 1);
    EXPECT_EQ(p.waker.count(), 1);
    EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
    EXPECT_EQ(p.Send(*p.client, *p.server, "CAPA\r\n"), "CAPA\r\n");
  }
}

TEST(CertSelectionTest, EcdsaStaysInlineWithPool) {
  auth::HashPool pool(1);
  ServerTlsOptions opts = TenantOptions();
  opts.sign_pool = &pool;
  EnginePair p(TestClientContext(), TestServerContext(opts),
               "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_EC);
  EXPECT_EQ(p.async_rounds, 0);
}

TEST(CertSelectionTest, AsyncHandshakeBeforeCompletionStillWaits) {
  auth::HashPool pool(1);
  ServerTlsOptions opts;
  opts.default_certs = {Pki().rsa};
  opts.sign_pool = &pool;
  EnginePair p(TestClientContext(), TestServerContext(opts),
               "mail.example.test");
  // Block the pool so the signature cannot be ready yet.
  std::mutex gate;
  gate.lock();
  pool.Submit([&gate] { std::lock_guard<std::mutex> l(gate); });
  ASSERT_EQ(p.client->Handshake(), TlsResult::kWantRead);
  testing::Transfer(*p.client, *p.server);
  EXPECT_EQ(p.server->Handshake(), TlsResult::kWantAsync);
  EXPECT_EQ(p.server->Handshake(), TlsResult::kWantAsync);  // still pending
  gate.unlock();
  ASSERT_TRUE(p.waker.WaitFor(1));
  // The signed flight is out; now the server waits for the client Finished.
  EXPECT_EQ(p.server->Handshake(), TlsResult::kWantRead);
  EXPECT_FALSE(p.server->PendingOutput().empty());
  ASSERT_TRUE(p.Handshake()) << p.client->error();
  EXPECT_EQ(PeerKeyType(*p.client), EVP_PKEY_RSA);
}

TEST(CertSelectionTest, FullSigningQueueFailsTheHandshakeCleanly) {
  // A bounded queue (issue 8, 1.10): with no room the signature is refused
  // at once and the handshake fails, rather than waiting without bound.
  auth::HashPool pool(1, /*queue_limit=*/0);
  ServerTlsOptions opts;
  opts.default_certs = {Pki().rsa};
  opts.sign_pool = &pool;
  EnginePair p(TestClientContext(), TestServerContext(opts),
               "mail.example.test");
  ASSERT_EQ(p.client->Handshake(), TlsResult::kWantRead);
  testing::Transfer(*p.client, *p.server);
  EXPECT_EQ(p.server->Handshake(), TlsResult::kError);
  EXPECT_EQ(pool.rejected(), 1u);
  EXPECT_FALSE(p.server->error().empty());
}

TEST(CertSelectionTest, EngineDestroyedWhileSigning) {
  auth::HashPool pool(1);
  ServerTlsOptions opts;
  opts.default_certs = {Pki().rsa};
  opts.sign_pool = &pool;
  auto server = TestServerContext(opts);
  std::mutex gate;
  gate.lock();
  pool.Submit([&gate] { std::lock_guard<std::mutex> l(gate); });
  int woken = 0;
  {
    EnginePair p(TestClientContext(), server, "mail.example.test");
    p.server->SetAsyncWaker([&woken] { ++woken; });
    ASSERT_EQ(p.client->Handshake(), TlsResult::kWantRead);
    testing::Transfer(*p.client, *p.server);
    ASSERT_EQ(p.server->Handshake(), TlsResult::kWantAsync);
  }  // engines gone with the job still queued
  gate.unlock();
  pool.Submit([] {});  // FIFO: runs after the signing job
  // HashPool's destructor drains; make sure the job ran by waiting for it.
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  pool.Submit([&] {
    std::lock_guard<std::mutex> l(done_mu);
    done = true;
    done_cv.notify_all();
  });
  std::unique_lock<std::mutex> l(done_mu);
  done_cv.wait(l, [&] { return done; });
  EXPECT_EQ(woken, 0);
}

TEST(CertSelectionTest, NoDefaultAndUnknownNameFails) {
  ServerTlsOptions opts;
  CertGroup acme;
  acme.tenant = "acme";
  acme.names = {"mail.acme.test"};
  acme.certs = {Pki().acme_ecdsa};
  opts.sni_groups = {acme};
  auto server = TestServerContext(opts);
  {
    EnginePair p(TestClientContext(), server, "mail.acme.test");
    EXPECT_TRUE(p.Handshake());
  }
  EnginePair p(TestClientContext(false), server, "other.test");
  EXPECT_FALSE(p.Handshake());
  EXPECT_FALSE(p.server->error().empty());
}

TEST(ServerContextTest, ErrorsNameTheFile) {
  ServerTlsOptions opts;
  opts.default_certs = {{"/nonexistent/cert.pem", Pki().ecdsa.key_file}};
  auto ctx = ServerContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("/nonexistent/cert.pem"),
            std::string::npos);

  opts.default_certs = {{Pki().ecdsa.cert_file, Pki().rsa.key_file}};
  ctx = ServerContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("does not match"), std::string::npos)
      << ctx.status();
  EXPECT_NE(ctx.status().message().find(Pki().rsa.key_file), std::string::npos);

  std::string junk = testing::WriteTempFile("junk.pem", "not a pem file\n");
  opts.default_certs = {{junk, Pki().ecdsa.key_file}};
  ctx = ServerContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find(junk), std::string::npos);

  opts.default_certs = {{Pki().ecdsa.cert_file, junk}};
  ctx = ServerContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("key_file " + junk), std::string::npos)
      << ctx.status();

  opts.default_certs = {};
  ctx = ServerContext::Build(opts);
  EXPECT_FALSE(ctx.ok());
}

TEST(ServerContextTest, BadNames) {
  ServerTlsOptions opts = TenantOptions();
  opts.sni_groups[0].names.push_back("a.*.test");
  EXPECT_FALSE(ServerContext::Build(opts).ok());
  opts = TenantOptions();
  opts.sni_groups.push_back(opts.sni_groups[0]);
  auto ctx = ServerContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("twice"), std::string::npos);
}

}  // namespace
}  // namespace popgate::tls
