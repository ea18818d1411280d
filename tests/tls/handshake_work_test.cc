// What the server does per handshake, beyond the protocol: how many session
// tickets it issues (one per handshake, full or resumed), that the ticket
// callback's pre-keyed HMAC gives the same MAC as keying it per ticket, and
// which certificate the server context carries so that most connections
// need no certificate set of their own.
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tls/cert_selection.h"
#include "tls/ticket_keys.h"
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

const absl::Duration kHour = absl::Hours(1);
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000 / 3600 * 3600 + 60);

// Counts the sessions (tickets) a client context receives and keeps the
// newest, as a client that uses each ticket once would.
class TicketCounter {
 public:
  explicit TicketCounter(const ClientContext& ctx) {
    SSL_CTX_set_ex_data(ctx.ctx(), Index(), this);
    SSL_CTX_set_session_cache_mode(ctx.ctx(), SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(ctx.ctx(), &TicketCounter::OnNewSession);
  }
  int count() const { return count_; }
  SSL_SESSION* latest() { return latest_.get(); }

 private:
  static int Index() {
    static const int index =
        SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  static int OnNewSession(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<TicketCounter*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), Index()));
    ++self->count_;
    self->latest_.reset(session);
    return 1;  // we took the reference
  }
  int count_ = 0;
  bssl::UniquePtr<SSL_SESSION> latest_;
};

class TicketsPerHandshake : public ::testing::TestWithParam<bool /*tls12*/> {
 protected:
  // One handshake offering `session` (may be null), then the greeting and a
  // command, as a POP3 session starts (TLS 1.3 tickets ride on the first
  // server write). Returns whether it resumed; *tickets = tickets received.
  bool Session(SSL_SESSION* session, int* tickets) {
    int before = counter_.count();
    EnginePair p(client_, server_, "mail.example.test");
    if (GetParam()) SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
    if (session != nullptr) {
      EXPECT_TRUE(SSL_set_session(p.client->ssl(), session));
    }
    EXPECT_TRUE(p.Handshake()) << p.client->error() << p.server->error();
    EXPECT_EQ(p.Send(*p.server, *p.client, "+OK ready\r\n"), "+OK ready\r\n");
    EXPECT_EQ(p.Send(*p.client, *p.server, "STAT\r\n"), "STAT\r\n");
    EXPECT_EQ(p.Send(*p.server, *p.client, "+OK 0 0\r\n"), "+OK 0 0\r\n");
    *tickets = counter_.count() - before;
    return p.server->resumed();
  }

  std::shared_ptr<const ServerContext> server_ = [] {
    ServerTlsOptions opts;
    opts.default_certs = {Pki().ecdsa};
    opts.ticket_keys = *TicketKeys::Create(kHour, "");
    return TestServerContext(opts);
  }();
  std::shared_ptr<const ClientContext> client_ = TestClientContext(false);
  TicketCounter counter_{*client_};
};

TEST_P(TicketsPerHandshake, OneOnFullHandshake) {
  int tickets = -1;
  EXPECT_FALSE(Session(nullptr, &tickets));
  EXPECT_EQ(tickets, 1);
}

