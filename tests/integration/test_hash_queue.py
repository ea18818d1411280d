"""The hash pool's queue is bounded (issue 8, 1.10): with auth_queue_limit
jobs already waiting, a login is answered -ERR [SYS/TEMP] at once (result
"overloaded") instead of queueing without limit.  One hash thread, a queue
of one and an expensive ARGON2ID hash make the queue fill up with a dozen
simultaneous logins."""

import shutil
import subprocess
import threading
import time
import unittest

import harness

USER, PW = "alice@example.com", "Queue-Pw-1"
DOVEADM = shutil.which("doveadm")
N = 12

res = harness.ModuleResources()
synth = popgate = None


def setUpModule():
    global synth, popgate
    if DOVEADM is None:
        raise unittest.SkipTest("doveadm (Dovecot) not installed: no ARGON2ID hash")
    h = subprocess.run([DOVEADM, "pw", "-s", "ARGON2ID", "-p", PW], capture_output=True,
                       text=True, timeout=60, check=True).stdout.strip()
    try:
        synth = res.add(harness.Synth({USER: PW}, sizes=[100]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           passwd_lines=[f"{USER}:{h}"]),
        ], server={"auth_threads": 1, "auth_queue_limit": 1, "workers": 1,
                   "auth_failure_delay": "1s"}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class HashQueue(harness.IntegrationTestCase):

    def test_full_queue_answers_sys_temp_at_once(self):
        conns = [self.raw(popgate.port, timeout=30) for _ in range(N)]
        for c in conns:
            c.cmd_ok(f"USER {USER}")
        replies = [None] * N
        barrier = threading.Barrier(N)

        def one(i):
            barrier.wait(5)
            t0 = time.monotonic()
            r = conns[i].cmd("PASS wrong")
            replies[i] = (r, time.monotonic() - t0)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        busy = [(r, t) for r, t in replies if r.startswith(b"-ERR [SYS/TEMP]")]
        auth = [(r, t) for r, t in replies if r.startswith(b"-ERR [AUTH]")]
        self.assertEqual(len(busy) + len(auth), N, replies)
        self.assertGreaterEqual(len(busy), 1, f"no login refused as overloaded: {replies}")
        self.assertGreaterEqual(len(auth), 1, replies)
        for r, t in busy:
            self.assertLess(t, 0.5, f"overloaded answer took {t:.2f}s")
        recs = harness.wait_until(lambda: (lambda r: r if len(r) >= len(busy) else None)(
            popgate.session_records(event="session", result="overloaded")), 10)
        self.assertTrue(recs, popgate.stderr_text()[-2000:])
        self.assertEqual(recs[0]["auth_failures"], 0)
        self.assertEqual(recs[0]["ended_by"], "proxy")
        # Once the flood is over, logins work again.
        with harness.RawClient(popgate.port, timeout=10) as c:
            self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
