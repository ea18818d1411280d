"""Client identity to the backend (issue 9), against real Dovecot 2.3:

* client_identity = "proxy-v2": a client connecting to popgate from
  127.0.0.5 logs in through popgate to a Dovecot whose pop3 listener has
  haproxy = yes; Dovecot's login line shows rip=127.0.0.5 and the mail is
  byte-exact. Over TLS to popgate (STLS and implicit) to a Dovecot with
  disable_plaintext_auth = yes and no TLS of its own, the login works
  because the header's SSL TLV tells Dovecot the client used TLS (2.3.19
  counts such a session "secured"); a plain client to that Dovecot is
  refused (the control). Active health checks send a LOCAL header: the
  backend goes "up" and Dovecot logs nothing about the PROXY protocol.
* client_identity = "xclient": a Dovecot with popgate in its
  login_trusted_networks offers XCLIENT (2.3 does so in its greeting,
  "+OK [XCLIENT] ...", not in CAPA); popgate sends ADDR/PORT/SESSION/TTL/
  DESTADDR/DESTPORT before USER and Dovecot logs rip=127.0.0.5 and
  session=<popgate's session id>; behind another popgate the TTL is one
  lower. A Dovecot that does not trust popgate offers nothing: popgate
  sends no XCLIENT, the login works, rip is 127.0.0.1.
* Dovecot's auth penalty (anvil; a growing delay after failed logins per
  remote IP) then applies per client: client A (127.0.0.6) fails twice,
  client B (127.0.0.7) logs in at once with xclient, but pays A's penalty
  with client_identity = "none" (Dovecot sees both as 127.0.0.1).

A RecordingRelay between popgate and each Dovecot keeps what popgate sent,
to check the header / XCLIENT line itself.
"""

import re
import threading
import time
import unittest

import harness
import tlsharness as th
from harness import make_message
from identity_harness import (PP2_CLIENT_SSL, PP2_TYPE_SSL, RecordingRelay, SourceClient,
                              parse_proxy_v2, tls_client_from)

PW = "Ident-pw-1"
U_PLAIN = "alice@plain.example"     # proxy-v2 -> Dovecot haproxy, plaintext allowed
U_SECURE = "bob@secure.example"     # proxy-v2 -> Dovecot haproxy, disable_plaintext_auth
U_X = "carol@x.example"             # xclient -> Dovecot trusting 127.0.0.1
U_NX = "dave@nx.example"            # xclient -> Dovecot trusting nobody
MSGS = {u: [make_message(7000 + 10 * k + i, s) for i, s in enumerate([700, 3000])]
        for k, u in enumerate([U_PLAIN, U_SECURE, U_X, U_NX])}
HEALTH = {"interval": "1s", "timeout": "500ms", "rise": 2, "fall": 2}

res = harness.ModuleResources()
pki = pg = None
dove: dict[str, harness.Dovecot] = {}
relay: dict[str, RecordingRelay] = {}


def setUpModule():
    global pki, pg
    with harness.closing_on_error(res):
        pki = res.add(th.Pki())
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        specs = {
            "plain": (U_PLAIN, dict(haproxy=True)),
            "secure": (U_SECURE, dict(haproxy=True, disable_plaintext_auth=True)),
            "x": (U_X, dict()),                           # trusts 127.0.0.1/32
            "nx": (U_NX, dict(login_trusted_networks=None)),
        }
        for key, (user, opts) in specs.items():
            d = harness.Dovecot(**opts)
            d.add_user(user, PW, MSGS[user])
            dove[key] = res.add(d)
            relay[key] = res.add(RecordingRelay((harness.LOOPBACK, d.port)))
        tenants = [
            harness.Tenant("t-plain", ["plain.example"], [relay["plain"].address],
                           users={U_PLAIN: PW}, settings={"client_identity": "proxy-v2"},
                           health_check=HEALTH),
            harness.Tenant("t-secure", ["secure.example"], [relay["secure"].address],
                           users={U_SECURE: PW}, settings={"client_identity": "proxy-v2"},
                           health_check=HEALTH),
            harness.Tenant("t-x", ["x.example"], [relay["x"].address],
                           users={U_X: PW}, settings={"client_identity": "xclient"}),
            harness.Tenant("t-nx", ["nx.example"], [relay["nx"].address],
                           users={U_NX: PW}, settings={"client_identity": "xclient"}),
        ]
        pg = res.add(th.TlsPopgate(tenants, [
            th.Listener("plain", "none"),
            th.Listener("stls", "starttls", [cert]),
            th.Listener("tls", "implicit", [cert]),
        ]))


