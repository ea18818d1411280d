// Session-ticket keys: rotation, the key file, and resumption end to end
// (same context, two contexts, two instances sharing a key file).
#include "tls/ticket_keys.h"

#include <openssl/ssl.h>

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/tls/engine_pair.h"
#include "tests/tls/test_pki.h"

namespace popgate::tls {
namespace {

using testing::EnginePair;
using testing::Pki;
using testing::SessionStore;
using testing::TestClientContext;
using testing::TestServerContext;

const absl::Duration kHour = absl::Hours(1);
// A minute into some hour, so that "+ n hours" is "+ n periods".
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000 / 3600 * 3600 + 60);

std::shared_ptr<TicketKeys> Keys(const std::string& file = "") {
  auto keys = TicketKeys::Create(kHour, file);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return *keys;
}

std::string KeyFile(const std::string& name, char fill) {
  return testing::WriteTempFile(name, std::string(48, fill));
}

TEST(TicketKeysTest, RotatesAndAcceptsTwoPreviousPeriods) {
  auto keys = Keys();
  TicketKey k0 = keys->Current(kT0);
  EXPECT_EQ(keys->Current(kT0 + absl::Minutes(50)).name, k0.name);
  TicketKey k1 = keys->Current(kT0 + kHour);
  EXPECT_NE(k1.name, k0.name);
  EXPECT_NE(k1.aes_key, k0.aes_key);
  EXPECT_NE(k1.hmac_key, k0.hmac_key);

  bool renew = true;
  auto found = keys->Find(k0.name.data(), kT0, &renew);
  ASSERT_TRUE(found);
  EXPECT_FALSE(renew);
  EXPECT_EQ(found->aes_key, k0.aes_key);
  for (int periods : {1, 2}) {
    renew = false;
    found = keys->Find(k0.name.data(), kT0 + periods * kHour, &renew);
    ASSERT_TRUE(found) << periods;
    EXPECT_TRUE(renew);
    EXPECT_EQ(found->hmac_key, k0.hmac_key);
  }
  EXPECT_FALSE(keys->Find(k0.name.data(), kT0 + 3 * kHour, &renew));
  EXPECT_FALSE(keys->Find(k0.name.data(), kT0 + 30 * kHour, &renew));
  // And the cache does not resurrect it afterwards for older times.
  EXPECT_TRUE(keys->Find(k0.name.data(), kT0, &renew));
  uint8_t unknown[16] = {};
  EXPECT_FALSE(keys->Find(unknown, kT0, &renew));
}

TEST(TicketKeysTest, KeyFileGivesSameKeysEverywhere) {
  std::string file = KeyFile("tickets-a.key", 'a');
  auto a = Keys(file);
  auto b = Keys(file);
  auto other = Keys(KeyFile("tickets-b.key", 'b'));
  auto random1 = Keys();
  auto random2 = Keys();
  for (absl::Time t : {kT0, kT0 + 5 * kHour}) {
    EXPECT_EQ(a->Current(t).name, b->Current(t).name);
    EXPECT_EQ(a->Current(t).aes_key, b->Current(t).aes_key);
    EXPECT_NE(a->Current(t).name, other->Current(t).name);
    EXPECT_NE(random1->Current(t).name, random2->Current(t).name);
  }
}

TEST(TicketKeysTest, BadKeyFile) {
  std::string short_file = testing::WriteTempFile("short.key", "too short");
  auto keys = TicketKeys::Create(kHour, short_file);
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.status().message().find(short_file), std::string::npos);
  EXPECT_NE(keys.status().message().find("32 bytes"), std::string::npos);
  // Never echo the contents.
  EXPECT_EQ(keys.status().message().find("too short"), std::string::npos);

  keys = TicketKeys::Create(kHour, "/nonexistent/tickets.key");
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.status().message().find("/nonexistent/tickets.key"),
            std::string::npos);
  EXPECT_FALSE(TicketKeys::Create(absl::ZeroDuration(), "").ok());
}

