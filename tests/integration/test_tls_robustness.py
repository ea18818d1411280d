"""TLS under misbehaving clients and under load.

* Garbage on the implicit TLS port (random bytes, an HTTP request, plain
  POP3, a truncated record) gets a clean close within handshake_timeout;
  a TLS ClientHello on the plain port (and on the STLS port before STLS)
  gets -ERR lines and/or a clean close within a bounded time.  Normal
  sessions work right after, and while such connections are pending.
* A client that completes the handshake and then goes silent is closed by
  preauth_idle_timeout (implicit and after STLS); one that never sends a
  ClientHello (or half of one, or nothing after +OK to STLS) is closed after
  handshake_timeout.  The session log says why.
* 100 concurrent TLS sessions (ECDSA TLS 1.3 and RSA TLS 1.2, implicit and
  STLS) all log in and RETR exact bytes at the same time."""

import os
import random
import socket
import ssl
import threading
import time
import unittest

import harness
import tlsharness as th

PW = "Rob-Pw-6"
USER = "alice@example.com"
N_CONCURRENT = 100
HANDSHAKE_TIMEOUT = 1.0
PREAUTH_IDLE = 2.0

res = harness.ModuleResources()
pki = synth = popgate = None


def conc_user(i):
    return f"c{i}@example.com"