def tearDownModule():
    th.terminate_all(dove.values())  # they stop in parallel (about 1 s each)
    res.close()


def session_bytes(r: RecordingRelay, mark: int, needle: bytes) -> bytes:
    """What popgate sent on the one connection since `mark` containing
    `needle` (waits a moment: the relay thread records as it forwards)."""
    def find():
        hits = [b for b in r.sent_since(mark) if needle in b]
        return hits[0] if hits else None
    got = harness.wait_until(find, 5)
    if got is None:
        raise AssertionError(f"no connection with {needle!r} among "
                             f"{[b[:120] for b in r.sent_since(mark)]!r}")
    return got


class Base(harness.IntegrationTestCase):

    def log_in_and_read(self, c, user: str) -> None:
        r = c.login(user, PW)
        self.assertTrue(r.startswith(b"+OK"), f"{user}: {r!r}")
        self.assertEqual(c.cmd("STAT"),
                         f"+OK {len(MSGS[user])} {sum(map(len, MSGS[user]))}\r\n".encode())
        for i, m in enumerate(MSGS[user], 1):
            self.assertBytesEqual(c.retr(i), m, f"{user} RETR {i}")
        c.cmd_ok("QUIT")
        # Closed at once: after the backend's end popgate waits for the
        # client to close (client_drain_timeout) before it logs the session.
        c.close()

    def popgate_record(self, user: str, mark: int, client: tuple[str, int]) -> dict:
        """The session record of `user`'s session from `client` (client
        ports are reused: the address alone may match an older session)."""
        rec = pg.record_after(mark, 10, event="session", user=user,
                              client=f"{client[0]}:{client[1]}")
        self.assertIsNotNone(rec, f"no session record for {user} from {client}")
        return rec


