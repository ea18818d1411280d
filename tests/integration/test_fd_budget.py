"""The descriptor budget (docs/limits.md, "The descriptor limit"): popgate
holds at most as many sessions as its RLIMIT_NOFILE allows (two sockets
each after a reserve) and stops accepting there, so that the next
connection waits in the listen backlog until a session ends instead of
being accepted into a backend connect that fails with EMFILE after the
client sent its password.

popgate runs under `prlimit --nofile=200:200` (it execs: the PID stays
popgate's): the reserve is at most half of a limit that small, so 200
descriptors hold 50 sessions (the start-up `fd_limit` warning says how
many; the tests take the number from there). The clients are the test's
own (not under that limit); the backend is pop3-synth, and every message
retrieved is compared byte-exactly."""

import os
import selectors
import signal
import socket
import threading
import time
import unittest
import urllib.request

import harness
from harness import RawClient

PW = "Fd-Budget-Pw-1"
NOFILE = 200
EXPECTED_FIT = 50  # (200 - 200 / 2) / 2
# More clients than fit: without the bound, 105 logged-in sessions would
# need 210 sockets, and the last logins would fail with EMFILE.
EXTRA = 55
WAITING = 10  # connections left waiting at the bound in the first test
USERS = [f"fd{i:03d}@example.com" for i in range(EXPECTED_FIT + EXTRA)]

res = harness.ModuleResources()
synth = None


