"""PROXY protocol from the front (issue 10): a real HAProxy from Debian
(`mode tcp`) in front of popgate's proxy_protocol listeners.

HAProxy has three frontends: "v2" (send-proxy-v2) and "v1" (send-proxy)
to popgate's plain listener, "tls" (send-proxy-v2) to its implicit-TLS
listener; the v1 and v2 servers are health-checked by HAProxy (a POP3
tcp-check: expect the greeting, send QUIT). HAProxy 2.6 starts a v2 check
with a LOCAL header and a v1 check with a TCP4 line naming the check
connection's own addresses (never UNKNOWN: popgate's readiness probe
sends that one). popgate trusts PROXY headers only
from 127.0.0.1 (HAProxy), and plaintext logins only from 127.0.0.2
([tls] trusted_networks = ["127.0.0.2/32"]), so a login through HAProxy
works or not by the address in the header, not by the socket's peer. Its
tenant tells pop3-synth --proxy-protocol who the client is
(client_identity = "proxy-v2") through a relay that keeps the header.

* Through v2 and v1, from 127.0.0.2: login, RETR bytes equal; the session
  log's "client" is 127.0.0.2:<the client's port>, "front" HAProxy's
  address; the backend's PROXY v2 header names 127.0.0.2:<port> and
  HAProxy's frontend as the destination.
* From 127.0.0.4 through HAProxy: plaintext login refused (not in
  trusted_networks), though the socket's peer is the same HAProxy.
* Implicit TLS behind HAProxy (the header before the ClientHello):
  poplib.POP3_SSL from 127.0.0.2 logs in, the log has the client and TLS.
* HAProxy's health checks (v2 LOCAL, v1 TCP4) get the greeting: both
  servers are UP with L7OK in HAProxy's stats, no check failed, and their
  sessions are logged with HAProxy's own address, ended by QUIT.
* Directly to the listener: POP3 without a header is closed
  (proxy_header_error, "missing PROXY header"); a truncated header is
  closed at proxy_protocol_timeout (1 s here); a header from a source not
  in proxy_trusted_networks (127.0.0.5) is refused (proxy_untrusted).
"""

import poplib
import socket
import ssl
import time
import unittest

import harness
import tlsharness as th
from identity_harness import RecordingRelay, SourceClient, parse_proxy_v2
from popgate_testing.haproxy import Haproxy, HaproxyFrontend, require_haproxy
from popgate_testing.ports import wait_until
from popgate_testing.popgate import toml_value

LOOPBACK = harness.LOOPBACK
USER, PW = "alice@example.com", "front-pw-1"
GOOD_SRC = "127.0.0.2"       # in trusted_networks: plaintext allowed
OTHER_SRC = "127.0.0.4"      # not: plaintext refused
ROGUE_SRC = "127.0.0.5"      # not in proxy_trusted_networks
PROXY_TIMEOUT = 1.0          # [server] proxy_protocol_timeout
# What the readiness probe sends: v1's "no address" form (HAProxy's own
# checks send v2 LOCAL, and v1 TCP4 with their own addresses).
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"

# HAProxy's POP3 check: the greeting must come (popgate answers a LOCAL
# header with it), then QUIT.
POP3_CHECK = ["option tcp-check", "tcp-check expect string +OK",
              "tcp-check send QUIT\\r\\n", "tcp-check expect string +OK"]

res = harness.ModuleResources()
pki = synth = relay = pg = hap = None


class FrontPopgate(th.TlsPopgate):
    """TlsPopgate whose listeners all take a PROXY header (proxy_protocol,
    proxy_trusted_networks); readiness is checked through a v1 UNKNOWN
    header, as a balancer's health check could."""

    def __init__(self, *a, proxy_trusted: list[str], **kw):
        super().__init__(*a, **kw)
        self.proxy_trusted = proxy_trusted

    def _listener_lines(self) -> list[str]:
        out = []
        for line in super()._listener_lines():
            out.append(line)
            if line.startswith("address = "):
                out += ["proxy_protocol = true",
                        f"proxy_trusted_networks = {toml_value(self.proxy_trusted)}"]
        return out

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for l in self.listeners:
            while not _local_greeting(self.ports[l.name], l.tls == "implicit"):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"popgate exited with {self.proc.returncode}"
                                       + harness._tail(self.stderr_path))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"popgate's {l.name} listener did not greet"
                                       + harness._tail(self.stderr_path))
                time.sleep(0.05)


