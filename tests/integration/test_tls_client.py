"""Reading mail through popgate over TLS, with real clients: a raw TLS socket,
Python poplib (POP3_SSL and POP3.stls()), curl (pop3s:// and --ssl-reqd on
the STLS port) and `openssl s_client` (-connect and -starttls pop3), to
pop3-synth and to a real Dovecot (plain backends: TLS to backends is
test_tls_backend).  Every message byte for byte (pop3-synth --dump, the CRLF
maildir files), LIST/UIDL/TOP, a 20 MB message over TLS, DELE+QUIT deletes
while DELE then disconnect does not, TLS 1.2 and 1.3 and nothing older, and
what the session log says about TLS."""

import poplib
import socket
import ssl
import struct
import time
import unittest

import harness
import tlsharness as th
from harness import expected_top, make_message, make_big_message

PW = "Tls-Pw-42x"
SYNTH_USER = "alice@example.com"
SYNTH_SIZES = [250, 1000, 4096, 70001, 1048576]
DOVE_USER = "carol@dove.example"
DOVE_MSGS = [make_message(500 + i, s) for i, s in enumerate([220, 999, 5000, 65537, 300000])]
DEL_CASES = ["quit", "close", "rst", "notify"]
DEL_SIZES = [300, 1200, 2500]
BIG = 20 * 1024 * 1024
# Where the kernel has the "tls" ULP, client TLS sessions are spliced after
# the kernel takes their keys (tests/ktls_vm runs this module on such a kernel).
TLS_FORWARDING = "ktls-splice" if th.ktls_available() else "copy"
BIG_SYNTH_USER = "big@big.example"
BIG_DOVE_USER = "big@dove.example"
BIG_DOVE_MSG = make_big_message(77, BIG)

res = harness.ModuleResources()
pki = synth = big_synth = dovecot = popgate = None


