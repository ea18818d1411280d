"""The failed-login delay (auth_failure_delay): a failed login is answered no
sooner than the configured delay, while other sessions are served meanwhile
without delay, and several delayed failures run in parallel (the delay holds
no thread: one worker, one auth thread).  Successful logins are not delayed."""

import threading
import time
import unittest

import harness
from harness import RawClient

DELAY = 1.0
PW = "Delay-Pw-1"
USERS = {"alice@example.com": PW, "bob@example.com": PW}
BE_USER, BE_PW = "be@backend.example", "Delay-Be-Pw"

res = harness.ModuleResources()
synth = be_synth = popgate = None


def setUpModule():
    global synth, be_synth, popgate
    try:
        synth = res.add(harness.Synth(USERS, sizes=[5000]))
        be_synth = res.add(harness.Synth({BE_USER: BE_PW}, sizes=[300]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users=USERS),
            harness.Tenant("be", ["backend.example"], [be_synth.address], auth="backend"),
        ], server={"auth_failure_delay": f"{int(DELAY * 1000)}ms", "workers": 1,
                   "auth_threads": 1, "max_auth_failures": 10}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class AuthDelay(harness.IntegrationTestCase):

    def timed_failure(self, user, pw) -> float:
        c = self.raw(popgate.port, timeout=10)
        c.cmd_ok(f"USER {user}")
        t0 = time.monotonic()
        r = c.cmd(f"PASS {pw}")
        elapsed = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        return elapsed

    def test_wrong_password_delayed(self):
        e = self.timed_failure("alice@example.com", "wrong")
        self.assertGreaterEqual(e, DELAY - 0.05)
        self.assertLess(e, DELAY + 1.5)

    def test_unknown_user_delayed_too(self):
        # Same timing as a wrong password: no user enumeration by timing.
        e = self.timed_failure("nobody@example.com", "wrong")
        self.assertGreaterEqual(e, DELAY - 0.05)

    def test_unknown_domain_delayed_too(self):
        c = self.raw(popgate.port, timeout=10)
        t0 = time.monotonic()
        r = c.login("x@unknown.example", "wrong")
        e = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        self.assertGreaterEqual(e, DELAY - 0.05)

    def test_backend_auth_failure_delayed(self):
        e = self.timed_failure(BE_USER, "wrong")
        self.assertGreaterEqual(e, DELAY - 0.05)

    def test_success_not_delayed(self):
        c = self.raw(popgate.port)
        t0 = time.monotonic()
        r = c.login("bob@example.com", PW)
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertLess(time.monotonic() - t0, 0.3)
        c.cmd_ok("QUIT")

    def test_others_served_during_delay(self):
        slow = self.raw(popgate.port, timeout=10)
        slow.cmd_ok("USER alice@example.com")
        t0 = time.monotonic()
        slow.send(b"PASS wrong\r\n")
        time.sleep(0.1)  # the failure is now being delayed
        t1 = time.monotonic()
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login("bob@example.com", PW).startswith(b"+OK"))
            self.assertBytesEqual(c.retr(1), synth.dump("bob@example.com", 1), "RETR")
            c.cmd_ok("QUIT")
        other = time.monotonic() - t1
        r = slow.readline()
        failed_after = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        self.assertLess(other, 0.4, f"other session took {other:.2f}s during a delayed failure")
        self.assertGreaterEqual(failed_after, DELAY - 0.05)
        # The failed connection is still usable after its delay.
        self.assertTrue(slow.login("alice@example.com", PW).startswith(b"+OK"))
        slow.cmd_ok("QUIT")

    def test_parallel_failures_do_not_queue(self):
        n = 8
        conns = [self.raw(popgate.port, timeout=20) for _ in range(n)]
        for c in conns:
            c.cmd_ok("USER alice@example.com")
        t0 = time.monotonic()
        for c in conns:
            c.send(b"PASS wrong\r\n")
        for c in conns:
            r = c.readline()
            self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        total = time.monotonic() - t0
        self.assertGreaterEqual(total, DELAY - 0.05)
        self.assertLess(total, DELAY + 1.0,
                        f"{n} delayed failures took {total:.2f}s: the delay is serialised")


if __name__ == "__main__":
    unittest.main()
