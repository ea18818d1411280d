"""Backends that fail: down (connection refused), accepting but never
greeting, closing at once, greeting with -ERR, stalling during the login,
slow but within backend_timeout, and a backend killed (SIGKILL) in the middle
of a RETR.  popgate answers -ERR [SYS/TEMP] within backend_timeout + margin,
closes that session, never hangs, and keeps serving other tenants."""

import os
import signal
import socket
import time
import unittest

import harness
from harness import RawClient, FakeBackend

PW = "Backend-Fail-Pw"
GOOD = "good@good.example"
BACKEND_TIMEOUT = 2.0
MARGIN = 1.5


class BackendFailure(harness.IntegrationTestCase):

    def setUp(self):
        self.good = self.start_synth({GOOD: PW}, sizes=[900])

    def popgate_with(self, backend_address: str, user="u@bad.example", **server):
        p = self.start_popgate([
            harness.Tenant("good", ["good.example"], [self.good.address], users={GOOD: PW}),
            harness.Tenant("bad", ["bad.example"], [backend_address], users={user: PW}),
        ], server={"backend_timeout": f"{int(BACKEND_TIMEOUT * 1000)}ms", **server})
        return p

    def assertGoodSessionWorks(self, p):
        with RawClient(p.port) as c:
            self.assertTrue(c.login(GOOD, PW).startswith(b"+OK"))
            self.assertEqual(c.cmd("STAT"), b"+OK 1 900\r\n")
            self.assertBytesEqual(c.retr(1), self.good.dump(GOOD, 1), "good tenant RETR")
            c.cmd_ok("QUIT")
        self.assertTrue(p.alive())

    def assertSysTemp(self, p, user="u@bad.example", min_s=0.0,
                      max_s=BACKEND_TIMEOUT + MARGIN) -> float:
        c = self.raw(p.port, timeout=30)
        c.cmd_ok(f"USER {user}")
        t0 = time.monotonic()
        r = c.cmd(f"PASS {PW}")
        elapsed = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        self.assertLessEqual(elapsed, max_s, f"-ERR [SYS/TEMP] took {elapsed:.2f}s")
        self.assertGreaterEqual(elapsed, min_s, f"gave up after {elapsed:.2f}s only")
        self.assertEqual(c.read_until_closed(3), b"", "session must end after [SYS/TEMP]")
        return elapsed

    def test_backend_down(self):
        p = self.popgate_with(f"{harness.LOOPBACK}:{harness.free_port()}")
        self.assertSysTemp(p, max_s=1.0)
        self.assertGoodSessionWorks(p)

    def test_backend_never_greets(self):
        fake = FakeBackend("silent")
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        self.assertSysTemp(p, min_s=BACKEND_TIMEOUT * 0.8)
        self.assertGoodSessionWorks(p)

    def test_backend_never_greets_others_served_meanwhile(self):
        fake = FakeBackend("silent")
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        stuck = [self.raw(p.port, timeout=30) for _ in range(5)]
        for c in stuck:
            c.cmd_ok("USER u@bad.example")
            c.send(f"PASS {PW}\r\n".encode())
        t0 = time.monotonic()
        self.assertGoodSessionWorks(p)
        self.assertLess(time.monotonic() - t0, 1.0, "waiting backends slowed other tenants")
        for c in stuck:
            r = c.readline()
            self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)

    def test_backend_closes_at_once(self):
        fake = FakeBackend("close")
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        self.assertSysTemp(p)
        self.assertGoodSessionWorks(p)

    def test_backend_greets_with_err(self):
        fake = FakeBackend("greet-err")
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        self.assertSysTemp(p)
        self.assertGoodSessionWorks(p)

    def test_backend_stalls_during_login(self):
        # Greets, then never answers USER/PASS: popgate must not wait forever
        # ("every wait on the network has a timeout").
        # The bound is ours, not a written contract: the login to the backend
        # should be limited like connect+greeting (backend_timeout), at most
        # twice that, not by a fixed longer constant.
        fake = FakeBackend("stall-login")
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        bound = 2 * BACKEND_TIMEOUT + MARGIN
        c = self.raw(p.port, timeout=bound + 1)
        c.cmd_ok("USER u@bad.example")
        t0 = time.monotonic()
        c.send(f"PASS {PW}\r\n".encode())
        try:
            r = c.readline()
        except harness.ConnectionClosed:
            r = b"<closed>"
        except socket.timeout:
            r = b"<no answer>"
        elapsed = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"),
                        f"backend stalled after its greeting: got {r!r} after {elapsed:.1f}s "
                        f"(backend_timeout {BACKEND_TIMEOUT}s)")
        self.assertLess(elapsed, bound, f"took {elapsed:.1f}s")
        self.assertGoodSessionWorks(p)

    def test_slow_backend_within_timeout_works(self):
        real = self.start_synth({"u@bad.example": PW}, sizes=[321])
        fake = FakeBackend("delay-proxy", delay=BACKEND_TIMEOUT * 0.5,
                           target=(harness.LOOPBACK, real.port))
        self.addCleanup(fake.cleanup)
        p = self.popgate_with(fake.address)
        with RawClient(p.port) as c:
            r = c.login("u@bad.example", PW)
            self.assertTrue(r.startswith(b"+OK"), r)
            self.assertEqual(c.cmd("STAT"), b"+OK 1 321\r\n")
            c.cmd_ok("QUIT")

    def test_backend_killed_mid_retr(self):
        victim = self.start_synth({"u@bad.example": PW}, sizes=["20m"])
        p = self.popgate_with(victim.address)
        c = self.raw(p.port, timeout=30)
        self.assertTrue(c.login("u@bad.example", PW).startswith(b"+OK"))
        c.send(b"RETR 1\r\n")
        got = 0
        while got < 1024 * 1024:
            b = c.sock.recv(65536)
            self.assertTrue(b, "closed too early")
            got += len(b)
        victim.kill()  # SIGKILL while the message is in flight
        t0 = time.monotonic()
        try:
            rest = c.read_until_closed(5)
        except ConnectionResetError:
            rest = b""
        self.assertLess(got + len(rest), 20 * 1024 * 1024,
                        "the whole message arrived although the backend died")
        self.assertFalse(rest.endswith(b"\r\n.\r\n"),
                         "a truncated message must not be terminated as if complete")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertGoodSessionWorks(p)
        # The dead backend's tenant now gets [SYS/TEMP], promptly.
        self.assertSysTemp(p, max_s=1.0)
        self.assertGoodSessionWorks(p)

    def test_backend_killed_while_idle(self):
        victim = self.start_synth({"u@bad.example": PW}, sizes=[400])
        p = self.popgate_with(victim.address)
        c = self.raw(p.port, timeout=30)
        self.assertTrue(c.login("u@bad.example", PW).startswith(b"+OK"))
        victim.kill()
        t0 = time.monotonic()
        try:
            c.read_until_closed(5)
        except ConnectionResetError:
            pass
        self.assertLess(time.monotonic() - t0, 5)
        self.assertGoodSessionWorks(p)


if __name__ == "__main__":
    unittest.main()