def setUpModule():
    global pki, synth, big_synth, dovecot, popgate
    try:
        pki = res.add(th.Pki())
        ec = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        rsa = pki.leaf("pop-rsa.example.net", ["localhost", "127.0.0.1"], "rsa")
        synth_users = {SYNTH_USER: PW}
        synth_users.update({f"{c}@example.com": PW for c in DEL_CASES})
        synth = res.add(harness.Synth(synth_users, sizes=SYNTH_SIZES))
        big_synth = res.add(harness.Synth({BIG_SYNTH_USER: PW}, sizes=["20m"]))
        dovecot = harness.Dovecot()
        dovecot.add_user(DOVE_USER, PW, DOVE_MSGS)
        dovecot.add_user(BIG_DOVE_USER, PW, [BIG_DOVE_MSG])
        for i, c in enumerate(DEL_CASES):
            dovecot.add_user(f"{c}@dove.example", PW,
                             [make_message(2000 + 10 * i + k, s) for k, s in enumerate(DEL_SIZES)])
        res.add(dovecot)
        popgate = res.add(th.TlsPopgate(
            [harness.Tenant("example-com", ["example.com"], [synth.address], users=synth_users),
             harness.Tenant("big", ["big.example"], [big_synth.address],
                            users={BIG_SYNTH_USER: PW}),
             harness.Tenant("dove", ["dove.example"], [dovecot.address],
                            users={u: PW for u in dovecot.users})],
            [th.Listener("stls", "starttls", [ec, rsa]),
             th.Listener("tls", "implicit", [ec, rsa]),
             th.Listener("plain", "none")],
            server={"backend_timeout": "5s"}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def ca_ctx(**kw) -> ssl.SSLContext:
    return th.verifying_ctx(pki.ca_file, **kw)


class ClientMixin:
    user: str

    def messages(self) -> list[bytes]:
        raise NotImplementedError

    def direct_port(self) -> int:
        raise NotImplementedError

    # -- helpers --
    def tls_login(self, mode: str, ctx=None) -> th.TlsClient:
        port = popgate.ports["tls" if mode == "implicit" else "stls"]
        c = th.TlsClient(port, mode=mode, ctx=ctx or ca_ctx(), server_hostname="127.0.0.1",
                         timeout=30)
        self.addCleanup(c.close)
        r = c.login(self.user, PW)
        self.assertTrue(r.startswith(b"+OK"), r)
        return c

    def transcript(self, c) -> dict:
        out = {"STAT": c.cmd("STAT")}
        for cmd in ("LIST", "UIDL"):
            out[cmd] = c.multi(cmd)
        out["LIST 2"] = c.cmd("LIST 2")
        out["UIDL 3"] = c.cmd("UIDL 3")
        c.cmd_ok("QUIT")
        return out

    # -- raw TLS client --
    def test_raw_tls_listing_same_as_direct(self):
        direct = harness.RawClient(self.direct_port())
        self.addCleanup(direct.close)
        self.assertTrue(direct.login(self.user, PW).startswith(b"+OK"))
        want = self.transcript(direct)
        msgs = self.messages()
        self.assertEqual(harness.parse_scan_listing(want["LIST"][1]),
                         [(i + 1, str(len(m))) for i, m in enumerate(msgs)])
        for mode in ("implicit", "stls"):
            with self.subTest(mode=mode):
                self.assertEqual(self.transcript(self.tls_login(mode)), want)

    def test_raw_tls_retr_and_top_every_message(self):
        for mode in ("implicit", "stls"):
            c = self.tls_login(mode)
            self.assertEqual(c.sock.version(), "TLSv1.3")
            for i, m in enumerate(self.messages(), 1):
                self.assertBytesEqual(c.retr(i), m, f"{mode} RETR {i}")
                for n in (0, 2, 100000):
                    r, body = c.multi(f"TOP {i} {n}")
                    self.assertTrue(r.startswith(b"+OK"), r)
                    self.assertBytesEqual(body, expected_top(m, n), f"{mode} TOP {i} {n}")
            c.cmd_ok("QUIT")
            self.assertEqual(c.read_until_closed(5), b"")

    # -- poplib --
    def _poplib_check(self, p: poplib.POP3):
        msgs = self.messages()
        p.user(self.user)
        p.pass_(PW)
        self.assertEqual(p.stat(), (len(msgs), sum(map(len, msgs))))
        _, listing, _ = p.list()
        self.assertEqual([l.split() for l in listing],
                         [[str(i).encode(), str(len(m)).encode()] for i, m in enumerate(msgs, 1)])
        _, uidls, _ = p.uidl()
        self.assertEqual(len(uidls), len(msgs))
        for i, m in enumerate(msgs, 1):
            self.assertBytesEqual(harness.poplib_retr_bytes(p, i), m, f"poplib RETR {i}")
            _, top, _ = p.top(i, 3)
            self.assertBytesEqual(b"".join(l + b"\r\n" for l in top), expected_top(m, 3),
                                  f"poplib TOP {i} 3")
        p.quit()

    def test_poplib_pop3_ssl(self):
        p = poplib.POP3_SSL(harness.LOOPBACK, popgate.ports["tls"], context=ca_ctx(), timeout=30)
        self.assertEqual(p.getwelcome(), b"+OK popgate ready.")
        self._poplib_check(p)

    def test_poplib_stls(self):
        p = poplib.POP3(harness.LOOPBACK, popgate.ports["stls"], timeout=30)
        self.assertIn("STLS", p.capa())
        r = p.stls(context=ca_ctx())
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertNotIn("STLS", p.capa(), "CAPA after STLS still offers STLS")
        self._poplib_check(p)

    # -- curl --
    def _curl(self, scheme_port: str, path: str, extra=()):
        scheme, port = scheme_port.split(":")
        url = f"{scheme}://127.0.0.1:{port}/{path}"
        r = th.curl_tls(url, self.user, PW, extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def _curl_variants(self):
        return [(f"pop3s:{popgate.ports['tls']}", ["--cacert", pki.ca_file]),
                (f"pop3s:{popgate.ports['tls']}", ["-k"]),
                (f"pop3:{popgate.ports['stls']}", ["--ssl-reqd", "--cacert", pki.ca_file])]

    def test_curl_retr_every_message(self):
        for where, extra in self._curl_variants():
            for i, m in enumerate(self.messages(), 1):
                self.assertBytesEqual(self._curl(where, str(i), extra), m,
                                      f"curl {where} {extra} RETR {i}")

    def test_curl_list_uidl_top(self):
        msgs = self.messages()
        direct = harness.curl(self.direct_port(), self.user, PW, "", ["-X", "UIDL"])
        self.assertEqual(direct.returncode, 0, direct.stderr)
        for where, extra in self._curl_variants():
            with self.subTest(where=where, extra=extra):
                self.assertEqual(self._curl(where, "", extra),
                                 b"".join(f"{i} {len(m)}\r\n".encode() for i, m in enumerate(msgs, 1)))
                self.assertEqual(self._curl(where, "", [*extra, "-X", "UIDL"]), direct.stdout)
                self.assertBytesEqual(self._curl(where, "", [*extra, "-X", "TOP 2 1"]),
                                      expected_top(msgs[1], 1), "curl TOP 2 1")

    def test_curl_ssl_reqd_fails_on_plain_only_listener(self):
        # A listener without STLS: --ssl-reqd must fail, not fall back.
        r = th.curl_tls(f"pop3://127.0.0.1:{popgate.ports['plain']}/1", self.user, PW,
                        ["--ssl-reqd", "--cacert", pki.ca_file], max_time=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")

    # -- openssl s_client --
    def _s_client_session(self, starttls: bool):
        msgs = self.messages()
        port = popgate.ports["stls" if starttls else "tls"]
        cmds = f"USER {self.user}\r\nPASS {PW}\r\nSTAT\r\nLIST\r\nUIDL\r\n"
        cmds += "".join(f"RETR {i}\r\nTOP {i} 2\r\n" for i in range(1, len(msgs) + 1))
        cmds += "QUIT\r\n"
        r = th.s_client(port, ["-CAfile", pki.ca_file, "-verify_return_error",
                               "-verify_ip", "127.0.0.1"],
                        stdin=cmds.encode(), starttls=starttls, quiet=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        rd = th.BufferReader(r.stdout)
        if not starttls:
            self.assertEqual(rd.reply(), b"+OK popgate ready.\r\n")
        self.assertTrue(rd.reply().startswith(b"+OK"))  # USER
        self.assertTrue(rd.reply().startswith(b"+OK"))  # PASS
        self.assertEqual(rd.reply(), f"+OK {len(msgs)} {sum(map(len, msgs))}\r\n".encode())
        _, listing = rd.multi_reply()
        self.assertEqual(harness.parse_scan_listing(listing),
                         [(i, str(len(m))) for i, m in enumerate(msgs, 1)])
        _, uidl = rd.multi_reply()
        self.assertEqual(len(harness.parse_scan_listing(uidl)), len(msgs))
        for i, m in enumerate(msgs, 1):
            r1, body = rd.multi_reply()
            self.assertTrue(r1.startswith(b"+OK"), r1)
            self.assertBytesEqual(body, m, f"s_client RETR {i}")
            r2, top = rd.multi_reply()
            self.assertBytesEqual(top, expected_top(m, 2), f"s_client TOP {i} 2")
        self.assertTrue(rd.reply().startswith(b"+OK"))  # QUIT
        self.assertEqual(bytes(rd.buf), b"")

    def test_openssl_s_client_implicit(self):
        self._s_client_session(starttls=False)

    def test_openssl_s_client_starttls(self):
        self._s_client_session(starttls=True)

    # -- DELE over TLS --
    def del_user(self, case) -> str:
        raise NotImplementedError

    def mailbox_state(self, case) -> list[str]:
        raise NotImplementedError

    def original_state(self, case) -> list[str]:
        raise NotImplementedError

    def _del_login(self, case, mode="implicit") -> th.TlsClient:
        port = popgate.ports["tls" if mode == "implicit" else "stls"]
        c = th.TlsClient(port, mode=mode, ctx=ca_ctx(), server_hostname="127.0.0.1")
        self.addCleanup(c.close)
        self.assertTrue(c.login(self.del_user(case), PW).startswith(b"+OK"))
        return c

    def test_dele_quit_deletes_over_tls(self):
        c = self._del_login("quit", "stls")
        c.cmd_ok("DELE 2")
        self.assertTrue(c.cmd("RETR 2").startswith(b"-ERR"))
        c.cmd_ok("QUIT")
        self.assertEqual(c.read_until_closed(5), b"")
        orig = self.original_state("quit")
        self.assertEqual(self.mailbox_state("quit"), [u for k, u in enumerate(orig) if k != 1])

    def _dele_then_disconnect(self, case, how):
        c = self._del_login(case)
        c.cmd_ok("DELE 1")
        c.cmd_ok("DELE 3")
        if how == "close":      # TCP FIN, no close_notify
            c.close()
        elif how == "rst":
            c.raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif how == "notify":   # a clean TLS close_notify, then FIN
            c.sock.settimeout(5)
            try:
                plain = c.sock.unwrap()
                plain.close()
            except (ssl.SSLError, OSError):
                pass
            c.close()
        self.assertEqual(self.mailbox_state(case), self.original_state(case),
                         f"DELE then {how} without QUIT must not delete")

    def test_dele_then_close_does_not_delete(self):
        self._dele_then_disconnect("close", "close")

    def test_dele_then_rst_does_not_delete(self):
        self._dele_then_disconnect("rst", "rst")

    def test_dele_then_close_notify_does_not_delete(self):
        self._dele_then_disconnect("notify", "notify")


class ViaSynth(ClientMixin, harness.IntegrationTestCase):
    user = SYNTH_USER
    _orig: dict = {}

    def messages(self):
        return synth.dumps(SYNTH_USER)

    def direct_port(self):
        return synth.port

    def del_user(self, case):
        return f"{case}@example.com"

    def _uidls(self, port, user):
        with harness.RawClient(port) as c:
            r = c.login(user, PW)
            if r.startswith(b"-ERR [IN-USE]"):
                return None
            if not r.startswith(b"+OK"):
                raise AssertionError(r)
            _, body = c.multi("UIDL")
            c.cmd_ok("QUIT")
            return [u for _, u in harness.parse_scan_listing(body)]

    def original_state(self, case):
        if case not in ViaSynth._orig:
            with harness.Synth({self.del_user(case): PW}, sizes=SYNTH_SIZES) as other:
                ViaSynth._orig[case] = self._uidls(other.port, self.del_user(case))
        return ViaSynth._orig[case]

    def mailbox_state(self, case):
        v = harness.wait_until(lambda: self._uidls(synth.port, self.del_user(case)), 10, 0.1)
        self.assertIsNotNone(v, "mailbox still locked 10s after the session ended")
        return v


class ViaDovecot(ClientMixin, harness.IntegrationTestCase):
    user = DOVE_USER

    def messages(self):
        return DOVE_MSGS

    def direct_port(self):
        return dovecot.port

    def del_user(self, case):
        return f"{case}@dove.example"

    def original_state(self, case):
        return [s.key for s in dovecot.seeded[self.del_user(case)]]

    def mailbox_state(self, case):
        user = self.del_user(case)

        def settled():
            log = dovecot.log()
            logins = log.count(f"Login: user=<{user}>")
            ends = sum(1 for l in log.splitlines() if f"pop3({user})" in l and "Disconnected" in l)
            return logins > 0 and logins == ends
        self.assertTrue(harness.wait_until(settled, 10), "Dovecot session did not end")
        present = dovecot.present_keys(user)
        return [k for k in self.original_state(case) if k in present]


class BigOverTls(harness.IntegrationTestCase):
    """20 MB through TLS on the client side, from both backends."""

    def _retr_big(self, user, want, mode):
        port = popgate.ports["tls" if mode == "implicit" else "stls"]
        c = th.TlsClient(port, mode=mode, ctx=ca_ctx(), server_hostname="127.0.0.1", timeout=60)
        self.addCleanup(c.close)
        self.assertTrue(c.login(user, PW).startswith(b"+OK"))
        self.assertEqual(c.cmd("LIST 1"), f"+OK 1 {len(want)}\r\n".encode())
        t0 = time.monotonic()
        got = c.retr(1)
        elapsed = time.monotonic() - t0
        self.assertBytesEqual(got, want, f"20 MB RETR over TLS ({mode})")
        self.assertEqual(c.cmd("NOOP")[:3], b"+OK")
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()  # popgate logs the session once both directions ended
        self.assertLess(elapsed, 20, "20 MB over TLS took too long")
        rec = popgate.wait_for_user_record(user, timeout=5)
        self.assertTrue(rec, "no session log line")
        self.assertEqual(rec[-1]["forwarding"], TLS_FORWARDING)
        self.assertGreater(rec[-1]["bytes_out"], len(want))

    def test_synth_20mb_implicit(self):
        self._retr_big(BIG_SYNTH_USER, big_synth.dump(BIG_SYNTH_USER, 1), "implicit")

    def test_dovecot_20mb_stls(self):
        self._retr_big(BIG_DOVE_USER, BIG_DOVE_MSG, "stls")

    def test_curl_20mb_pop3s(self):
        r = th.curl_tls(f"pop3s://127.0.0.1:{popgate.ports['tls']}/1", BIG_DOVE_USER, PW,
                        ["--cacert", pki.ca_file], max_time=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, BIG_DOVE_MSG, "curl pop3s 20 MB")


class VersionsAndLog(harness.IntegrationTestCase):

    def test_session_log_tls13_implicit_and_stls(self):
        for mode, port in (("implicit", popgate.ports["tls"]), ("stls", popgate.ports["stls"])):
            c = th.TlsClient(port, mode=mode, ctx=ca_ctx(), server_hostname="127.0.0.1")
            self.addCleanup(c.close)
            self.assertTrue(c.login(SYNTH_USER, PW).startswith(b"+OK"))
            client_addr = "%s:%d" % c.raw_sock.getsockname()
            mark = popgate.log_mark()  # the session is live: later lines are ours
            c.cmd_ok("QUIT")
            c.read_until_closed(5)
            c.close()  # popgate logs the session once both directions ended
            rec = popgate.record_after(mark, event="session", client=client_addr)
            self.assertIsNotNone(rec, f"no session log line for {client_addr}")
            self.assertEqual(rec["tls"], "TLSv1.3", rec)
            self.assertEqual(rec["forwarding"], TLS_FORWARDING, rec)
            self.assertFalse(rec["tls_resumed"], rec)
            self.assertEqual(rec["backend_tls"], "", rec)
            self.assertEqual(rec["user"], SYNTH_USER, rec)
            self.assertEqual(rec["result"], "ok", rec)

    def test_quit_then_close_without_waiting_logged_ok(self):
        # Many clients read "+OK" to QUIT and close at once (no close_notify,
        # without waiting for popgate's close).  The session ended normally:
        # the log must say "ok", as it does for the same client without TLS.
        results = {}
        for kind in ("plain", "implicit", "stls"):
            if kind == "plain":
                c = harness.RawClient(popgate.ports["plain"])
                sock = c.sock
            else:
                port = popgate.ports["tls" if kind == "implicit" else "stls"]
                c = th.TlsClient(port, mode=kind, ctx=ca_ctx(), server_hostname="127.0.0.1")
                sock = c.raw_sock
            self.addCleanup(c.close)
            self.assertTrue(c.login(SYNTH_USER, PW).startswith(b"+OK"))
            addr = "%s:%d" % sock.getsockname()
            mark = popgate.log_mark()
            self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
            c.close()
            rec = popgate.record_after(mark, event="session", client=addr)
            self.assertIsNotNone(rec, f"no session log line for {addr}")
            results[kind] = rec["result"]
        self.assertEqual(results, {"plain": "ok", "implicit": "ok", "stls": "ok"})

    def test_plain_session_still_spliced(self):
        c = self.raw(popgate.ports["plain"])
        self.assertTrue(c.login(SYNTH_USER, PW).startswith(b"+OK"))
        client_addr = "%s:%d" % c.sock.getsockname()
        mark = popgate.log_mark()  # the session is live: later lines are ours
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()
        rec = popgate.record_after(mark, event="session", client=client_addr)
        self.assertIsNotNone(rec)
        self.assertEqual((rec["tls"], rec["forwarding"]), ("", "splice"), rec)

    def test_tls12_client(self):
        ctx = ca_ctx(maximum_version=ssl.TLSVersion.TLSv1_2)
        for mode in ("implicit", "stls"):
            port = popgate.ports["tls" if mode == "implicit" else "stls"]
            c = th.TlsClient(port, mode=mode, ctx=ctx, server_hostname="127.0.0.1")
            self.addCleanup(c.close)
            self.assertEqual(c.sock.version(), "TLSv1.2")
            self.assertTrue(c.login(SYNTH_USER, PW).startswith(b"+OK"))
            self.assertBytesEqual(c.retr(4), synth.dump(SYNTH_USER, 4), "RETR over TLS 1.2")
            client_addr = "%s:%d" % c.raw_sock.getsockname()
            mark = popgate.log_mark()  # the session is live: later lines are ours
            c.cmd_ok("QUIT")
            c.read_until_closed(5)
            c.close()  # popgate logs the session once both directions ended
            rec = popgate.record_after(mark, event="session", client=client_addr)
            self.assertIsNotNone(rec)
            self.assertEqual(rec["tls"], "TLSv1.2", rec)

    def test_startup_tls_path_line(self):
        recs = popgate.session_records(event="tls_path")
        self.assertEqual(len(recs), 1, recs)
        self.assertIs(recs[0]["ktls_available"], th.ktls_available(), recs[0])
        self.assertEqual(recs[0]["path"], "ktls" if th.ktls_available() else "userspace",
                         recs[0])

    def test_tls11_and_older_refused(self):
        for v in ("-tls1_1", "-tls1"):
            r = th.s_client(popgate.ports["tls"], [v, "-cipher", "DEFAULT@SECLEVEL=0"],
                            stdin=b"QUIT\r\n", timeout=15)
            self.assertNotEqual(r.returncode, 0, f"{v} accepted: {r.stdout[-500:]!r}")
            self.assertNotIn(b"popgate ready", r.stdout)
            self.assertIn(b"protocol version", r.stderr, r.stderr[-500:])
        recs = harness.wait_until(
            lambda: [x for x in popgate.session_records(event="session")
                     if x["result"].startswith("tls_handshake_failed")
                     and "PROTOCOL" in x.get("detail", "").upper()], 5)
        self.assertTrue(recs, "no tls_handshake_failed line for an old protocol")

    def test_untrusted_client_cert_check_fails_for_wrong_name(self):
        # The listener cert is for localhost/127.0.0.1: a client verifying
        # another name must refuse it (the cert is what we configured).
        ctx = ca_ctx()
        with self.assertRaises(ssl.SSLCertVerificationError):
            th.TlsClient(popgate.ports["tls"], ctx=ctx, server_hostname="other.example.org")


if __name__ == "__main__":
    unittest.main()
