"""Reading mail through popgate: STAT, LIST, UIDL, TOP and RETR of every
message, byte for byte, with a raw socket client, Python poplib and curl,
against pop3-synth (source: `pop3-synth --dump`) and a real Dovecot (source:
the CRLF maildir files, compared exactly, no normalisation)."""

import unittest

import harness
from harness import RawClient, expected_top, make_message

SYNTH_USER = "alice@example.com"
SYNTH_PW = "Alice-Pw-7x!q"
SYNTH_SIZES = [250, 1000, 4096, 70001, 1048576]
DOVE_USER = "carol@dove.example"
DOVE_PW = "Carol-Pw-3k#z"
DOVE_MSGS = [make_message(300 + i, s) for i, s in
             enumerate([220, 999, 5000, 65537, 300000])]
# A maildir file with bare LF line ends: Dovecot serves it with CRLF.
LF_USER = "lf@dove.example"
LF_MSG = make_message(399, 3000).replace(b"\r\n", b"\n")

res = harness.ModuleResources()
synth = dovecot = popgate = None


def setUpModule():
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({SYNTH_USER: SYNTH_PW}, sizes=SYNTH_SIZES))
        dovecot = harness.Dovecot()
        dovecot.add_user(DOVE_USER, DOVE_PW, DOVE_MSGS)
        dovecot.add_user(LF_USER, DOVE_PW, [LF_MSG])
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={SYNTH_USER: SYNTH_PW}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={DOVE_USER: DOVE_PW, LF_USER: DOVE_PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class FrontEnd(harness.IntegrationTestCase):
    """What popgate itself says before login."""

    def test_greeting(self):
        with RawClient(popgate.port) as c:
            self.assertEqual(c.greeting, b"+OK popgate ready.\r\n")

    def test_prelogin_capa(self):
        with RawClient(popgate.port) as c:
            r, body = c.multi("CAPA")
            self.assertTrue(r.startswith(b"+OK"), r)
            caps = [l.strip() for l in body.split(b"\r\n") if l.strip()]
            names = {l.split()[0].upper() for l in caps}
            for want in (b"USER", b"PIPELINING", b"RESP-CODES", b"AUTH-RESP-CODE",
                         b"TOP", b"UIDL", b"IMPLEMENTATION"):
                self.assertIn(want, names, caps)
            impl = [l for l in caps if l.upper().startswith(b"IMPLEMENTATION")]
            self.assertIn(b"popgate", impl[0])
            self.assertTrue(body.endswith(b"\r\n"), body)
            # Still usable afterwards.
            self.assertTrue(c.login(SYNTH_USER, SYNTH_PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")

    def test_poplib_capa_and_welcome(self):
        p = harness.poplib.POP3(harness.LOOPBACK, popgate.port, timeout=10)
        try:
            self.assertEqual(p.getwelcome(), b"+OK popgate ready.")
            caps = p.capa()
            self.assertIn("PIPELINING", caps)
            self.assertIn("IMPLEMENTATION", caps)
        finally:
            p.quit()


class ReadMixin:
    """Tests shared by both backends; subclasses set user/pw/messages/direct."""

    user: str
    pw: str

    def messages(self) -> list[bytes]:
        raise NotImplementedError

    def direct_port(self) -> int:
        raise NotImplementedError

    def login(self, port=None) -> RawClient:
        c = RawClient(port or popgate.port, timeout=20)
        self.addCleanup(c.close)
        r = c.login(self.user, self.pw)
        self.assertTrue(r.startswith(b"+OK"), r)
        return c

    def transcript(self, port) -> dict:
        """STAT, LIST, UIDL, CAPA as seen on `port` (one session, then QUIT)."""
        c = self.login(port)
        out = {"STAT": c.cmd("STAT")}
        for cmd in ("LIST", "UIDL", "CAPA"):
            out[cmd] = c.multi(cmd)
        out["LIST 2"] = c.cmd("LIST 2")
        out["UIDL 3"] = c.cmd("UIDL 3")
        c.cmd_ok("QUIT")
        c.close()
        return out

    def test_stat_list_uidl_capa_same_as_direct(self):
        via = self.transcript(popgate.port)
        direct = self.transcript(self.direct_port())
        self.assertEqual(via, direct)
        msgs = self.messages()
        self.assertEqual(via["STAT"], f"+OK {len(msgs)} {sum(map(len, msgs))}\r\n".encode())
        self.assertEqual(harness.parse_scan_listing(via["LIST"][1]),
                         [(i + 1, str(len(m))) for i, m in enumerate(msgs)])

    def test_retr_every_message_exact(self):
        c = self.login()
        for i, m in enumerate(self.messages(), 1):
            self.assertBytesEqual(c.retr(i), m, f"RETR {i}")
        c.cmd_ok("QUIT")

    def test_top_exact(self):
        c = self.login()
        for i, m in enumerate(self.messages(), 1):
            for n in (0, 1, 3, 100000):
                r, body = c.multi(f"TOP {i} {n}")
                self.assertTrue(r.startswith(b"+OK"), r)
                self.assertBytesEqual(body, expected_top(m, n), f"TOP {i} {n}")
        c.cmd_ok("QUIT")

    def test_retr_nonexistent_is_err(self):
        c = self.login()
        r = c.cmd(f"RETR {len(self.messages()) + 1}")
        self.assertTrue(r.startswith(b"-ERR"), r)
        c.cmd_ok("NOOP")
        c.cmd_ok("QUIT")

    def test_poplib(self):
        msgs = self.messages()
        p = harness.pop_login(popgate.port, self.user, self.pw, timeout=20)
        try:
            self.assertEqual(p.stat(), (len(msgs), sum(map(len, msgs))))
            _, listing, _ = p.list()
            self.assertEqual([l.split() for l in listing],
                             [[str(i).encode(), str(len(m)).encode()]
                              for i, m in enumerate(msgs, 1)])
            _, uidls, _ = p.uidl()
            self.assertEqual(len(uidls), len(msgs))
            for i, m in enumerate(msgs, 1):
                self.assertBytesEqual(harness.poplib_retr_bytes(p, i), m, f"poplib RETR {i}")
                _, top, _ = p.top(i, 2)
                self.assertBytesEqual(b"".join(l + b"\r\n" for l in top),
                                      expected_top(m, 2), f"poplib TOP {i} 2")
        finally:
            p.quit()

    def test_curl_retr_every_message(self):
        for i, m in enumerate(self.messages(), 1):
            r = harness.curl(popgate.port, self.user, self.pw, str(i))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertBytesEqual(r.stdout, m, f"curl RETR {i}")

    def test_curl_list_uidl_top(self):
        msgs = self.messages()
        r = harness.curl(popgate.port, self.user, self.pw, "")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(f"{i} {len(m)}\r\n".encode()
                                            for i, m in enumerate(msgs, 1)))
        r = harness.curl(popgate.port, self.user, self.pw, "", ["-l"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(f"{i} {len(m)}\r\n".encode()
                                            for i, m in enumerate(msgs, 1)))
        r = harness.curl(popgate.port, self.user, self.pw, "", ["-X", "UIDL"])
        self.assertEqual(r.returncode, 0, r.stderr)
        direct = harness.curl(self.direct_port(), self.user, self.pw, "", ["-X", "UIDL"])
        self.assertEqual(r.stdout, direct.stdout)
        self.assertEqual(len(r.stdout.splitlines()), len(msgs))
        r = harness.curl(popgate.port, self.user, self.pw, "", ["-X", "TOP 2 0"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, expected_top(msgs[1], 0), "curl TOP 2 0")


class ThroughPopgateToSynth(ReadMixin, harness.IntegrationTestCase):
    user, pw = SYNTH_USER, SYNTH_PW

    def messages(self):
        return synth.dumps(SYNTH_USER)

    def direct_port(self):
        return synth.port


class ThroughPopgateToDovecot(ReadMixin, harness.IntegrationTestCase):
    user, pw = DOVE_USER, DOVE_PW

    def messages(self):
        return DOVE_MSGS

    def direct_port(self):
        return dovecot.port


class DovecotLineEnds(harness.IntegrationTestCase):
    def test_lf_maildir_file_arrives_as_crlf(self):
        want = LF_MSG.replace(b"\n", b"\r\n")  # normalised: Dovecot adds the CRs
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(LF_USER, DOVE_PW).startswith(b"+OK"))
            self.assertBytesEqual(c.retr(1), want, "LF maildir file via Dovecot and popgate")
            c.cmd_ok("QUIT")
        r = harness.curl(popgate.port, LF_USER, DOVE_PW, "1")
        self.assertBytesEqual(r.stdout, want, "curl, LF maildir file")


if __name__ == "__main__":
    unittest.main()
