// Kernel TLS hand-off material. This machine's kernel has no "tls" ULP, so
// the kernel's side is played here in user space: records sealed with the
// exported TX keys (nonce and additional data built the way the kernel
// builds them) must be accepted by the real peer, and the peer's records
// must open with the exported RX keys. A wrong key, IV, salt split or
// sequence number makes these tests fail.
#include "tls/ktls_material.h"

#include <netinet/in.h>
#include <openssl/aead.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tls/ktls_socket.h"
#include "tls/tls_engine.h"
#include "tls/traffic_secrets.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::Pki;
using testing::TestServerContext;

constexpr uint8_t kAppData = 23;

std::shared_ptr<const ServerContext> Server(bool capture) {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().ecdsa};
  opts.capture_traffic_secrets = capture;
  return TestServerContext(opts);
}

std::shared_ptr<const ClientContext> Client(bool capture) {
  ClientTlsOptions opts;
  opts.ca_file = Pki().ca_file;
  opts.capture_traffic_secrets = capture;
  auto ctx = ClientContext::Build(opts);
  if (!ctx.ok()) throw std::runtime_error(ctx.status().ToString());
  return *ctx;
}

const EVP_AEAD* Aead(KtlsCipher c) {
  switch (c) {
    case KtlsCipher::kAes128Gcm:
      return EVP_aead_aes_128_gcm();
    case KtlsCipher::kAes256Gcm:
      return EVP_aead_aes_256_gcm();
    case KtlsCipher::kChacha20Poly1305:
      return EVP_aead_chacha20_poly1305();
  }
  return nullptr;
}

void PutU64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// The per-record nonce: TLS 1.3 and ChaCha20 XOR the sequence number into
// the IV; TLS 1.2 AES-GCM sends salt || explicit part, the explicit part
// starting at the exported value and counting up with the records.
std::vector<uint8_t> Nonce(const KtlsMaterial& m, const KtlsDirection& d,
                           uint64_t seq) {
  std::vector<uint8_t> n(d.nonce_base.begin(), d.nonce_base.end());
  uint8_t s[8];
  PutU64(seq, s);
  bool xor_seq =
      m.version == TLS1_3_VERSION || m.cipher == KtlsCipher::kChacha20Poly1305;
  if (xor_seq) {
    for (int i = 0; i < 8; ++i) n[4 + i] ^= s[i];
  } else {
    uint64_t explicit_part = 0;
    for (int i = 4; i < 12; ++i) explicit_part = explicit_part << 8 | n[i];
    PutU64(explicit_part + (seq - d.seq), n.data() + 4);
  }
  return n;
}

bool ExplicitNonce(const KtlsMaterial& m) {
  return m.version == TLS1_2_VERSION &&
         m.cipher != KtlsCipher::kChacha20Poly1305;
}

// Seals `text` as the kernel would send record number `seq`.
std::string SealRecord(const KtlsMaterial& m, uint64_t seq,
                       const std::string& text) {
  const KtlsDirection& d = m.tx;
  bssl::ScopedEVP_AEAD_CTX ctx;
  EXPECT_TRUE(EVP_AEAD_CTX_init(ctx.get(), Aead(m.cipher), d.key.data(),
                                d.key_len, EVP_AEAD_DEFAULT_TAG_LENGTH,
                                nullptr));
  std::vector<uint8_t> nonce = Nonce(m, d, seq);
  std::vector<uint8_t> in(text.begin(), text.end());
  if (m.version == TLS1_3_VERSION) in.push_back(kAppData);  // inner type
  std::vector<uint8_t> out(in.size() + 16);
  size_t body = out.size() + (ExplicitNonce(m) ? 8 : 0);
  uint8_t header[5] = {kAppData, 3, 3, static_cast<uint8_t>(body >> 8),
                       static_cast<uint8_t>(body)};
  std::vector<uint8_t> ad;
  if (m.version == TLS1_3_VERSION) {
    ad.assign(header, header + 5);
  } else {
    ad.resize(8);
    PutU64(seq, ad.data());
    ad.insert(ad.end(), {kAppData, 3, 3, static_cast<uint8_t>(in.size() >> 8),
                         static_cast<uint8_t>(in.size())});
  }
  size_t out_len = 0;
  EXPECT_TRUE(EVP_AEAD_CTX_seal(ctx.get(), out.data(), &out_len, out.size(),
                                nonce.data(), nonce.size(), in.data(),
                                in.size(), ad.data(), ad.size()));
  std::string rec(reinterpret_cast<char*>(header), 5);
  if (ExplicitNonce(m)) rec.append(reinterpret_cast<char*>(&nonce[4]), 8);
  rec.append(reinterpret_cast<char*>(out.data()), out_len);
  return rec;
}

