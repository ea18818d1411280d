// Handshakes, data and failure modes of TlsEngine, client <-> server in
// memory.
#include "tls/tls_engine.h"

#include <openssl/ssl.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::Pki;
using testing::TestClientContext;
using testing::TestServerContext;
using testing::Transfer;

std::shared_ptr<const ServerContext> EcdsaServer() {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().ecdsa};
  return TestServerContext(opts);
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

TEST(TlsEngineTest, Tls13HandshakeAndDataBothWays) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  EXPECT_TRUE(p.client->handshake_done());
  EXPECT_TRUE(p.server->handshake_done());
  EXPECT_EQ(p.client->version(), "TLSv1.3");
  EXPECT_EQ(p.server->version(), "TLSv1.3");
  EXPECT_FALSE(p.server->cipher().empty());
  EXPECT_EQ(p.server->sni(), "mail.example.test");
  EXPECT_EQ(p.client->sni(), "mail.example.test");
  EXPECT_FALSE(p.server->resumed());
  EXPECT_EQ(p.server->sni_tenant(), "");

  EXPECT_EQ(p.Send(*p.client, *p.server, "USER alice\r\n"), "USER alice\r\n");
  EXPECT_EQ(p.Send(*p.server, *p.client, "+OK\r\n"), "+OK\r\n");
  // Larger than one record (16 KB) and than the read buffer.
  std::string big = Pattern(100 * 1024 + 7);
  EXPECT_EQ(p.Send(*p.server, *p.client, big), big);
  EXPECT_EQ(p.Send(*p.client, *p.server, big), big);
}

TEST(TlsEngineTest, Tls12Handshake) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION));
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  EXPECT_EQ(p.server->version(), "TLSv1.2");
  std::string big = Pattern(40000);
  EXPECT_EQ(p.Send(*p.server, *p.client, big), big);
  EXPECT_EQ(p.Send(*p.client, *p.server, big), big);
}

TEST(TlsEngineTest, RefusesTls11) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(SSL_set_min_proto_version(p.client->ssl(), TLS1_VERSION));
  ASSERT_TRUE(SSL_set_max_proto_version(p.client->ssl(), TLS1_1_VERSION));
  EXPECT_FALSE(p.Handshake());
  EXPECT_NE(p.server->error().find("TLS handshake failed"), std::string::npos)
      << p.server->error();
}

TEST(TlsEngineTest, PrefersX25519) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  EXPECT_EQ(SSL_get_curve_id(p.server->ssl()), SSL_CURVE_X25519);
}

TEST(TlsEngineTest, GarbageIsAnError) {
  auto server = TlsEngine::NewServer(EcdsaServer());
  ASSERT_TRUE(server.ok());
  std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  (*server)->FeedCiphertext(junk);
  EXPECT_EQ((*server)->Handshake(), TlsResult::kError);
  EXPECT_FALSE((*server)->error().empty());
  // Stays failed.
  size_t n;
  char buf[16];
  EXPECT_EQ((*server)->Read(buf, &n), TlsResult::kError);
}

TEST(TlsEngineTest, GarbageAfterHandshakeIsAnError) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  std::string junk(64, '\x17');
  p.server->FeedCiphertext(junk);
  size_t n;
  char buf[64];
  EXPECT_EQ(p.server->Read(buf, &n), TlsResult::kError);
  EXPECT_NE(p.server->error().find("TLS read failed"), std::string::npos);
}

TEST(TlsEngineTest, HandshakeWantsReadWithoutInput) {
  auto server = TlsEngine::NewServer(EcdsaServer());
  ASSERT_TRUE(server.ok());
  EXPECT_EQ((*server)->Handshake(), TlsResult::kWantRead);
  auto client = TlsEngine::NewClient(TestClientContext(), "mail.example.test");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->Handshake(), TlsResult::kWantRead);
  EXPECT_FALSE((*client)->PendingOutput().empty());  // the ClientHello
}

TEST(TlsEngineTest, CloseNotifyIsClosed) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  p.Drain(*p.client);  // TLS 1.3 tickets
  p.client->Shutdown();
  Transfer(*p.client, *p.server);
  size_t n;
  char buf[64];
  EXPECT_EQ(p.server->Read(buf, &n), TlsResult::kClosed);
  EXPECT_EQ(n, 0u);
}

TEST(TlsEngineTest, DataThenCloseNotifyInOneFeed) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  ASSERT_EQ(p.client->Write(std::string("QUIT\r\n")), TlsResult::kOk);
  p.client->Shutdown();
  Transfer(*p.client, *p.server);
  char buf[64];
  size_t n;
  ASSERT_EQ(p.server->Read(buf, &n), TlsResult::kOk);
  EXPECT_EQ(std::string(buf, n), "QUIT\r\n");
  EXPECT_EQ(p.server->Read(buf, &n), TlsResult::kClosed);
}

TEST(TlsEngineTest, PendingPlaintextAndBufferedCiphertext) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  p.Drain(*p.client);
  ASSERT_EQ(p.server->Write(std::string(1000, 'x')), TlsResult::kOk);
  ASSERT_EQ(p.server->Write(std::string(1000, 'y')), TlsResult::kOk);
  Transfer(*p.server, *p.client);
  EXPECT_GT(p.client->BufferedCiphertext(), 2000u);
  char buf[10];
  size_t n;
  ASSERT_EQ(p.client->Read(buf, &n), TlsResult::kOk);
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(p.client->PendingPlaintext(), 990u);
}

TEST(TlsEngineTest, ReleaseBuffersFreesWhenIdle) {
  EnginePair p(TestClientContext(), EcdsaServer(), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  p.Drain(*p.client);
  std::string big = Pattern(64 * 1024);
  ASSERT_EQ(p.Send(*p.server, *p.client, big), big);
  EXPECT_GT(p.server->BufferCapacity(), 0u);
  EXPECT_GT(p.client->BufferCapacity(), 0u);

  // Output not yet sent: kept.
  ASSERT_EQ(p.server->Write(std::string("x")), TlsResult::kOk);
  p.server->ReleaseBuffers();
  EXPECT_GT(p.server->BufferCapacity(), 0u);
  EXPECT_FALSE(p.server->PendingOutput().empty());
  Transfer(*p.server, *p.client);
  EXPECT_EQ(p.Drain(*p.client), "x");

  p.server->ReleaseBuffers();
  p.client->ReleaseBuffers();
  EXPECT_EQ(p.server->BufferCapacity(), 0u);
  EXPECT_EQ(p.client->BufferCapacity(), 0u);
  // And they still work afterwards.
  EXPECT_EQ(p.Send(*p.client, *p.server, "NOOP\r\n"), "NOOP\r\n");
}

TEST(TlsEngineTest, WriteBeforeHandshakeWantsRead) {
  auto client = TlsEngine::NewClient(TestClientContext(), "mail.example.test");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->Write(std::string("x")), TlsResult::kWantRead);
}

}  // namespace
}  // namespace popgate::tls