class ProxyV2(Base):

    def test_dovecot_sees_client_address(self):
        d, r = dove["plain"], relay["plain"]
        mark, n, pmark = d.log_mark(), len(r.sent), pg.log_mark()
        c = SourceClient(pg.ports["plain"], "127.0.0.5")
        self.addCleanup(c.close)
        local = c.local
        self.log_in_and_read(c, U_PLAIN)
        login = d.wait_for_login(mark, U_PLAIN)
        self.assertIsNotNone(login, "no Login line in Dovecot's log" + d.log_since(mark)[-2000:])
        self.assertEqual(login.rip, "127.0.0.5", login.line)
        rec = self.popgate_record(U_PLAIN, pmark, local)
        self.assertEqual(rec.get("result"), "ok", rec)
        self.assertEqual(rec.get("identity"), "proxy-v2", rec)
        # The header itself: the client's address and port, popgate's
        # listener as the destination, no SSL TLV for a plain client.
        sent = session_bytes(r, n, f"USER {U_PLAIN}".encode())
        hdr = parse_proxy_v2(sent)
        self.assertIsNotNone(hdr, f"no PROXY v2 header first: {sent[:64]!r}")
        self.assertEqual(hdr.command, "PROXY")
        self.assertEqual(hdr.src, local)
        self.assertEqual(hdr.dst, (harness.LOOPBACK, pg.ports["plain"]))
        ssl_tlv = hdr.tlvs.get(PP2_TYPE_SSL)
        self.assertTrue(ssl_tlv is None or not ssl_tlv[0] & PP2_CLIENT_SSL, hdr)
        self.assertEqual(sent.count(b"\r\n\r\n\x00\r\nQUIT\n"), 1, "one header only")

    def test_tls_client_counts_as_secure_at_dovecot(self):
        d, r = dove["secure"], relay["secure"]
        for mode, listener, source in (("stls", "stls", "127.0.0.6"),
                                       ("implicit", "tls", "127.0.0.8")):
            with self.subTest(mode=mode):
                mark, n, pmark = d.log_mark(), len(r.sent), pg.log_mark()
                c = tls_client_from(pg.ports[listener], source, mode)
                self.addCleanup(c.close)
                local = c.source
                self.log_in_and_read(c, U_SECURE)
                login = d.wait_for_login(mark, U_SECURE)
                self.assertIsNotNone(login, d.log_since(mark)[-2000:])
                self.assertEqual(login.rip, source, login.line)
                self.assertIn("secured", login.line)
                rec = self.popgate_record(U_SECURE, pmark, local)
                self.assertEqual(rec.get("identity"), "proxy-v2", rec)
                self.assertTrue(rec.get("tls"), rec)
                hdr = parse_proxy_v2(session_bytes(r, n, f"USER {U_SECURE}".encode()))
                self.assertIsNotNone(hdr)
                self.assertEqual(hdr.src, local)
                self.assertIn(PP2_TYPE_SSL, hdr.tlvs, hdr)
                self.assertTrue(hdr.tlvs[PP2_TYPE_SSL][0] & PP2_CLIENT_SSL, hdr)

    def test_plain_client_is_not_secure_at_dovecot(self):
        # The control for the TLS case: the same Dovecot refuses a plaintext
        # login when the header says the client did not use TLS.
        d = dove["secure"]
        mark, pmark = d.log_mark(), pg.log_mark()
        c = SourceClient(pg.ports["plain"], "127.0.0.7")
        self.addCleanup(c.close)
        local = c.local
        r = c.login(U_SECURE, PW)
        self.assertTrue(r.startswith(b"-ERR"), r)
        c.cmd("QUIT")
        c.close()
        rec = self.popgate_record(U_SECURE, pmark, local)
        self.assertNotEqual(rec.get("result"), "ok", rec)
        m = d.wait_for_log(r"Plaintext authentication disabled.*rip=127\.0\.0\.7", mark)
        self.assertIsNotNone(m, d.log_since(mark)[-2000:])

    def test_health_checks_send_local_header(self):
        for key in ("plain", "secure"):
            with self.subTest(backend=key):
                up = pg.wait_for_record(15, event="backend_health",
                                        backend=relay[key].address, to="up")
                self.assertIsNotNone(up, "backend never went up: "
                                     + str(pg.session_records(event="backend_health")))
        # At least one more round of checks after "up".
        time.sleep(1.5)
        for key in ("plain", "secure"):
            with self.subTest(backend=key):
                sent = relay[key].sent_since(0)
                headers = [parse_proxy_v2(b) for b in sent if b]
                self.assertNotIn(None, headers,
                                 f"a connection without a PROXY v2 header: {sent!r}"[:800])
                self.assertIn("LOCAL", [h.command for h in headers])
                log = dove[key].log()
                self.assertEqual(dove[key].error_lines(), [], log[-2000:])
                self.assertNotIn("haproxy", log, log[-2000:])
        self.assertEqual(pg.session_records(event="backend_health", to="down"), [])