// Opens one application-data record received as record number `seq`.
std::string OpenRecord(const KtlsMaterial& m, uint64_t seq,
                       const std::string& rec) {
  const KtlsDirection& d = m.rx;
  EXPECT_GE(rec.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(rec[0]), kAppData);
  size_t body =
      static_cast<uint8_t>(rec[3]) << 8 | static_cast<uint8_t>(rec[4]);
  EXPECT_EQ(rec.size(), 5 + body) << "expected exactly one record";
  std::vector<uint8_t> nonce = Nonce(m, d, seq);
  size_t off = 5;
  if (ExplicitNonce(m)) {
    std::memcpy(&nonce[4], rec.data() + 5, 8);  // the sender's choice
    off += 8;
  }
  std::vector<uint8_t> in(rec.begin() + static_cast<ptrdiff_t>(off), rec.end());
  std::vector<uint8_t> ad;
  if (m.version == TLS1_3_VERSION) {
    ad.assign(rec.begin(), rec.begin() + 5);
  } else {
    ad.resize(8);
    PutU64(seq, ad.data());
    size_t len = in.size() - 16;
    ad.insert(ad.end(), {kAppData, 3, 3, static_cast<uint8_t>(len >> 8),
                         static_cast<uint8_t>(len)});
  }
  bssl::ScopedEVP_AEAD_CTX ctx;
  EXPECT_TRUE(EVP_AEAD_CTX_init(ctx.get(), Aead(m.cipher), d.key.data(),
                                d.key_len, EVP_AEAD_DEFAULT_TAG_LENGTH,
                                nullptr));
  std::vector<uint8_t> out(in.size());
  size_t out_len = 0;
  if (!EVP_AEAD_CTX_open(ctx.get(), out.data(), &out_len, out.size(),
                         nonce.data(), nonce.size(), in.data(), in.size(),
                         ad.data(), ad.size())) {
    ADD_FAILURE() << "record does not open with the exported RX keys";
    return "";
  }
  out.resize(out_len);
  if (m.version == TLS1_3_VERSION) {
    EXPECT_EQ(out.back(), kAppData);
    out.pop_back();
  }
  return std::string(out.begin(), out.end());
}

std::string TakeAll(TlsEngine& e) {
  std::span<const char> out = e.PendingOutput();
  std::string s(out.data(), out.size());
  e.ConsumeOutput(out.size());
  return s;
}

// Some traffic first, so that sequence numbers are not all zero (the
// server also sends its TLS 1.3 tickets with its first write).
void Chat(EnginePair& p) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(p.Send(*p.client, *p.server, "NOOP\r\n"), "NOOP\r\n");
    ASSERT_EQ(p.Send(*p.server, *p.client, "+OK\r\n"), "+OK\r\n");
  }
}

// Plays the kernel for `side` (whose material is `m`) against `peer`.
void CheckAgainstPeer(const KtlsMaterial& m, TlsEngine& peer) {
  // We send (as the kernel would), the peer reads.
  for (uint64_t i = 0; i < 3; ++i) {
    std::string text = "+OK kernel record " + std::to_string(i) + "\r\n";
    std::string rec = SealRecord(m, m.tx.seq + i, text);
    peer.FeedCiphertext({rec.data(), rec.size()});
    char buf[256];
    size_t n = 0;
    ASSERT_EQ(peer.Read(buf, &n), TlsResult::kOk) << peer.error();
    EXPECT_EQ(std::string(buf, n), text);
  }
  // The peer sends, we open (as the kernel would).
  for (uint64_t i = 0; i < 3; ++i) {
    std::string text = "RETR " + std::to_string(i + 1) + "\r\n";
    ASSERT_EQ(peer.Write({text.data(), text.size()}), TlsResult::kOk);
    EXPECT_EQ(OpenRecord(m, m.rx.seq + i, TakeAll(peer)), text);
  }
}