def _local_greeting(port: int, tls: bool) -> bool:
    try:
        s = socket.create_connection((LOOPBACK, port), timeout=2)
    except OSError:
        return False
    try:
        s.sendall(V1_UNKNOWN)
        if tls:
            s = th.insecure_ctx().wrap_socket(s)
        data = s.recv(512)
        if data.startswith(b"+OK"):
            s.sendall(b"QUIT\r\n")
            return True
        return False
    except (OSError, ssl.SSLError):
        return False
    finally:
        s.close()


class SourcePOP3_SSL(poplib.POP3_SSL):
    """poplib.POP3_SSL whose connection comes from `source` (a 127/8
    address)."""

    def __init__(self, host, port, source, **kw):
        self._source = source
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


def setUpModule():
    global pki, synth, relay, pg, hap
    require_haproxy()
    try:
        pki = res.add(th.Pki())
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        synth = res.add(harness.Synth({USER: PW}, messages=2, size=3000,
                                      extra_args=["--proxy-protocol"]))
        relay = res.add(RecordingRelay((LOOPBACK, synth.port)))
        tenant = th.TlsTenant("example", ["example.com"], [relay.address],
                              users={USER: PW},
                              settings={"client_identity": "proxy-v2"})
        pg = res.add(FrontPopgate(
            [tenant],
            listeners=[th.Listener("plain", "none", plaintext_auth="trusted",
                                   default_tenant="example"),
                       th.Listener("tls", "implicit", certificates=[cert],
                                   default_tenant="example")],
            tls={"session_tickets": False, "trusted_networks": [f"{GOOD_SRC}/32"]},
            server={"proxy_protocol_timeout": f"{int(PROXY_TIMEOUT * 1000)}ms"},
            proxy_trusted=[f"{LOOPBACK}/32"]))
        plain = f"{LOOPBACK}:{pg.ports['plain']}"
        hap = res.add(Haproxy([
            HaproxyFrontend("v2", plain, "send-proxy-v2 check inter 500ms", POP3_CHECK),
            HaproxyFrontend("v1", plain, "send-proxy check inter 500ms", POP3_CHECK),
            HaproxyFrontend("tls", f"{LOOPBACK}:{pg.ports['tls']}", "send-proxy-v2"),
        ]))
    except BaseException:
        res.close()
        raise


def tearDownModule():
    res.close()


