"""Slowloris (issue 8, 1.12): clients that never log in are bounded.

  * login_timeout: from connect to a successful login, however the client
    trickles its bytes (one byte per second restarts no timer that counts);
  * max_preauth_commands: CAPA (or USER) over and over is closed;
  * an endless line (over 255 octets and still no newline) is closed
    instead of being discarded for ever.
Other clients are served meanwhile."""

import socket
import threading
import time
import unittest

import harness

USER, PW = "alice@example.com", "Slow-Pw-1"
LOGIN_TIMEOUT = 5.0
IDLE = 3.0

res = harness.ModuleResources()
synth = popgate = None


def setUpModule():
    global synth, popgate
    try:
        synth = res.add(harness.Synth({USER: PW}, sizes=[500]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users={USER: PW}),
        ], server={"preauth_idle_timeout": f"{int(IDLE)}s",
                   "login_timeout": f"{int(LOGIN_TIMEOUT)}s",
                   "max_preauth_commands": 20}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def closed_after(sock: socket.socket, payload, interval: float, limit: float) -> float | None:
    """Sends `payload` (an iterator of byte strings) one piece per `interval`,
    reading whatever comes back, until popgate closes the connection:
    returns the seconds since start, or None if still open after `limit`."""
    t0 = time.monotonic()
    sock.settimeout(interval)
    for piece in payload:
        if time.monotonic() - t0 > limit:
            return None
        try:
            sock.sendall(piece)
        except OSError:
            return time.monotonic() - t0
        end = time.monotonic() + interval
        while time.monotonic() < end:
            try:
                b = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return time.monotonic() - t0
            if not b:
                return time.monotonic() - t0
    return None


def forever(b: bytes):
    while True:
        yield b


def trickle(data: bytes):
    while True:
        for i in range(len(data)):
            yield data[i:i + 1]


class Slowloris(harness.IntegrationTestCase):

    def run_all(self, cases: dict) -> dict:
        out = {}
        threads = []
        for name, (payload, interval, limit) in cases.items():
            s = socket.create_connection((harness.LOOPBACK, popgate.port), timeout=10)
            self.addCleanup(s.close)
            s.recv(100)  # greeting

            def run(name=name, s=s, payload=payload, interval=interval, limit=limit):
                out[name] = closed_after(s, payload, interval, limit)
            threads.append(threading.Thread(target=run, daemon=True))
        for t in threads:
            t.start()
        return threads, out

    def test_slow_clients_closed_by_the_deadline_others_served(self):
        limit = LOGIN_TIMEOUT + 6
        threads, out = self.run_all({
            # A USER line that never ends, one byte a second.
            "endless_user_trickle": (trickle(b"USER " + b"a" * 500), 1.0, limit),
            # CAPA, one byte a second, over and over: every byte comes
            # well within the idle timeout.
            "capa_trickle": (trickle(b"CAPA\r\n"), 1.0, limit),
            # CAPA as fast as it is answered.
            "capa_flood": (forever(b"CAPA\r\n"), 0.02, limit),
            "user_flood": (forever(b"USER someone@example.com\r\n"), 0.02, limit),
            # A line over 255 octets that never ends, fast.
            "endless_line": (forever(b"A" * 8192), 0.01, limit),
        })
        # Meanwhile a normal client is served, promptly.
        time.sleep(1.0)
        t0 = time.monotonic()
        with harness.RawClient(popgate.port) as c:
            self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
            self.assertEqual(c.cmd("STAT"), b"+OK 1 500\r\n")
            c.cmd_ok("QUIT")
        self.assertLess(time.monotonic() - t0, 1.0)
        for t in threads:
            t.join(limit + 5)
        self.assertEqual(set(out), {"endless_user_trickle", "capa_trickle", "capa_flood",
                                    "user_flood", "endless_line"})
        for name in ("endless_user_trickle", "capa_trickle"):
            self.assertIsNotNone(out[name], f"{name}: still connected after {limit}s")
            self.assertGreater(out[name], LOGIN_TIMEOUT - 1.5, f"{name}: {out[name]:.1f}s")
            self.assertLess(out[name], LOGIN_TIMEOUT + 2.5, f"{name}: {out[name]:.1f}s")
        for name in ("capa_flood", "user_flood", "endless_line"):
            self.assertIsNotNone(out[name], f"{name}: still connected after {limit}s")
            self.assertLess(out[name], 2.0, f"{name}: closed only after {out[name]:.1f}s")
        want = {"login_timeout", "too_many_commands", "line_too_long"}
        # Logged after the lingering close (a bounded drain).
        harness.wait_until(lambda: want <= {r["result"] for r in popgate.session_records(
            event="session")}, 5)
        results = {r["result"] for r in popgate.session_records(event="session")}
        self.assertLessEqual(want, results)


if __name__ == "__main__":
    unittest.main()