TEST(TrafficSecretsTest, KeepsOnlyApplicationSecrets) {
  TrafficSecrets s;
  std::string random(64, 'a');
  EXPECT_FALSE(
      s.TakeKeyLogLine("CLIENT_HANDSHAKE_TRAFFIC_SECRET " + random + " 0011"));
  EXPECT_FALSE(s.TakeKeyLogLine("EXPORTER_SECRET " + random + " 0011"));
  EXPECT_TRUE(s.client().empty());
  EXPECT_TRUE(s.TakeKeyLogLine("CLIENT_TRAFFIC_SECRET_0 " + random + " 0aFf"));
  EXPECT_TRUE(s.TakeKeyLogLine("SERVER_TRAFFIC_SECRET_0 " + random + " 10"));
  ASSERT_EQ(s.client().size(), 2u);
  EXPECT_EQ(s.client()[0], 0x0a);
  EXPECT_EQ(s.client()[1], 0xff);
  ASSERT_EQ(s.server().size(), 1u);
  // Malformed lines change nothing.
  EXPECT_FALSE(s.TakeKeyLogLine("SERVER_TRAFFIC_SECRET_0 " + random + " 1"));
  EXPECT_FALSE(s.TakeKeyLogLine("SERVER_TRAFFIC_SECRET_0 " + random + " zz"));
  EXPECT_FALSE(s.TakeKeyLogLine("SERVER_TRAFFIC_SECRET_0"));
  EXPECT_FALSE(s.TakeKeyLogLine("SERVER_TRAFFIC_SECRET_0 " + random + " " +
                                std::string(2 * 49, '1')));
  EXPECT_EQ(s.server().size(), 1u);
  s.Wipe();
  EXPECT_TRUE(s.client().empty());
  EXPECT_TRUE(s.server().empty());
}

TEST(KtlsMaterialTest, Tls13ServerKeysWorkAgainstTheClient) {
  EnginePair p(Client(false), Server(true), "mail.example.test");
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  ASSERT_EQ(p.server->version(), "TLSv1.3");
  Chat(p);
  absl::StatusOr<KtlsMaterial> m = p.server->ExportForKernel();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, TLS1_3_VERSION);
  EXPECT_GT(m->tx.seq, 0u);
  EXPECT_EQ(m->rx.seq, 3u);
  CheckAgainstPeer(*m, *p.client);
}

TEST(KtlsMaterialTest, Tls13ClientKeysMirrorTheServers) {
  EnginePair p(Client(true), Server(true), "mail.example.test");
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  Chat(p);
  absl::StatusOr<KtlsMaterial> c = p.client->ExportForKernel();
  absl::StatusOr<KtlsMaterial> s = p.server->ExportForKernel();
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(c->tx.key, s->rx.key);
  EXPECT_EQ(c->tx.nonce_base, s->rx.nonce_base);
  EXPECT_EQ(c->tx.seq, s->rx.seq);
  EXPECT_EQ(c->rx.key, s->tx.key);
  EXPECT_EQ(c->rx.seq, s->tx.seq);
  EXPECT_NE(c->tx.key, c->rx.key);
  CheckAgainstPeer(*c, *p.server);
}

TEST(KtlsMaterialTest, Tls13WithoutCapturedSecretsStaysInUserSpace) {
  EnginePair p(Client(false), Server(false), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  absl::StatusOr<KtlsMaterial> m = p.server->ExportForKernel();
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
}

class Tls12Test : public ::testing::TestWithParam<const char*> {};

TEST_P(Tls12Test, ServerKeysWorkAgainstTheClient) {
  EnginePair p(Client(false), Server(false), "mail.example.test");
  ASSERT_TRUE(SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION));
  ASSERT_TRUE(SSL_set_strict_cipher_list(p.client->ssl(), GetParam()));
  ASSERT_TRUE(p.Handshake()) << p.client->error() << " / " << p.server->error();
  ASSERT_EQ(p.server->version(), "TLSv1.2");
  ASSERT_EQ(p.server->cipher(), GetParam());
  Chat(p);
  absl::StatusOr<KtlsMaterial> m = p.server->ExportForKernel();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, TLS1_2_VERSION);
  // TLS 1.2's Finished is the first record under these keys.
  EXPECT_EQ(m->rx.seq, 4u);
  CheckAgainstPeer(*m, *p.client);
}

INSTANTIATE_TEST_SUITE_P(Ciphers, Tls12Test,
                         ::testing::Values("ECDHE-ECDSA-AES128-GCM-SHA256",
                                           "ECDHE-ECDSA-AES256-GCM-SHA384",
                                           "ECDHE-ECDSA-CHACHA20-POLY1305"));

