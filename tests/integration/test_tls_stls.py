"""STLS (RFC 2595) and the plaintext_auth policy.

* Command injection (CVE-2011-0411): whatever the client sent in plaintext
  behind STLS is discarded, never executed after the handshake -- USER,
  USER+PASS and CAPA pipelined behind STLS in one packet (raw socket + ssl);
  a USER given before STLS is forgotten too.
* CAPA offers STLS before TLS only; STLS again gets -ERR; STLS where the
  listener has no STLS gets -ERR; TLS renegotiation is refused.
* plaintext_auth: with `trusted_networks = []` a plain USER/PASS/AUTH gets
  `-ERR [AUTH] ... use STLS first`, CAPA has no USER, and login works after
  STLS (raw, poplib, curl --ssl-reqd); "always" allows plain logins from
  anywhere, "never" refuses them even from loopback; the default
  (trusted, loopback) allows them on loopback."""

import poplib
import socket
import ssl
import subprocess
import time
import unittest

import harness
import tlsharness as th

PW = "Stls-Pw-8"
USER = "alice@example.com"
REFUSED = (b"-ERR [AUTH] Plaintext authentication disallowed on non-secure "
           b"connections; use STLS first.\r\n")

res = harness.ModuleResources()
pki = synth = untrusted = default = None


