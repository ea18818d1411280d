// The client side (popgate -> backend): certificate and name verification,
// client certificates, configuration errors.
#include <openssl/ssl.h>

#include <string>

#include "gtest/gtest.h"
#include "tls/tls_context.h"
#include "tls/tls_engine.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::Pki;
using testing::TestClientContext;
using testing::TestServerContext;

std::shared_ptr<const ServerContext> ServerWith(const CertKeyFiles& cert) {
  ServerTlsOptions opts;
  opts.default_certs = {cert};
  return TestServerContext(opts);
}

// Handshake result and the client's error.
std::string ClientError(const CertKeyFiles& cert, const std::string& name,
                        bool verify = true) {
  EnginePair p(TestClientContext(verify), ServerWith(cert), name);
  if (p.Handshake()) return "";
  return p.client->error();
}

TEST(ClientVerifyTest, GoodCertificatePasses) {
  EXPECT_EQ(ClientError(Pki().ecdsa, "mail.example.test"), "");
  EXPECT_EQ(ClientError(Pki().rsa, "MAIL.example.test"), "");
}

TEST(ClientVerifyTest, WrongNameFails) {
  std::string err = ClientError(Pki().ecdsa, "pop.example.test");
  EXPECT_NE(err.find("certificate verify failed: "), std::string::npos) << err;
  EXPECT_NE(err.find("ostname mismatch"), std::string::npos) << err;
}

TEST(ClientVerifyTest, IpAddressIsCheckedAsAddress) {
  // The certificate has no IP SAN; no SNI is sent for an address.
  EnginePair p(TestClientContext(), ServerWith(Pki().ecdsa), "127.0.0.1");
  EXPECT_FALSE(p.Handshake());
  EXPECT_EQ(p.server->sni(), "");
  EXPECT_NE(p.client->error().find("certificate verify failed"),
            std::string::npos)
      << p.client->error();
}

TEST(ClientVerifyTest, ExpiredFails) {
  std::string err = ClientError(Pki().expired, "mail.example.test");
  EXPECT_NE(err.find("certificate verify failed: certificate has expired"),
            std::string::npos)
      << err;
}

TEST(ClientVerifyTest, UnknownCaFails) {
  std::string err = ClientError(Pki().untrusted, "mail.example.test");
  EXPECT_NE(err.find("certificate verify failed: "), std::string::npos) << err;
  EXPECT_NE(err.find("local issuer"), std::string::npos) << err;
}

TEST(ClientVerifyTest, ServerSeesTheAlert) {
  EnginePair p(TestClientContext(), ServerWith(Pki().untrusted),
               "mail.example.test");
  EXPECT_FALSE(p.Handshake());
  testing::Transfer(*p.client, *p.server);
  EXPECT_EQ(p.server->Handshake(), TlsResult::kError);
  EXPECT_NE(p.server->error().find("received fatal alert"), std::string::npos)
      << p.server->error();
}

TEST(ClientVerifyTest, VerifyOffAcceptsAnything) {
  EXPECT_EQ(ClientError(Pki().untrusted, "whatever", /*verify=*/false), "");
  EXPECT_EQ(ClientError(Pki().expired, "", /*verify=*/false), "");
}

TEST(ClientVerifyTest, VerifyNeedsAName) {
  auto e = TlsEngine::NewClient(TestClientContext(), "");
  EXPECT_FALSE(e.ok());
}

TEST(ClientVerifyTest, ClientCertificateIsSent) {
  ClientTlsOptions opts;
  opts.ca_file = Pki().ca_file;
  opts.client_cert = Pki().client;
  auto cctx = ClientContext::Build(opts);
  ASSERT_TRUE(cctx.ok()) << cctx.status();
  EnginePair p(*cctx, ServerWith(Pki().ecdsa), "mail.example.test");
  // Make the server ask for one (popgate's listeners do not).
  SSL_set_verify(p.server->ssl(), SSL_VERIFY_PEER,
                 [](int, X509_STORE_CTX*) { return 1; });
  ASSERT_TRUE(p.Handshake()) << p.client->error() << p.server->error();
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(p.server->ssl()));
  ASSERT_NE(peer, nullptr);
}

TEST(ClientContextTest, Errors) {
  ClientTlsOptions opts;
  opts.ca_file = "/nonexistent/ca.pem";
  auto ctx = ClientContext::Build(opts);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("/nonexistent/ca.pem"),
            std::string::npos);

  opts.ca_file = Pki().ca_file;
  opts.client_cert = {Pki().client.cert_file, ""};
  EXPECT_FALSE(ClientContext::Build(opts).ok());
}

TEST(ClientContextTest, SystemDefaultCaPaths) {
  ClientTlsOptions opts;  // verify on, no ca_file
  auto ctx = ClientContext::Build(opts);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  // Our test CA is not a system CA.
  EnginePair p(*ctx, ServerWith(Pki().ecdsa), "mail.example.test");
  EXPECT_FALSE(p.Handshake());
  EXPECT_NE(p.client->error().find("certificate verify failed"),
            std::string::npos);
}

}  // namespace
}  // namespace popgate::tls