TEST(KtlsMaterialTest, RefusedWhileBytesWaitInUserSpace) {
  EnginePair p(Client(false), Server(true), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  Chat(p);
  ASSERT_EQ(p.client->Write({"DELE 1\r\n", 8}), TlsResult::kOk);
  std::string rec = TakeAll(*p.client);
  // Ciphertext fed but not read yet.
  p.server->FeedCiphertext({rec.data(), rec.size()});
  EXPECT_EQ(p.server->ExportForKernel().status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Decrypted but not read yet.
  char one[1];
  size_t n = 0;
  ASSERT_EQ(p.server->Read(one, &n), TlsResult::kOk);
  EXPECT_EQ(p.server->ExportForKernel().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.Drain(*p.server), "ELE 1\r\n");
  EXPECT_TRUE(p.server->ExportForKernel().ok());
  // Half a record inside BoringSSL: nothing buffered on our side, but the
  // kernel would see the rest of a record without its start.
  ASSERT_EQ(p.client->Write({"QUIT\r\n", 6}), TlsResult::kOk);
  rec = TakeAll(*p.client);
  p.server->FeedCiphertext({rec.data(), 9});
  char buf[64];
  ASSERT_EQ(p.server->Read(buf, &n), TlsResult::kWantRead);
  EXPECT_EQ(p.server->BufferedCiphertext(), 0u);
  EXPECT_EQ(p.server->ExportForKernel().status().code(),
            absl::StatusCode::kFailedPrecondition);
  p.server->FeedCiphertext({rec.data() + 9, rec.size() - 9});
  EXPECT_EQ(p.Drain(*p.server), "QUIT\r\n");
  EXPECT_TRUE(p.server->ExportForKernel().ok());
  // Our own reply not yet sent.
  ASSERT_EQ(p.server->Write({"+OK\r\n", 5}), TlsResult::kOk);
  EXPECT_EQ(p.server->ExportForKernel().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(KtlsMaterialTest, ForgetSecretsWipesThem) {
  EnginePair p(Client(false), Server(true), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  ASSERT_TRUE(p.server->ExportForKernel().ok());
  p.server->ForgetSecrets();
  EXPECT_EQ(p.server->ExportForKernel().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// On a real TCP connection: where the kernel has the ULP the keys go in;
// where it has none, nothing changes and the socket keeps working.
TEST(KtlsSocketTest, InstallMatchesKernelSupport) {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(cfd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  int sfd = accept(lfd, nullptr, nullptr);
  ASSERT_GE(sfd, 0);

  EnginePair p(Client(false), Server(true), "mail.example.test");
  ASSERT_TRUE(p.Handshake());
  absl::StatusOr<KtlsMaterial> m = p.server->ExportForKernel();
  ASSERT_TRUE(m.ok());
  absl::Status s = InstallKernelTls(sfd, *m);
  if (KernelTlsAvailable()) {
    ASSERT_TRUE(s.ok()) << s;
    // The kernel now seals what we write and opens what the peer sends.
    const std::string reply = "+OK sealed by the kernel\r\n";
    ASSERT_EQ(write(sfd, reply.data(), reply.size()),
              static_cast<ssize_t>(reply.size()));
    char wire[512];
    ssize_t got = read(cfd, wire, sizeof(wire));
    ASSERT_GT(got, 0);
    p.client->FeedCiphertext({wire, static_cast<size_t>(got)});
    EXPECT_EQ(p.Drain(*p.client), reply);
    ASSERT_EQ(p.client->Write({"STAT\r\n", 6}), TlsResult::kOk);
    std::string rec = TakeAll(*p.client);
    ASSERT_EQ(write(cfd, rec.data(), rec.size()),
              static_cast<ssize_t>(rec.size()));
    got = read(sfd, wire, sizeof(wire));
    ASSERT_EQ(got, 6);
    EXPECT_EQ(std::string(wire, 6), "STAT\r\n");
  } else {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    ASSERT_EQ(write(sfd, "+OK\r\n", 5), 5);
    char buf[8];
    ASSERT_EQ(read(cfd, buf, sizeof(buf)), 5);
    EXPECT_EQ(std::string(buf, 5), "+OK\r\n");
  }
  close(sfd);
  close(cfd);
  close(lfd);
}

}  // namespace
}  // namespace popgate::tls