def setUpModule():
    global synth
    try:
        synth = res.add(harness.Synth({u: PW for u in USERS}, sizes=[3000, 70000]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def limited_popgate(workers: int, admin_port: int | None = None):
    extra = f'[admin]\nlisten = "127.0.0.1:{admin_port}"\n' if admin_port else ""
    return harness.Popgate(
        [harness.Tenant("example-com", ["example.com"], [synth.address],
                        users={u: PW for u in USERS})],
        server={"workers": workers}, extra_toml=extra,
        prefix=["prlimit", f"--nofile={NOFILE}:{NOFILE}"])


def sessions_that_fit(pg) -> int:
    """The bound, from the start-up fd_limit warning."""
    start = [r for r in pg.log_records() if r.get("event") == "fd_limit"]
    assert len(start) == 1, f"one start-up fd_limit warning, got {start}"
    return start[0]["sessions_that_fit"]


def silent_for(socks, seconds: float) -> list:
    """The sockets of `socks` that received anything within `seconds`."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    spoke = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(left):
            spoke.append(key.fileobj)
            sel.unregister(key.fileobj)
    sel.close()
    return spoke


def metric(admin_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics",
                                timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text[:2000]}")


class FdBudgetTest(harness.IntegrationTestCase):

    def check_session(self, c: RawClient, user: str):
        self.assertTrue(c.login(user, PW).startswith(b"+OK"), user)
        self.assertEqual(c.retr(2), synth.dump(user, 2), user)

    def assert_no_emfile(self, pg):
        bad = [r for r in pg.session_records()
               if r.get("result") in ("backend_unavailable", "proxy_error")]
        self.assertEqual(bad, [], "sessions failed for want of descriptors")
        self.assertNotIn("Too many open files", pg.stderr_text())

    def test_next_connection_waits_at_the_bound_and_is_served_after(self):
        admin_port = harness.free_port()
        with limited_popgate(1, admin_port) as pg:
            fit = sessions_that_fit(pg)
            self.assertEqual(fit, EXPECTED_FIT)
            self.assertEqual(metric(admin_port, "popgate_fd_session_limit"), fit)
            held = []
            try:
                # `fit` logged-in sessions, each with its backend socket.
                for u in USERS[:fit]:
                    c = RawClient(pg.port, timeout=20)
                    held.append(c)
                    self.assertTrue(c.greeting.startswith(b"+OK"), u)
                    self.assertTrue(c.login(u, PW).startswith(b"+OK"), u)
                # The kernel completes these connections (listen backlog),
                # popgate does not take them: no greeting.
                waiting = [RawClient(pg.port, timeout=20, read_greeting=False)
                           for _ in range(WAITING)]
                held += waiting
                spoke = silent_for([w.sock for w in waiting], harness.scaled(1.0))
                self.assertEqual(spoke, [], "accepted beyond the descriptor budget")
                reached = pg.wait_for_record(event="fd_limit_reached")
                self.assertIsNotNone(reached, "no fd_limit_reached warning")
                self.assertEqual(reached["level"], "warning")
                self.assertEqual(reached["sessions_that_fit"], fit)
                self.assertEqual(reached["nofile"], NOFILE)
                self.assertGreaterEqual(metric(admin_port, "popgate_accept_pauses_total"), 1)
                # The sessions held still work.
                self.assertEqual(held[0].retr(1), synth.dump(USERS[0], 1))
                # Sessions end: the waiting connections are served, in full.
                for c in held[:WAITING + 2]:
                    c.cmd_ok("QUIT")
                    c.close()
                for w, u in zip(waiting, USERS[fit:]):
                    w.settimeout(harness.scaled(10))
                    w.greeting = w.readline()
                    self.assertTrue(w.greeting.startswith(b"+OK"), u)
                    self.check_session(w, u)
                for c in held[WAITING + 2:fit]:
                    c.cmd_ok("QUIT")
            finally:
                for c in held:
                    c.close()
            self.assert_no_emfile(pg)
            self.assertEqual(pg.alive(), True)

    def test_a_burst_past_the_bound_from_many_clients_all_succeeds(self):
        # Two workers share the budget; every client logs in, retrieves and
        # holds its session a moment, more of them at once than fit. They
        # all connect while popgate is stopped (SIGSTOP), so the whole
        # burst is in the backlog when it goes on: one multishot accept
        # would take it all at once, past the bound.
        n = len(USERS)
        errors: list[str] = []
        lock = threading.Lock()
        connected = threading.Barrier(n + 1, timeout=60)

        def one(user):
            c = None
            try:
                c = RawClient(pg.port, timeout=30, read_greeting=False)
                connected.wait()
                connected.wait()  # popgate runs again
                c.greeting = c.readline()
                if not c.greeting.startswith(b"+OK"):
                    raise AssertionError(f"greeting {c.greeting!r}")
                r = c.login(user, PW)
                if not r.startswith(b"+OK"):
                    raise AssertionError(f"login: {r!r}")
                if c.retr(2) != synth.dump(user, 2):
                    raise AssertionError("RETR 2 differs")
                time.sleep(0.2)
                c.cmd_ok("QUIT")
            except Exception as e:  # noqa: BLE001 - collected and reported
                with lock:
                    errors.append(f"{user}: {e!r}")
            finally:
                if c is not None:
                    c.close()

        for u in USERS:
            synth.dump(u, 2)  # cached before the clock starts
        with limited_popgate(2) as pg:
            self.assertEqual(sessions_that_fit(pg), EXPECTED_FIT)
            self.assertGreater(n, EXPECTED_FIT)
            threads = [threading.Thread(target=one, args=(u,)) for u in USERS[:n]]
            os.kill(pg.proc.pid, signal.SIGSTOP)
            try:
                for t in threads:
                    t.start()
                connected.wait()
            finally:
                os.kill(pg.proc.pid, signal.SIGCONT)
            connected.wait()
            for t in threads:
                t.join(harness.scaled(90))
            self.assertEqual(errors, [], [
                (r.get("user"), r.get("result"), r.get("detail"))
                for r in pg.session_records(event="session")
                if r.get("result") != "quit"])
            self.assertFalse(any(t.is_alive() for t in threads))
            self.assert_no_emfile(pg)
            ok = pg.wait_for_record(timeout=harness.scaled(5), result="quit")
            self.assertIsNotNone(ok)


if __name__ == "__main__":
    unittest.main()
