"""200 concurrent sessions through popgate all succeed: 200 distinct users on
pop3-synth, all logged in at the same time (a barrier holds them), each
retrieving and checking a message; and 40 concurrent sessions to a real
Dovecot.  Bounded in time."""

import threading
import time
import unittest

import harness
from harness import RawClient

N = 200
PW = "Conc-Pw-200"
USERS = [f"user{i:03d}@example.com" for i in range(N)]
DOVE_N = 40
DOVE_USERS = [f"d{i:02d}@dove.example" for i in range(DOVE_N)]

res = harness.ModuleResources()
synth = dovecot = popgate = None


def setUpModule():
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({u: PW for u in USERS}, sizes=[3000, 40000]))
        dovecot = harness.Dovecot()
        for i, u in enumerate(DOVE_USERS):
            dovecot.add_user(u, PW, [harness.make_message(7000 + i, 2000 + i)])
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={u: PW for u in USERS}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={u: PW for u in DOVE_USERS}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class Concurrency(harness.IntegrationTestCase):

    def run_concurrent(self, users, expect, n_msgs, timeout=90):
        barrier = threading.Barrier(len(users), timeout=60)
        errors: list[str] = []
        done = []
        lock = threading.Lock()

        def one(user):
            c = None
            try:
                c = RawClient(popgate.port, timeout=60)
                r = c.login(user, PW)
                if not r.startswith(b"+OK"):
                    raise AssertionError(f"login: {r!r}")
                barrier.wait()  # every session is open and logged in now
                st = c.cmd("STAT")
                if not st.startswith(f"+OK {n_msgs} ".encode()):
                    raise AssertionError(f"STAT: {st!r}")
                got = c.retr(n_msgs)
                if got != expect(user):
                    raise AssertionError(f"RETR {n_msgs}: {len(got)} bytes differ from source")
                r = c.cmd("QUIT")
                if not r.startswith(b"+OK"):
                    raise AssertionError(f"QUIT: {r!r}")
                with lock:
                    done.append(user)
            except Exception as e:  # noqa: BLE001 - collected and reported
                barrier.abort()
                with lock:
                    errors.append(f"{user}: {type(e).__name__}: {e}")
            finally:
                if c:
                    c.close()

        # Precompute expectations outside the timed part.
        for u in users:
            expect(u)
        threads = [threading.Thread(target=one, args=(u,), daemon=True) for u in users]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.1, timeout - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t0
        self.assertFalse(any(t.is_alive() for t in threads), f"sessions hung after {timeout}s")
        self.assertEqual(errors[:10], [], f"{len(errors)} of {len(users)} sessions failed")
        self.assertEqual(len(done), len(users))
        return elapsed

    def test_200_concurrent_sessions_synth(self):
        cache = {}

        def expect(u):
            if u not in cache:
                cache[u] = synth.dump(u, 2)
            return cache[u]
        elapsed = self.run_concurrent(USERS, expect, 2)
        self.assertLess(elapsed, 60)
        # popgate is still fine afterwards.
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(USERS[0], PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")

    def test_40_concurrent_sessions_dovecot(self):
        msgs = {u: dovecot.seeded[u][0].data for u in DOVE_USERS}
        self.run_concurrent(DOVE_USERS, msgs.__getitem__, 1)


if __name__ == "__main__":
    unittest.main()