def setUpModule():
    global pki, synth, untrusted, default
    try:
        pki = res.add(th.Pki())
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        synth = res.add(harness.Synth({USER: PW}, sizes=[600, 7000]))
        tenants = [harness.Tenant("example-com", ["example.com"], [synth.address],
                                  users={USER: PW})]
        # Loopback is NOT trusted here.
        untrusted = res.add(th.TlsPopgate(
            tenants,
            [th.Listener("stls", "starttls", [cert]),
             th.Listener("always", "none", plaintext_auth="always"),
             th.Listener("stls-always", "starttls", [cert], plaintext_auth="always"),
             th.Listener("tls", "implicit", [cert])],
            tls={"trusted_networks": []}))
        default = res.add(th.TlsPopgate(
            tenants,
            [th.Listener("stls", "starttls", [cert]),
             th.Listener("plain", "none"),
             th.Listener("never", "starttls", [cert], plaintext_auth="never"),
             th.Listener("tls", "implicit", [cert])]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def capa_names(body: bytes) -> set[bytes]:
    return {l.split()[0].upper() for l in body.split(b"\r\n") if l.strip()}


class Injection(harness.IntegrationTestCase):
    """Bytes pipelined behind STLS in the same packet as STLS."""

    def stls_with_tail(self, gate, tail: bytes, listener="stls") -> th.TlsClient:
        sock = socket.create_connection((harness.LOOPBACK, gate.ports[listener]), timeout=10)
        c = th.TlsClient.over_plain(sock, th.verifying_ctx(pki.ca_file), "127.0.0.1")
        self.addCleanup(c.close)
        self.assertTrue(c.readline().startswith(b"+OK"))
        sock.sendall(b"STLS\r\n" + tail)         # one write: one segment on loopback
        self.assertEqual(c.readline(), b"+OK Begin TLS negotiation\r\n")
        # Nothing may follow +OK in plaintext (no reply to the injected part).
        sock.settimeout(0.3)
        try:
            extra = sock.recv(4096, socket.MSG_PEEK)
        except socket.timeout:
            extra = b""
        self.assertEqual(extra, b"", "plaintext reply to a command injected behind STLS")
        sock.settimeout(10)
        c.start_tls()
        return c

    def test_injected_user_is_not_executed(self):
        for gate in (default, untrusted):
            with self.subTest(gate="default" if gate is default else "untrusted"):
                c = self.stls_with_tail(gate, f"USER {USER}\r\n".encode())
                # Had USER been executed, PASS would log in.
                self.assertEqual(c.cmd(f"PASS {PW}"), b"-ERR No username given, send USER first\r\n")
                # A proper login over TLS works.
                self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
                c.cmd_ok("QUIT")

    def test_injected_user_and_pass_do_not_log_in(self):
        c = self.stls_with_tail(default, f"USER {USER}\r\nPASS {PW}\r\n".encode())
        # Still in AUTHORIZATION (popgate's own reply, not the backend's).
        self.assertEqual(c.cmd("STAT"), b"-ERR Unknown command or not allowed before login\r\n")
        addr = "%s:%d" % c.raw_sock.getsockname()
        mark = default.log_mark()  # the session is live: later lines are ours
        c.cmd_ok("QUIT")
        c.close()
        rec = default.record_after(mark, event="session", client=addr)
        self.assertIsNotNone(rec)
        self.assertEqual((rec["user"], rec["backend"], rec["result"]), ("", "", "quit"), rec)
        self.assertEqual(rec["tls"], "TLSv1.3")

    def test_injected_capa_reply_never_appears(self):
        c = self.stls_with_tail(default, b"CAPA\r\n")
        # The first reply over TLS must be to our QUIT, not a capability list.
        self.assertEqual(c.cmd("QUIT"), b"+OK Logging out\r\n")
        self.assertEqual(c.read_until_closed(5), b"")

    def test_injection_in_a_second_segment(self):
        # STLS and the injected line in separate segments, before the
        # ClientHello: either the handshake fails (the plaintext reached the
        # TLS layer) or the line was dropped; it is never executed.
        sock = socket.create_connection((harness.LOOPBACK, default.ports["stls"]), timeout=10)
        self.addCleanup(sock.close)
        c = th.TlsClient.over_plain(sock)
        c.readline()
        sock.sendall(b"STLS\r\n")
        time.sleep(0.05)
        sock.sendall(f"USER {USER}\r\n".encode())
        self.assertEqual(c.readline(), b"+OK Begin TLS negotiation\r\n")
        if c.buf:
            # popgate already took the plaintext line as TLS and sent an alert.
            self.assertEqual(bytes(c.buf[:1]), b"\x15", f"plaintext reply: {bytes(c.buf)!r}")
            return
        try:
            c.start_tls()
        except (ssl.SSLError, OSError):
            return  # handshake refused: fine
        self.addCleanup(c.close)
        try:
            r = c.cmd(f"PASS {PW}")
        except (ssl.SSLError, OSError, harness.ConnectionClosed):
            return
        self.assertEqual(r, b"-ERR No username given, send USER first\r\n")

    def test_user_before_stls_is_forgotten(self):
        c = th.TlsClient.over_plain(
            socket.create_connection((harness.LOOPBACK, default.ports["stls"]), timeout=10),
            th.verifying_ctx(pki.ca_file), "127.0.0.1")
        self.addCleanup(c.close)
        c.readline()
        self.assertEqual(c.cmd(f"USER {USER}"), b"+OK Send PASS\r\n")  # loopback trusted
        self.assertEqual(c.cmd("STLS"), b"+OK Begin TLS negotiation\r\n")
        c.start_tls()
        self.assertEqual(c.cmd(f"PASS {PW}"), b"-ERR No username given, send USER first\r\n")


class StlsProtocol(harness.IntegrationTestCase):

    def test_capa_before_and_after_stls(self):
        c = self.raw(default.ports["stls"])
        r, body = c.multi("CAPA")
        self.assertIn(b"STLS", capa_names(body))
        self.assertIn(b"USER", capa_names(body))   # loopback is trusted by default
        t = th.TlsClient(default.ports["stls"], mode="stls", ctx=th.verifying_ctx(pki.ca_file),
                         server_hostname="127.0.0.1")
        self.addCleanup(t.close)
        r, body = t.multi("CAPA")
        self.assertTrue(r.startswith(b"+OK"))
        self.assertNotIn(b"STLS", capa_names(body), body)
        self.assertIn(b"USER", capa_names(body))
        self.assertEqual(t.cmd("STLS"), b"-ERR TLS is already active\r\n")
        # Still usable after the refused STLS.
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))
        self.assertBytesEqual(t.retr(2), synth.dump(USER, 2), "RETR after STLS")
        t.cmd_ok("QUIT")

    def test_stls_on_implicit_listener(self):
        t = th.TlsClient(default.ports["tls"])
        self.addCleanup(t.close)
        r, body = t.multi("CAPA")
        self.assertNotIn(b"STLS", capa_names(body))
        self.assertEqual(t.cmd("STLS"), b"-ERR TLS is already active\r\n")

    def test_stls_on_plain_listener(self):
        c = self.raw(default.ports["plain"])
        r, body = c.multi("CAPA")
        self.assertNotIn(b"STLS", capa_names(body))
        self.assertEqual(c.cmd("STLS"), b"-ERR STLS not available on this listener\r\n")
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")

    def test_openssl_starttls_then_capa(self):
        r = th.s_client(default.ports["stls"], stdin=b"CAPA\r\nSTLS\r\nQUIT\r\n",
                        starttls=True, quiet=True)
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        rd = th.BufferReader(r.stdout)
        _, body = rd.multi_reply()
        self.assertNotIn(b"STLS", capa_names(body))
        self.assertEqual(rd.reply(), b"-ERR TLS is already active\r\n")
        self.assertEqual(rd.reply(), b"+OK Logging out\r\n")

    def test_renegotiation_refused(self):
        # s_client's interactive "R" asks for a TLS 1.2 renegotiation.
        p = subprocess.Popen([th.OPENSSL, "s_client", "-connect",
                              f"{harness.LOOPBACK}:{default.ports['tls']}", "-tls1_2",
                              "-noservername"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)
            p.stdin.write(b"R\n")
            p.stdin.flush()
            time.sleep(0.5)
            try:
                p.stdin.write(b"CAPA\r\n")
                p.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                out, err = p.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                p.kill()
                out, err = p.communicate()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertIn(b"RENEGOTIATING", err)
        self.assertIn(b"no renegotiation", err, err[-800:])
        self.assertNotIn(b"Capability list", out)
        # popgate is fine.
        t = th.TlsClient(default.ports["tls"])
        self.addCleanup(t.close)
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))