class FrontProxyTest(unittest.TestCase):
    maxDiff = 2000

    def session_record(self, mark: int, client: str) -> dict:
        rec = pg.record_after(mark, event="session", client=client)
        self.assertIsNotNone(rec, f"no session record for {client}:\n"
                             + pg.stderr_text()[-3000:])
        return rec

    def assert_front_is_haproxy(self, rec: dict) -> None:
        front = rec.get("front", "")
        self.assertTrue(front.startswith(f"{LOOPBACK}:"), rec)
        self.assertNotEqual(front, rec["client"], rec)

    def backend_header_for(self, client: tuple[str, int]):
        """The PROXY v2 header popgate sent the backend for `client`."""
        def find():
            for sent in relay.sent_since(0):
                h = parse_proxy_v2(sent)
                if h is not None and h.src == client:
                    return h
            return None
        return wait_until(find, 5)

    def login_through(self, frontend: str, source: str):
        mark = pg.log_mark()
        c = SourceClient(hap.ports[frontend], source)
        try:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
            self.assertEqual(c.retr(2), synth.dump(USER, 2))
            c.cmd_ok("QUIT")
            local = c.local
        finally:
            c.close()
        client = f"{local[0]}:{local[1]}"
        rec = pg.record_after(mark, event="session", client=client, result="ok")
        self.assertIsNotNone(rec, pg.stderr_text()[-3000:])
        self.assert_front_is_haproxy(rec)
        self.assertEqual(rec.get("identity"), "proxy-v2", rec)
        hdr = self.backend_header_for(local)
        self.assertIsNotNone(hdr, "the backend was not told the header's client")
        # What the client connected to: HAProxy's frontend.
        self.assertEqual(hdr.dst, (LOOPBACK, hap.ports[frontend]))

    def test_v2_client_address_everywhere(self):
        self.login_through("v2", GOOD_SRC)

    def test_v1_client_address_everywhere(self):
        self.login_through("v1", GOOD_SRC)

    def test_plaintext_trust_follows_the_header(self):
        mark = pg.log_mark()
        c = SourceClient(hap.ports["v2"], OTHER_SRC)
        try:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            r = c.cmd(f"USER {USER}")
            self.assertTrue(r.startswith(b"-ERR [AUTH] Plaintext"), r)
            c.cmd_ok("QUIT")
            local = c.local
        finally:
            c.close()
        rec = self.session_record(mark, f"{local[0]}:{local[1]}")
        self.assert_front_is_haproxy(rec)
        self.assertEqual(rec.get("user"), "", rec)

    def test_implicit_tls_behind_haproxy(self):
        mark = pg.log_mark()
        ctx = th.verifying_ctx(pki.ca_file)
        p = SourcePOP3_SSL(LOOPBACK, hap.ports["tls"], GOOD_SRC, context=ctx, timeout=10)
        try:
            local = p.sock.getsockname()
            p.user(USER)
            p.pass_(PW)
            self.assertEqual(harness.poplib_retr_bytes(p, 1), synth.dump(USER, 1))
            p.quit()
        finally:
            p.close()
        rec = pg.record_after(mark, event="session", client=f"{local[0]}:{local[1]}",
                              result="ok")
        self.assertIsNotNone(rec, pg.stderr_text()[-3000:])
        self.assert_front_is_haproxy(rec)
        self.assertTrue(rec.get("tls", "").startswith("TLS"), rec)

    def test_haproxy_health_checks_are_local(self):
        # HAProxy's tcp-check passes (L7OK: it got "+OK" to its LOCAL (v2)
        # or self-addressed TCP4 (v1) connection, then "+OK" to QUIT).
        for fe in ("v2", "v1"):
            ok = wait_until(lambda: hap.server_stat(fe, "check_status") == "L7OK"
                            and hap.server_status(fe) == "UP", 10)
            self.assertTrue(ok, f"{fe}: {hap.server_status(fe)} "
                            f"{hap.server_stat(fe, 'check_status')}\n{hap.log_text()[-2000:]}")
            self.assertEqual(hap.server_stat(fe, "chkfail"), "0", hap.log_text()[-2000:])
        # The checks' sessions: HAProxy's own address as client and front
        # (127.0.0.1 both: for v1 the header's, for LOCAL the socket's),
        # ended by its QUIT, never a header error.
        checks = [r for r in pg.session_records(event="session")
                  if r.get("front", "").startswith(f"{LOOPBACK}:")
                  and r.get("client", "").startswith(f"{LOOPBACK}:")]
        self.assertTrue(checks, pg.stderr_text()[-2000:])
        for r in checks:
            self.assertEqual(r["result"], "quit", r)

    def test_direct_pop3_without_header_is_closed(self):
        mark = pg.log_mark()
        c = harness.RawClient(pg.ports["plain"], read_greeting=False)
        try:
            c.send(b"CAPA\r\n")
            self.assertEqual(c.read_until_closed(5), b"")
            local = c.sock.getsockname()
        finally:
            c.close()
        rec = self.session_record(mark, f"{local[0]}:{local[1]}")
        self.assertEqual(rec["result"], "proxy_header_error", rec)
        self.assertEqual(rec.get("detail"), "missing PROXY header", rec)
        self.assertNotIn("front", rec)

    def test_truncated_header_times_out(self):
        mark = pg.log_mark()
        c = harness.RawClient(pg.ports["plain"], read_greeting=False)
        try:
            start = time.monotonic()
            c.send(b"PROXY TCP4 127.0.0.2 ")
            self.assertEqual(c.read_until_closed(harness.scaled(5)), b"")
            took = time.monotonic() - start
            local = c.sock.getsockname()
        finally:
            c.close()
        self.assertGreaterEqual(took, PROXY_TIMEOUT - 0.1)
        self.assertLess(took, harness.scaled(PROXY_TIMEOUT + 1.5))
        rec = self.session_record(mark, f"{local[0]}:{local[1]}")
        self.assertEqual(rec["result"], "proxy_header_error", rec)
        self.assertEqual(rec.get("detail"), "PROXY header timeout", rec)

    def test_header_from_untrusted_source_is_refused(self):
        mark = pg.log_mark()
        s = socket.create_connection((LOOPBACK, pg.ports["plain"]), timeout=5,
                                     source_address=(ROGUE_SRC, 0))
        try:
            local = s.getsockname()
            s.sendall(f"PROXY TCP4 {GOOD_SRC} 127.0.0.1 40000 110\r\nCAPA\r\n".encode())
            try:
                data = s.recv(512)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")
        finally:
            s.close()
        rec = self.session_record(mark, f"{local[0]}:{local[1]}")
        self.assertEqual(rec["result"], "proxy_untrusted", rec)
        self.assertEqual(rec.get("detail"), "source not in proxy_trusted_networks", rec)


if __name__ == "__main__":
    unittest.main()