std::shared_ptr<const ServerContext> Server(std::shared_ptr<TicketKeys> keys) {
  ServerTlsOptions opts;
  opts.default_certs = {Pki().ecdsa, Pki().rsa};
  opts.ticket_keys = std::move(keys);
  return TestServerContext(opts);
}

class Resumption : public ::testing::TestWithParam<bool /*tls12*/> {
 protected:
  // Full handshake against `server`; leaves the session in store_.
  void FirstHandshake(std::shared_ptr<const ServerContext> server) {
    EnginePair p(client_, std::move(server), "mail.example.test");
    Restrict(p);
    ASSERT_TRUE(p.Handshake()) << p.client->error() << p.server->error();
    EXPECT_FALSE(p.server->resumed());
    // BoringSSL holds TLS 1.3 tickets back until the server's first write
    // (in POP3: the greeting or the reply to the first command).
    EXPECT_EQ(p.Send(*p.server, *p.client, "+OK\r\n"), "+OK\r\n");
    ASSERT_NE(store_.latest(), nullptr);
  }
  // Handshake offering the stored session; returns whether it resumed.
  bool Resumes(std::shared_ptr<const ServerContext> server) {
    EnginePair p(client_, std::move(server), "mail.example.test");
    Restrict(p);
    EXPECT_TRUE(SSL_set_session(p.client->ssl(), store_.latest()));
    EXPECT_TRUE(p.Handshake()) << p.client->error() << p.server->error();
    EXPECT_EQ(p.client->resumed(), p.server->resumed());
    bool resumed = p.server->resumed();
    EXPECT_EQ(p.Send(*p.client, *p.server, "STAT\r\n"), "STAT\r\n");
    return resumed;
  }
  void Restrict(EnginePair& p) {
    if (GetParam()) SSL_set_max_proto_version(p.client->ssl(), TLS1_2_VERSION);
  }

  std::shared_ptr<const ClientContext> client_ = TestClientContext();
  SessionStore store_{*client_};
};

TEST_P(Resumption, SameContext) {
  auto server = Server(Keys());
  FirstHandshake(server);
  EXPECT_TRUE(Resumes(server));
}

TEST_P(Resumption, TwoContextsSharingKeys) {
  auto keys = Keys();
  FirstHandshake(Server(keys));
  EXPECT_TRUE(Resumes(Server(keys)));  // e.g. after a certificate reload
}

TEST_P(Resumption, TwoInstancesSharingKeyFile) {
  std::string file = KeyFile("shared.key", 's');
  FirstHandshake(Server(Keys(file)));
  EXPECT_TRUE(Resumes(Server(Keys(file))));
}

TEST_P(Resumption, NotWithOtherKeys) {
  FirstHandshake(Server(Keys()));
  EXPECT_FALSE(Resumes(Server(Keys())));
  EXPECT_FALSE(Resumes(Server(Keys(KeyFile("other.key", 'o')))));
}

TEST_P(Resumption, NotWithoutTickets) {
  FirstHandshake(Server(Keys()));
  EXPECT_FALSE(Resumes(Server(nullptr)));
}

TEST_P(Resumption, TicketsExpireAfterThreePeriods) {
  auto keys = Keys();
  absl::Time now = kT0;
  keys->SetClockForTesting([&now] { return now; });
  auto server = Server(keys);
  FirstHandshake(server);
  SSL_SESSION* first = store_.latest();
  SSL_SESSION_up_ref(first);
  bssl::UniquePtr<SSL_SESSION> first_ticket(first);

  now = kT0 + 2 * kHour;  // two periods later: still accepted, renewed
  EXPECT_TRUE(Resumes(server));
  now = kT0 + 3 * kHour;  // three periods later: refused
  EnginePair p(client_, server, "mail.example.test");
  Restrict(p);
  ASSERT_TRUE(SSL_set_session(p.client->ssl(), first_ticket.get()));
  ASSERT_TRUE(p.Handshake());
  EXPECT_FALSE(p.server->resumed());
}

INSTANTIATE_TEST_SUITE_P(Versions, Resumption, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Tls12" : "Tls13";
                         });

}  // namespace
}  // namespace popgate::tls