class PlaintextPolicy(harness.IntegrationTestCase):

    def test_untrusted_plain_login_refused(self):
        c = self.raw(untrusted.ports["stls"])
        r, body = c.multi("CAPA")
        names = capa_names(body)
        self.assertNotIn(b"USER", names, body)
        self.assertIn(b"STLS", names, body)
        self.assertEqual(c.cmd(f"USER {USER}"), REFUSED)
        self.assertEqual(c.cmd(f"PASS {PW}"), REFUSED)
        self.assertEqual(c.cmd("AUTH PLAIN"), REFUSED)
        # STLS on the same connection, then login works.
        self.assertEqual(c.cmd("STLS"), b"+OK Begin TLS negotiation\r\n")
        self.assertEqual(bytes(c.buf), b"")
        t = th.TlsClient.over_plain(c.sock, th.verifying_ctx(pki.ca_file), "127.0.0.1")
        t.start_tls()
        c.sock = t.sock  # so that the cleanup closes the TLS socket
        r, body = t.multi("CAPA")
        self.assertIn(b"USER", capa_names(body))
        self.assertNotIn(b"STLS", capa_names(body))
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))
        self.assertBytesEqual(t.retr(1), synth.dump(USER, 1), "RETR after STLS")
        t.cmd_ok("QUIT")

    def test_untrusted_poplib_and_curl(self):
        p = poplib.POP3(harness.LOOPBACK, untrusted.ports["stls"], timeout=10)
        try:
            self.assertNotIn("USER", p.capa())
            with self.assertRaises(poplib.error_proto) as cm:
                p.user(USER)
            self.assertIn(b"STLS", cm.exception.args[0])
            p.stls(context=th.verifying_ctx(pki.ca_file))
            p.user(USER)
            p.pass_(PW)
            self.assertEqual(p.stat(), (2, 7600))
        finally:
            p.quit()
        url = f"pop3://127.0.0.1:{untrusted.ports['stls']}/1"
        r = th.curl_tls(url, USER, PW, ["--ssl-reqd", "--cacert", pki.ca_file])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, synth.dump(USER, 1), "curl --ssl-reqd")
        # curl without TLS: the login is refused (curl reports a login failure).
        r = th.curl_tls(url, USER, PW, [], max_time=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")

    def test_untrusted_implicit_tls_login_works(self):
        t = th.TlsClient(untrusted.ports["tls"])
        self.addCleanup(t.close)
        r, body = t.multi("CAPA")
        self.assertIn(b"USER", capa_names(body))
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))

    def test_always_allows_plain(self):
        for listener in ("always", "stls-always"):
            with self.subTest(listener=listener):
                c = self.raw(untrusted.ports[listener])
                r, body = c.multi("CAPA")
                self.assertIn(b"USER", capa_names(body))
                self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
                self.assertBytesEqual(c.retr(1), synth.dump(USER, 1), "plain RETR")
                c.cmd_ok("QUIT")

    def test_never_refuses_even_loopback(self):
        c = self.raw(default.ports["never"])
        r, body = c.multi("CAPA")
        self.assertNotIn(b"USER", capa_names(body))
        self.assertEqual(c.cmd(f"USER {USER}"), REFUSED)
        t = th.TlsClient(default.ports["never"], mode="stls")
        self.addCleanup(t.close)
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))

    def test_default_trusts_loopback(self):
        for listener in ("stls", "plain"):
            with self.subTest(listener=listener):
                c = self.raw(default.ports[listener])
                r, body = c.multi("CAPA")
                self.assertIn(b"USER", capa_names(body))
                self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
                c.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