TEST_P(TicketsPerHandshake, ChainOfResumptions) {
  int tickets = -1;
  Session(nullptr, &tickets);
  ASSERT_NE(counter_.latest(), nullptr);
  for (int i = 0; i < 3; ++i) {
    bssl::UniquePtr<SSL_SESSION> offer(counter_.latest());
    SSL_SESSION_up_ref(offer.get());
    EXPECT_TRUE(Session(offer.get(), &tickets)) << "resumption " << i;
    if (GetParam()) {
      // TLS 1.2 keeps the offered ticket unless its key is retiring.
      EXPECT_EQ(tickets, 0);
    } else {
      // TLS 1.3: one fresh ticket for the next connection, not two.
      EXPECT_EQ(tickets, 1);
      EXPECT_NE(counter_.latest(), offer.get());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, TicketsPerHandshake, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Tls12" : "Tls13";
                         });

// MAC of `data` with the HMAC context the ticket callback set up.
std::array<uint8_t, 32> CallbackMac(TicketKeys& keys, uint8_t name[16],
                                    uint8_t iv[16], bool encrypt, int* ret,
                                    const std::string& data) {
  bssl::ScopedEVP_CIPHER_CTX cipher;
  bssl::ScopedHMAC_CTX hmac;
  *ret = keys.InitTicketCrypto(name, iv, cipher.get(), hmac.get(),
                               encrypt ? 1 : 0);
  std::array<uint8_t, 32> mac{};
  if (*ret <= 0) return mac;
  unsigned len = 0;
  HMAC_Update(hmac.get(), reinterpret_cast<const uint8_t*>(data.data()),
              data.size());
  HMAC_Final(hmac.get(), mac.data(), &len);
  EXPECT_EQ(len, mac.size());
  return mac;
}

std::array<uint8_t, 32> OneShotMac(const TicketKey& key,
                                   const std::string& data) {
  std::array<uint8_t, 32> mac{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key.hmac_key.data(), key.hmac_key.size(),
       reinterpret_cast<const uint8_t*>(data.data()), data.size(), mac.data(),
       &len);
  return mac;
}

TEST(TicketCallback, PreKeyedHmacMatchesKeyingPerTicket) {
  auto keys = *TicketKeys::Create(kHour, "");
  absl::Time now = kT0;
  keys->SetClockForTesting([&now] { return now; });
  const std::string data = "ticket contents";

  uint8_t name[16], iv[16];
  int ret = 0;
  // Twice: the second call copies from the cached context again, which
  // must not have been consumed by the first.
  for (int i = 0; i < 2; ++i) {
    std::array<uint8_t, 32> mac =
        CallbackMac(*keys, name, iv, true, &ret, data);
    EXPECT_EQ(ret, 1);
    TicketKey current = keys->Current(now);
    EXPECT_EQ(std::memcmp(name, current.name.data(), 16), 0);
    EXPECT_EQ(mac, OneShotMac(current, data));
  }

  // Decrypting: same key by name, renewed once it is no longer current,
  // refused once it is too old.
  TicketKey issued = keys->Current(now);
  EXPECT_EQ(CallbackMac(*keys, name, iv, false, &ret, data),
            OneShotMac(issued, data));
  EXPECT_EQ(ret, 1);
  now = kT0 + 2 * kHour;
  EXPECT_EQ(CallbackMac(*keys, name, iv, false, &ret, data),
            OneShotMac(issued, data));
  EXPECT_EQ(ret, 2);
  now = kT0 + 3 * kHour;
  CallbackMac(*keys, name, iv, false, &ret, data);
  EXPECT_EQ(ret, 0);
}

TEST(CertSelectorPreinstalled, DefaultGroupsFirstEcdsaCertificate) {
  auto both = CertSelector::Build({Pki().rsa, Pki().ecdsa}, {});
  ASSERT_TRUE(both.ok()) << both.status();
  const LoadedGroup* group = both->ForName("");
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(both->Preinstalled(), &group->certs[1]);

  auto rsa_only = CertSelector::Build({Pki().rsa}, {});
  ASSERT_TRUE(rsa_only.ok()) << rsa_only.status();
  EXPECT_EQ(rsa_only->Preinstalled(), nullptr);

  // Without a default group nothing is preinstalled: every name's group
  // sets its own.
  CertGroup acme{"acme", {"mail.acme.test"}, {Pki().acme_ecdsa}};
  auto sni_only = CertSelector::Build({}, {acme});
  ASSERT_TRUE(sni_only.ok()) << sni_only.status();
  EXPECT_EQ(sni_only->Preinstalled(), nullptr);
}

// The preinstalled certificate must not leak to a client that cannot use it
// or that named another group.
TEST(CertSelectorPreinstalled, OtherCertificatesStillServed) {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().ecdsa, Pki().rsa};
  opts.sni_groups = {{"acme", {"mail.acme.test"}, {Pki().acme_ecdsa}}};
  auto server = TestServerContext(opts);
  auto client = TestClientContext(false);
  {
    EnginePair p(client, server, "mail.example.test");
    ASSERT_TRUE(p.Handshake()) << p.server->error();
    EXPECT_EQ(testing::PeerKeyType(*p.client), EVP_PKEY_EC);
  }
  {
    EnginePair p(client, server, "mail.example.test");
    static const uint16_t kRsaOnly[] = {SSL_SIGN_RSA_PSS_RSAE_SHA256,
                                        SSL_SIGN_RSA_PKCS1_SHA256};
    ASSERT_TRUE(SSL_set_verify_algorithm_prefs(p.client->ssl(), kRsaOnly, 2));
    ASSERT_TRUE(p.Handshake()) << p.server->error();
    EXPECT_EQ(testing::PeerKeyType(*p.client), EVP_PKEY_RSA);
  }
  {
    EnginePair p(client, server, "mail.acme.test");
    ASSERT_TRUE(p.Handshake()) << p.server->error();
    EXPECT_EQ(testing::PeerCommonName(*p.client), "mail.acme.test");
  }
}

}  // namespace
}  // namespace popgate::tls