class Xclient(Base):

    def test_trusted_dovecot_sees_client_address_and_session(self):
        d, r = dove["x"], relay["x"]
        mark, n, pmark = d.log_mark(), len(r.sent), pg.log_mark()
        c = SourceClient(pg.ports["plain"], "127.0.0.5")
        self.addCleanup(c.close)
        local = c.local
        self.log_in_and_read(c, U_X)
        login = d.wait_for_login(mark, U_X)
        self.assertIsNotNone(login, d.log_since(mark)[-2000:])
        rec = self.popgate_record(U_X, pmark, local)
        self.assertEqual(login.rip, "127.0.0.5", login.line)
        self.assertEqual(login.session, rec.get("session"), (login.line, rec))
        self.assertEqual(rec.get("identity"), "xclient", rec)
        sent = session_bytes(r, n, f"USER {U_X}".encode())
        self.assertIsNone(parse_proxy_v2(sent))
        lines = sent.split(b"\r\n")
        xl = [l for l in lines if l.upper().startswith(b"XCLIENT ")]
        self.assertEqual(len(xl), 1, sent)
        self.assertLess(lines.index(xl[0]), lines.index(f"USER {U_X}".encode()),
                        "XCLIENT must come before USER")
        fields = dict(w.split(b"=", 1) for w in xl[0].split()[1:])
        self.assertEqual(fields.get(b"ADDR"), b"127.0.0.5", xl[0])
        self.assertEqual(fields.get(b"PORT"), str(local[1]).encode(), xl[0])
        self.assertEqual(fields.get(b"SESSION"), rec["session"].encode(), xl[0])
        self.assertTrue(re.fullmatch(rb"[1-9][0-9]*", fields.get(b"TTL", b"")), xl[0])
        self.assertEqual(fields.get(b"DESTADDR"), harness.LOOPBACK.encode(), xl[0])
        self.assertEqual(fields.get(b"DESTPORT"), str(pg.ports["plain"]).encode(), xl[0])

    def xclient_ttl(self, port: int, mark: int) -> int:
        c = self.raw(port)
        self.log_in_and_read(c, U_X)
        sent = session_bytes(relay["x"], mark, f"USER {U_X}".encode())
        xl = [l for l in sent.split(b"\r\n") if l.upper().startswith(b"XCLIENT ")]
        self.assertEqual(len(xl), 1, sent)
        return int(dict(w.split(b"=", 1) for w in xl[0].split()[1:])[b"TTL"])

    def test_ttl_counts_proxy_hops(self):
        # client -> front popgate -> popgate -> Dovecot: the second popgate
        # knows (XPOPGATE-LOOP) that the client came through one popgate
        # already, so its XCLIENT TTL is one lower: Dovecot's loop guard
        # (it refuses to proxy on at TTL 1) sees the whole chain.
        direct = self.xclient_ttl(pg.ports["plain"], len(relay["x"].sent))
        front = th.TlsPopgate([harness.Tenant("t-front", ["x.example"], [pg.address],
                                              users={U_X: PW})])
        self.addCleanup(front.cleanup)
        front.start()
        chained = self.xclient_ttl(front.port, len(relay["x"].sent))
        self.assertGreaterEqual(chained, 1)
        self.assertEqual(chained, direct - 1, (direct, chained))

    def test_untrusted_dovecot_gets_no_xclient(self):
        d, r = dove["nx"], relay["nx"]
        mark, n, pmark = d.log_mark(), len(r.sent), pg.log_mark()
        c = SourceClient(pg.ports["plain"], "127.0.0.5")
        self.addCleanup(c.close)
        local = c.local
        self.log_in_and_read(c, U_NX)
        login = d.wait_for_login(mark, U_NX)
        self.assertIsNotNone(login, d.log_since(mark)[-2000:])
        self.assertEqual(login.rip, "127.0.0.1", login.line)
        sent = session_bytes(r, n, f"USER {U_NX}".encode())
        self.assertNotIn(b"XCLIENT", sent.upper())
        rec = self.popgate_record(U_NX, pmark, local)
        self.assertEqual(rec.get("result"), "ok", rec)
        self.assertNotEqual(rec.get("identity"), "xclient", rec)


