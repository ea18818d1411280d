// loadgen's TlsTransport against popgate's own server engine, in memory:
// handshakes with either certificate type, application data in arbitrary
// chunks, resumption (TLS 1.3 and 1.2), verification, garbage input.
#include "bench/loadgen/tls_transport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "tls/tls_context.h"
#include "tls/tls_engine.h"
#include "tests/tls/test_pki.h"

namespace popgate::loadgen {
namespace {

using tls::TlsEngine;
using tls::TlsResult;
using tls::testing::Pki;

std::shared_ptr<const tls::ServerContext> Server(bool tickets = true) {
  tls::ServerTlsOptions o;
  o.default_certs = {Pki().ecdsa, Pki().rsa};
  if (tickets) {
    auto keys = tls::TicketKeys::Create(absl::Hours(12), "");
    EXPECT_TRUE(keys.ok());
    o.ticket_keys = *keys;
  }
  auto ctx = tls::ServerContext::Build(o);
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return *ctx;
}

Options TlsOptions() {
  Options o;
  o.tls = TlsMode::kImplicit;
  std::string error;
  EXPECT_TRUE(ParseTarget("127.0.0.1:995", &o.target, &error)) << error;
  return o;
}

// One client transport and one server engine, pumped in memory. Wire bytes
// reach the client in pieces of `chunk` bytes (0 = all at once), as a
// socket might deliver them.
struct Pair {
  TlsTransport client;
  std::unique_ptr<TlsEngine> server;
  size_t chunk = 0;
  std::string received;  // plaintext the client got

  Pair(const TlsClient* c, std::shared_ptr<const tls::ServerContext> s)
      : client(c) {
    auto e = TlsEngine::NewServer(std::move(s));
    EXPECT_TRUE(e.ok()) << e.status();
    server = std::move(*e);
  }

  // Client wire -> server.
  void ToServer(std::string_view wire) {
    server->FeedCiphertext(std::span<const char>(wire.data(), wire.size()));
  }
  // Server output -> client; false on a client error.
  bool ToClient(std::string* error) {
    std::span<const char> out = server->PendingOutput();
    std::string wire(out.data(), out.size());
    server->ConsumeOutput(out.size());
    size_t step = chunk == 0 ? std::max<size_t>(wire.size(), 1) : chunk;
    for (size_t off = 0; off < wire.size(); off += step) {
      std::string_view piece =
          std::string_view(wire).substr(off, std::min(step, wire.size() - off));
      std::string_view plain;
      if (!client.Open(piece, &plain, error)) return false;
      received.append(plain);
      ToServer(client.TakeWire());
    }
    return true;
  }

  bool Handshake(TlsSession* slot, std::string* error) {
    if (!client.Reset(slot, error)) return false;
    if (!client.StartHandshake(error)) return false;
    ToServer(client.TakeWire());
    for (int round = 0; round < 10; ++round) {
      TlsResult r = server->Handshake();
      if (r == TlsResult::kError) {
        *error = server->error();
        return false;
      }
      if (!ToClient(error)) return false;
      if (client.handshake_done() && r == TlsResult::kOk) return true;
    }
    *error = "handshake did not finish";
    return false;
  }

  // Server application data -> client (tickets go out with it).
  bool ServerSays(const std::string& text, std::string* error) {
    if (server->Write(std::span<const char>(text.data(), text.size())) !=
        TlsResult::kOk) {
      *error = server->error();
      return false;
    }
    return ToClient(error);
  }

  std::string ServerReads() {
    std::string out;
    char buf[4096];
    size_t n = 0;
    while (server->Read(buf, &n) == TlsResult::kOk && n > 0) out.append(buf, n);
    return out;
  }
};

TEST(TlsTransportTest, FullHandshakeAndDataBothWays) {
  std::string error;
  auto client = TlsClient::Create(TlsOptions(), &error);
  ASSERT_NE(client, nullptr) << error;
  Pair p(client.get(), Server());
  ASSERT_TRUE(p.Handshake(nullptr, &error)) << error;
  EXPECT_FALSE(p.client.resumed());
  EXPECT_EQ(p.client.peer_key(), PeerKey::kEcdsa);  // preferred when allowed
  EXPECT_EQ(p.client.version(), "TLSv1.3");
  ASSERT_TRUE(p.ServerSays("+OK ready\r\n", &error)) << error;
  EXPECT_EQ(p.received, "+OK ready\r\n");

  std::string_view wire;
  ASSERT_TRUE(p.client.Seal("USER a\r\n", &wire, &error)) << error;
  EXPECT_NE(wire, "USER a\r\n");  // encrypted
  p.ToServer(wire);
  EXPECT_EQ(p.ServerReads(), "USER a\r\n");
}

TEST(TlsTransportTest, SigalgsChooseTheCertificate) {
  for (TlsVersion v : {TlsVersion::k12, TlsVersion::k13}) {
    for (TlsSigalgs s : {TlsSigalgs::kRsa, TlsSigalgs::kEcdsa}) {
      Options o = TlsOptions();
      o.tls_sigalgs = s;
      o.tls_version = v;
      std::string error;
      auto client = TlsClient::Create(o, &error);
      ASSERT_NE(client, nullptr) << error;
      Pair p(client.get(), Server());
      ASSERT_TRUE(p.Handshake(nullptr, &error)) << error;
      EXPECT_EQ(p.client.peer_key(),
                s == TlsSigalgs::kRsa ? PeerKey::kRsa : PeerKey::kEcdsa);
      EXPECT_EQ(p.client.version(),
                v == TlsVersion::k12 ? "TLSv1.2" : "TLSv1.3");
    }
  }
}

TEST(TlsTransportTest, LargeDataInOddChunks) {
  std::string error;
  auto client = TlsClient::Create(TlsOptions(), &error);
  ASSERT_NE(client, nullptr) << error;
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1000}, size_t{16389},
                       size_t{0}}) {
    Pair p(client.get(), Server());
    p.chunk = chunk;
    ASSERT_TRUE(p.Handshake(nullptr, &error)) << error;
    std::string big;
    for (int i = 0; big.size() < (chunk == 1 ? 50000u : 1200000u); ++i) {
      big += "line " + std::to_string(i) + " of the message\r\n";
    }
    ASSERT_TRUE(p.ServerSays(big, &error)) << error;
    ASSERT_EQ(p.received.size(), big.size()) << "chunk " << chunk;
    EXPECT_TRUE(p.received == big) << "chunk " << chunk;
  }
}