def setUpModule():
    global pki, synth, popgate
    try:
        pki = res.add(th.Pki())
        ec = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        rsa = pki.leaf("pop-rsa.example.net", ["localhost", "127.0.0.1"], "rsa")
        users = {USER: PW}
        users.update({conc_user(i): PW for i in range(N_CONCURRENT)})
        synth = res.add(harness.Synth(users, sizes=[3000, 40000]))
        popgate = res.add(th.TlsPopgate(
            [harness.Tenant("example-com", ["example.com"], [synth.address], users=users)],
            [th.Listener("tls", "implicit", [ec, rsa]),
             th.Listener("stls", "starttls", [ec, rsa]),
             th.Listener("plain", "none")],
            tls={"handshake_timeout": f"{int(HANDSHAKE_TIMEOUT * 1000)}ms"},
            server={"preauth_idle_timeout": f"{int(PREAUTH_IDLE * 1000)}ms",
                    "backend_timeout": "5s"}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def client_hello() -> bytes:
    """The bytes of a real TLS ClientHello (Python's ssl, via memory BIOs)."""
    ctx = th.insecure_ctx()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="pop.example.net")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16", data[:10]
    return data


def wait_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Reads until EOF or RST; returns (bytes, seconds).  Fails at timeout."""
    t0 = time.monotonic()
    data = b""
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise AssertionError(f"still open after {timeout}s; got {data[-200:]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - t0
        if not chunk:
            return data, time.monotonic() - t0
        data += chunk


class Base(harness.IntegrationTestCase):

    def setUp(self):
        self.mark = popgate.log_mark()

    def connect(self, listener) -> socket.socket:
        s = socket.create_connection((harness.LOOPBACK, popgate.ports[listener]), timeout=10)
        self.addCleanup(s.close)
        return s

    def assert_normal_session(self):
        t = th.TlsClient(popgate.ports["tls"], ctx=th.verifying_ctx(pki.ca_file),
                         server_hostname="127.0.0.1")
        self.addCleanup(t.close)
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))
        self.assertBytesEqual(t.retr(1), synth.dump(USER, 1), "RETR")
        t.cmd_ok("QUIT")
        t.close()
        c = self.raw(popgate.ports["plain"])
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")
        c.close()

    def record_for(self, sock_name) -> dict:
        addr = "%s:%d" % sock_name
        rec = popgate.record_after(self.mark, timeout=5, event="session", client=addr)
        self.assertIsNotNone(rec, f"no session log line for {addr}")
        return rec


class Garbage(Base):

    def test_garbage_on_tls_port(self):
        rnd = random.Random(1234)
        cases = {
            "random": bytes(rnd.randrange(256) for _ in range(4096)),
            "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "pop3": f"USER {USER}\r\nPASS {PW}\r\n".encode(),
            "zeros": b"\0" * 2048,
            "bad-record": b"\x16\x03\x01\x00\x05hello" + b"\x17\x03\x03\x00\x10" + b"x" * 16,
        }
        for name, data in cases.items():
            with self.subTest(case=name):
                s = self.connect("tls")
                name_ = s.getsockname()
                try:
                    s.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got, elapsed = wait_closed(s, HANDSHAKE_TIMEOUT + 2)
                self.assertNotIn(b"+OK", got)
                s.close()
                rec = self.record_for(name_)
                self.assertTrue(rec["result"].startswith("tls_handshake"), rec)
                self.assertEqual(rec["user"], "")
        self.assert_normal_session()

    def test_truncated_record_times_out(self):
        # A record header announcing more bytes than ever come.
        s = self.connect("tls")
        name = s.getsockname()
        s.sendall(b"\x16\x03\x01\x02\x00" + client_hello()[5:60])
        _, elapsed = wait_closed(s, HANDSHAKE_TIMEOUT + 3)
        self.assertGreater(elapsed, HANDSHAKE_TIMEOUT * 0.8)
        s.close()
        self.assertEqual(self.record_for(name)["result"], "tls_handshake_timeout")

    def test_client_hello_on_plain_port(self):
        hello = client_hello()
        for listener, read_greeting in (("plain", True), ("plain", False), ("stls", True)):
            with self.subTest(listener=listener, read_greeting=read_greeting):
                s = self.connect(listener)
                if read_greeting:
                    s.settimeout(5)
                    self.assertTrue(s.recv(100).startswith(b"+OK"))
                s.sendall(hello)
                # popgate answers each "line" of binary with -ERR and closes
                # after too many; or closes; either within a bounded time.
                t0 = time.monotonic()
                try:
                    got, elapsed = wait_closed(s, 5)
                    closed = True
                except AssertionError:
                    got, closed = b"", False
                    s.setblocking(False)
                    try:
                        got = s.recv(65536)
                    except BlockingIOError:
                        pass
                lines = [l for l in got.split(b"\r\n") if l]
                if not read_greeting and lines and lines[0].startswith(b"+OK"):
                    lines = lines[1:]   # the greeting
                self.assertTrue(closed or lines, "neither -ERR nor a close for a ClientHello")
                for l in lines:
                    self.assertTrue(l.startswith(b"-ERR"), f"unexpected reply {l!r}")
                self.assertNotIn(b"+OK Send PASS", got)
        self.assert_normal_session()

    def test_python_tls_client_on_plain_port(self):
        # A client that expects implicit TLS on the plain port fails cleanly.
        with self.assertRaises((ssl.SSLError, OSError)):
            th.TlsClient(popgate.ports["plain"], timeout=5)
        self.assert_normal_session()


class Timeouts(Base):

    def test_silent_after_handshake_implicit(self):
        t = th.TlsClient(popgate.ports["tls"])
        self.addCleanup(t.close)
        name = t.raw_sock.getsockname()
        t0 = time.monotonic()
        rest = t.read_until_closed(PREAUTH_IDLE + 3)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, PREAUTH_IDLE * 0.8)
        self.assertLess(elapsed, PREAUTH_IDLE + 2)
        self.assertIn(rest, (b"", b"-ERR Disconnected for inactivity.\r\n"))
        t.close()
        rec = self.record_for(name)
        self.assertEqual((rec["result"], rec["tls"]), ("idle_timeout", "TLSv1.3"), rec)

    def test_silent_after_stls_handshake(self):
        t = th.TlsClient(popgate.ports["stls"], mode="stls")
        self.addCleanup(t.close)
        name = t.raw_sock.getsockname()
        t0 = time.monotonic()
        t.read_until_closed(PREAUTH_IDLE + 3)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, PREAUTH_IDLE * 0.8)
        self.assertLess(elapsed, PREAUTH_IDLE + 2)
        t.close()
        self.assertEqual(self.record_for(name)["result"], "idle_timeout")

    def test_no_client_hello_implicit(self):
        s = self.connect("tls")
        name = s.getsockname()
        got, elapsed = wait_closed(s, HANDSHAKE_TIMEOUT + 3)
        self.assertEqual(got, b"")   # popgate says nothing before TLS
        self.assertGreater(elapsed, HANDSHAKE_TIMEOUT * 0.8)
        self.assertLess(elapsed, HANDSHAKE_TIMEOUT + 1.5)
        s.close()
        self.assertEqual(self.record_for(name)["result"], "tls_handshake_timeout")

    def test_half_client_hello(self):
        s = self.connect("tls")
        name = s.getsockname()
        hello = client_hello()
        s.sendall(hello[:len(hello) // 2])
        _, elapsed = wait_closed(s, HANDSHAKE_TIMEOUT + 3)
        self.assertGreater(elapsed, HANDSHAKE_TIMEOUT * 0.8)
        self.assertLess(elapsed, HANDSHAKE_TIMEOUT + 1.5)
        s.close()
        self.assertEqual(self.record_for(name)["result"], "tls_handshake_timeout")

    def test_no_client_hello_after_stls(self):
        c = self.raw(popgate.ports["stls"])
        name = c.sock.getsockname()
        self.assertEqual(c.cmd("STLS"), b"+OK Begin TLS negotiation\r\n")
        t0 = time.monotonic()
        c.read_until_closed(HANDSHAKE_TIMEOUT + 3)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, HANDSHAKE_TIMEOUT * 0.8)
        self.assertLess(elapsed, HANDSHAKE_TIMEOUT + 1.5)
        c.close()
        self.assertEqual(self.record_for(name)["result"], "tls_handshake_timeout")

    def test_stalled_handshakes_do_not_block_others(self):
        stalled = []
        for _ in range(20):
            s = self.connect("tls")
            s.sendall(client_hello()[:30])
            stalled.append(s)
        t0 = time.monotonic()
        self.assert_normal_session()
        self.assertLess(time.monotonic() - t0, HANDSHAKE_TIMEOUT * 0.8,
                        "a normal session waited for stalled handshakes")


class Concurrency(Base):

    def test_100_concurrent_tls_sessions(self):
        barrier = threading.Barrier(N_CONCURRENT, timeout=60)
        errors: list[str] = []
        rsa_ctx = th.verifying_ctx(pki.ca_file, maximum_version=ssl.TLSVersion.TLSv1_2)
        rsa_ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        ec_ctx = th.verifying_ctx(pki.ca_file)

        def one(i):
            user = conc_user(i)
            mode = "implicit" if i % 2 == 0 else "stls"
            ctx = rsa_ctx if i % 4 in (1, 2) else ec_ctx
            port = popgate.ports["tls" if mode == "implicit" else "stls"]
            c = None
            try:
                c = th.TlsClient(port, mode=mode, ctx=ctx, server_hostname="127.0.0.1",
                                 timeout=60)
                r = c.login(user, PW)
                if not r.startswith(b"+OK"):
                    raise AssertionError(f"login {r!r}")
                barrier.wait()   # all 100 logged in at once
                for n in (1, 2):
                    got = c.retr(n)
                    if got != synth.dump(user, n):
                        raise AssertionError(f"RETR {n} differs ({len(got)} bytes)")
                c.cmd_ok("QUIT")
                c.read_until_closed(10)   # a polite client: waits for popgate's close
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(f"{user} ({mode}): {e!r}")
                try:
                    barrier.abort()
                except Exception:
                    pass
            finally:
                if c is not None:
                    c.close()

        for i in range(N_CONCURRENT):   # dumps computed before the threads start
            synth.dump(conc_user(i), 1)
            synth.dump(conc_user(i), 2)
        threads = [threading.Thread(target=one, args=(i,), daemon=True)
                   for i in range(N_CONCURRENT)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertFalse(any(t.is_alive() for t in threads), "threads still running")
        self.assertEqual(errors, [], f"{len(errors)} of {N_CONCURRENT} failed")
        recs = harness.wait_until(
            lambda: (lambda r: r if len(r) >= N_CONCURRENT else None)(
                [r for r in popgate.log_records()[self.mark:] if r.get("event") == "session"
                 and r["user"].startswith("c") and r["user"].endswith("@example.com")]), 10)
        self.assertTrue(recs, "session log lines missing")
        self.assertEqual(sorted(r["user"] for r in recs),
                         sorted(conc_user(i) for i in range(N_CONCURRENT)))
        self.assertTrue(all(r["result"] == "ok" and r["tls"] for r in recs),
                        [r for r in recs if r["result"] != "ok" or not r["tls"]][:3])
        self.assertEqual({r["tls"] for r in recs}, {"TLSv1.3", "TLSv1.2"})
        self.assertLess(time.monotonic() - t0, 60)


if __name__ == "__main__":
    unittest.main()
