"""Loops at run time (issue 8, 1.4): a backend address that leads back to
popgate, directly or through another popgate instance, is caught on the
first login (-ERR [SYS/TEMP], result "loop") instead of nesting sessions
until a timeout.  The addresses here go through small TCP relays, so that
the configuration (which refuses a backend that is one of our own
listeners) cannot see the loop: only the run-time check can.  A chain of
two popgates in front of a real backend still works."""

import time
import unittest

import harness

USER, PW = "loop@example.com", "Loop-Pw-1"

res = harness.ModuleResources()
synth = None


def setUpModule():
    global synth
    with harness.closing_on_error(res):
        synth = res.add(harness.Synth({USER: PW}, sizes=[300]))


def tearDownModule():
    res.close()


class Loop(harness.IntegrationTestCase):
    # Each popgate names a per-process token in its CAPA answer's
    # IMPLEMENTATION line, and sends CAPA to its backends; see LoopGuard in
    # session/backend_login.h for the design.

    def relay(self) -> harness.FakeBackend:
        """A TCP relay whose target is set once the target has started."""
        r = harness.FakeBackend("proxy")
        self.addCleanup(r.cleanup)
        return r

    def popgate(self, backend: str) -> harness.Popgate:
        return self.start_popgate([
            harness.Tenant("example-com", ["example.com"], [backend], users={USER: PW}),
        ], server={"backend_timeout": "5s"})

    def assertLoopRefused(self, entry: harness.Popgate):
        c = self.raw(entry.port, timeout=20)
        t0 = time.monotonic()
        r = c.login(USER, PW)
        took = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        self.assertLess(took, 3.0, f"loop refused only after {took:.1f}s")
        c.close()
        rec = entry.wait_for_record(user=USER, result="loop")
        self.assertIsNotNone(rec, entry.stderr_text()[-3000:])
        self.assertEqual(rec["ended_by"], "proxy")
        return rec

    def test_backend_leads_back_to_the_same_instance(self):
        relay = self.relay()
        a = self.popgate(relay.address)
        relay.target = (harness.LOOPBACK, a.port)
        self.assertLoopRefused(a)
        # One nested session at most: A's session for the client and the
        # one A's own backend login opened.
        time.sleep(0.3)
        self.assertLessEqual(relay.accepted, 1)
        self.assertLessEqual(len(a.session_records(event="session", user=USER)), 2)

    def test_loop_through_a_second_instance(self):
        to_a, to_b = self.relay(), self.relay()
        a = self.popgate(to_b.address)
        b = self.popgate(to_a.address)
        to_a.target, to_b.target = (harness.LOOPBACK, a.port), (harness.LOOPBACK, b.port)
        self.assertLoopRefused(a)
        # B saw A's token come back: B's session says loop too.
        rec_b = b.wait_for_record(user=USER, result="loop")
        self.assertIsNotNone(rec_b, b.stderr_text()[-3000:])
        time.sleep(0.3)
        self.assertLessEqual(to_a.accepted + to_b.accepted, 2, "sessions nested")

    def test_chain_of_two_instances_works(self):
        inner = self.popgate(synth.address)
        outer = self.popgate(inner.address)
        with harness.RawClient(outer.port) as c:
            r = c.login(USER, PW)
            self.assertTrue(r.startswith(b"+OK"), r)
            r = c.cmd("STAT")
            self.assertEqual(r, b"+OK 1 300\r\n")
            c.cmd_ok("QUIT")

    def token_of(self, port: int) -> bytes:
        with harness.RawClient(port) as c:
            self.assertEqual(c.greeting, b"+OK popgate ready.\r\n")
            r, body = c.multi("CAPA")
            impl = [l for l in body.split(b"\r\n") if l.startswith(b"IMPLEMENTATION")]
            self.assertEqual(len(impl), 1, body)
            self.assertTrue(impl[0].startswith(b"IMPLEMENTATION popgate popgate-id="), impl)
            self.assertEqual(c.cmd(f"USER {USER}"), b"+OK Send PASS\r\n")
            c.cmd("QUIT")
            return impl[0].split(b"popgate-id=")[1]

    def test_token_same_for_all_workers_and_not_in_greeting(self):
        p = self.popgate(synth.address)
        tokens = {self.token_of(p.port) for _ in range(8)}  # both workers
        self.assertEqual(len(tokens), 1, tokens)
        self.assertEqual(len(next(iter(tokens))), 16)
        other = self.popgate(synth.address)
        self.assertNotIn(self.token_of(other.port), tokens, "same token in two processes")

if __name__ == "__main__":
    unittest.main()