class AuthPenaltyPerClient(harness.IntegrationTestCase):
    """Dovecot's anvil penalty: after failures from one IP, the next auth
    from that IP waits (2.3: about 4 s after one failure, 8 s after two).
    It follows the address Dovecot believes: with XCLIENT the client's,
    without it popgate's. (2.3.19 applies it even to login_trusted_networks
    peers, contrary to its documentation: checked by hand.)"""

    @classmethod
    def setUpClass(cls):
        cls.res = harness.ModuleResources()
        with harness.closing_on_error(cls.res):
            cls.dx = harness.Dovecot(auth_penalty=True)
            cls.dx.add_user("pen@pen-x.example", PW, [make_message(7100, 500)])
            cls.dn = harness.Dovecot(auth_penalty=True)
            cls.dn.add_user("pen@pen-n.example", PW, [make_message(7101, 500)])
            cls.res.add(cls.dx)
            cls.res.add(cls.dn)
            cls.pg = cls.res.add(th.TlsPopgate([
                harness.Tenant("pen-x", ["pen-x.example"], [cls.dx.address], auth="backend",
                               settings={"client_identity": "xclient"}),
                harness.Tenant("pen-n", ["pen-n.example"], [cls.dn.address], auth="backend",
                               settings={"client_identity": "none"}),
            ], server={"auth_failure_delay": "100ms", "backend_auth_timeout": "30s"}))

    @classmethod
    def tearDownClass(cls):
        th.terminate_all([cls.dx, cls.dn])
        cls.res.close()

    def run_clients(self, user: str, tag: str) -> tuple[list[float], float]:
        """A fails twice from 127.0.0.6, then B logs in from 127.0.0.7:
        (A's PASS times, B's). Runs in a thread: no assertions here."""
        a_times = []
        for i in range(2):
            c = SourceClient(self.pg.port, "127.0.0.6", timeout=40)
            try:
                if not c.cmd(f"USER {user}").startswith(b"+OK"):
                    raise AssertionError("USER refused")
                t0 = time.monotonic()
                # A different wrong password each time: Dovecot does not
                # raise the penalty for a repeated user+password pair.
                r = c.cmd(f"PASS wrong-{tag}-{i}")
                a_times.append(time.monotonic() - t0)
                if not r.startswith(b"-ERR"):
                    raise AssertionError(f"A's wrong password: {r!r}")
            finally:
                c.close()
        c = SourceClient(self.pg.port, "127.0.0.7", timeout=40)
        try:
            if not c.cmd(f"USER {user}").startswith(b"+OK"):
                raise AssertionError("USER refused")
            t0 = time.monotonic()
            r = c.cmd(f"PASS {PW}")
            b_time = time.monotonic() - t0
            if not r.startswith(b"+OK"):
                raise AssertionError(f"B's login: {r!r}")
            c.cmd_ok("QUIT")
        finally:
            c.close()
        return a_times, b_time

    def test_penalty_follows_the_client_with_xclient(self):
        mx = self.dx.log_mark()
        # Both at once (the penalty is a timer in Dovecot, not CPU): the
        # two Dovecots penalise separately.
        out: dict[str, object] = {}

        def run(key, user):
            try:
                out[key] = self.run_clients(user, key)
            except Exception as e:  # reported below
                out[key] = e

        threads = [threading.Thread(target=run, args=a, daemon=True)
                   for a in (("x", "pen@pen-x.example"), ("n", "pen@pen-n.example"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for key in ("x", "n"):
            if not isinstance(out.get(key), tuple):
                self.fail(f"{key}: {out.get(key)!r}")
        (ax, bx), (an, bn) = out["x"], out["n"]
        print(f"\n  auth penalty: xclient: A's failures {[round(t, 2) for t in ax]} s, "
              f"B's login {bx:.2f} s; none: A's failures {[round(t, 2) for t in an]} s, "
              f"B's login {bn:.2f} s")
        # A was penalised in both cases (its second failure waited).
        self.assertGreater(ax[1], 2.0, ax)
        self.assertGreater(an[1], 2.0, an)
        # B: not with xclient; with "none" it inherits A's penalty.
        self.assertLess(bx, 1.5, f"B paid a penalty with xclient: {bx:.2f} s")
        self.assertGreater(bn, 3.0, f"B did not pay A's penalty without xclient: {bn:.2f} s")
        login = self.dx.wait_for_login(mx, "pen@pen-x.example")
        self.assertIsNotNone(login)
        self.assertEqual(login.rip, "127.0.0.7", login.line)


if __name__ == "__main__":
    unittest.main()