TEST(TlsTransportTest, ResumesWithTheSlotsSession) {
  for (TlsVersion v : {TlsVersion::k13, TlsVersion::k12}) {
    Options o = TlsOptions();
    o.tls_resume = true;
    o.tls_version = v;
    std::string error;
    auto client = TlsClient::Create(o, &error);
    ASSERT_NE(client, nullptr) << error;
    auto server = Server();
    TlsSession slot;
    {
      Pair p(client.get(), server);
      ASSERT_TRUE(p.Handshake(&slot, &error)) << error;
      EXPECT_FALSE(p.client.resumed());
      // TLS 1.3 tickets come with the server's first data.
      ASSERT_TRUE(p.ServerSays("+OK\r\n", &error)) << error;
      EXPECT_NE(slot.get(), nullptr);
    }
    for (int i = 0; i < 3; ++i) {
      Pair p(client.get(), server);
      ASSERT_TRUE(p.Handshake(&slot, &error)) << error;
      EXPECT_TRUE(p.client.resumed()) << "round " << i;
      EXPECT_EQ(p.client.peer_key(), PeerKey::kNone);
      ASSERT_TRUE(p.ServerSays("+OK\r\n", &error)) << error;
    }
  }
}

TEST(TlsTransportTest, NoResumptionWithoutTheFlag) {
  std::string error;
  auto client = TlsClient::Create(TlsOptions(), &error);
  ASSERT_NE(client, nullptr) << error;
  auto server = Server();
  TlsSession slot;
  for (int i = 0; i < 2; ++i) {
    Pair p(client.get(), server);
    ASSERT_TRUE(p.Handshake(&slot, &error)) << error;
    ASSERT_TRUE(p.ServerSays("+OK\r\n", &error)) << error;
    EXPECT_FALSE(p.client.resumed());
    EXPECT_EQ(slot.get(), nullptr);
  }
}

TEST(TlsTransportTest, VerifiesWhenAsked) {
  Options o = TlsOptions();
  o.tls_verify = true;
  o.tls_ca = Pki().ca_file;
  o.tls_server_name = "mail.example.test";
  std::string error;
  auto good = TlsClient::Create(o, &error);
  ASSERT_NE(good, nullptr) << error;
  {
    Pair p(good.get(), Server());
    EXPECT_TRUE(p.Handshake(nullptr, &error)) << error;
  }
  o.tls_server_name = "other.example.test";
  auto wrong_name = TlsClient::Create(o, &error);
  ASSERT_NE(wrong_name, nullptr) << error;
  {
    Pair p(wrong_name.get(), Server());
    EXPECT_FALSE(p.Handshake(nullptr, &error));
    EXPECT_NE(error.find("certificate"), std::string::npos) << error;
  }
  o.tls_ca = "/nonexistent/ca.pem";
  EXPECT_EQ(TlsClient::Create(o, &error), nullptr);
}

TEST(TlsTransportTest, GarbageIsAnError) {
  std::string error;
  auto client = TlsClient::Create(TlsOptions(), &error);
  ASSERT_NE(client, nullptr) << error;
  TlsTransport t(client.get());
  ASSERT_TRUE(t.Reset(nullptr, &error)) << error;
  ASSERT_TRUE(t.StartHandshake(&error)) << error;
  EXPECT_FALSE(t.TakeWire().empty());  // the ClientHello
  std::string_view plain;
  EXPECT_FALSE(t.Open("+OK POP3 ready\r\n", &plain, &error));
  EXPECT_FALSE(error.empty());
  std::string_view wire;
  EXPECT_FALSE(t.Seal("QUIT\r\n", &wire, &error));
}

}  // namespace
}  // namespace popgate::loadgen
