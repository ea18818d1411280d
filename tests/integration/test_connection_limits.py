"""Connection and session limits (issue 10, docs/limits.md): open
connections per client address, of those the ones not logged in yet,
new connections per address per second, open connections in total, a
tenant's max_sessions and max_sessions_per_user. Each refusal is one
-ERR line with its RFC 2449/3206 code ([SYS/TEMP], [IN-USE] for a user's
sessions), then the connection closes (except [IN-USE], which the client
may retry in the session); the session log's result is "limited" (or
tenant_full, user_sessions_full) with the setting's name in "detail".
Other addresses, users and connections are served meanwhile. Sources in
exempt_networks (loopback by default) are not limited at all.

Client addresses: each test binds its clients to its own 127.0.0.x (all of
127/8 is loopback), so tests sharing a popgate do not count each other."""

import selectors
import socket
import time
import unittest

import harness
from harness import RawClient

PW = "Limits-Pw-1"
SYNTH_USERS = {f"u{i}@example.com": PW for i in range(1, 7)}
FAKE_USERS = {u: PW for u in ["multi@fake.example", "other@fake.example",
                              "third@fake.example"]}
SMALL_USERS = {f"s{i}@small.example": PW for i in range(1, 4)}

TOO_MANY_FROM_ADDRESS = (b"-ERR [SYS/TEMP] Too many connections from your address, "
                         b"close some and try again later.\r\n")
TOO_MANY_PRELOGIN = (b"-ERR [SYS/TEMP] Too many connections from your address waiting "
                     b"to log in, log in or close them and try again.\r\n")
TOO_FAST = (b"-ERR [SYS/TEMP] Connecting too fast from your address, wait a few "
            b"seconds and try again.\r\n")
TOO_MANY_TOTAL = b"-ERR [SYS/TEMP] Too many connections to this server, try again later.\r\n"
TENANT_FULL = b"-ERR [SYS/TEMP] Too many sessions for this mail domain, try again later.\r\n"
USER_FULL = b"-ERR [IN-USE] Too many sessions open for this user, close one and try again.\r\n"

# Only one limit at a time per popgate where they would interfere (a
# closed connection leaves popgate's count a moment after the client's
# close()).
MAIN_LIMITS = """[limits]
exempt_networks = []
refusal_delay = "0s"
max_connections = 0
max_connections_per_address = 3
max_prelogin_per_address = 2
max_new_connections_per_address = 0
max_sessions_per_user = 2
"""
RATE = 3
RATE_LIMITS = f"""[limits]
exempt_networks = []
refusal_delay = "0s"
max_connections = 0
max_connections_per_address = 0
max_prelogin_per_address = 0
max_new_connections_per_address = {RATE}
"""
TOTAL_LIMITS = """[limits]
exempt_networks = []
refusal_delay = "0s"
max_connections = 3
max_connections_per_address = 0
max_prelogin_per_address = 0
max_new_connections_per_address = 0
"""
# Refusals answered after HOLD_S, at most HELD at a time.
HOLD_S = 0.4
HELD = 2
HOLD_LIMITS = f"""[limits]
exempt_networks = []
max_connections = 0
max_connections_per_address = 1
max_prelogin_per_address = 0
max_new_connections_per_address = 0
refusal_delay = "{int(HOLD_S * 1000)}ms"
max_refusals_held = {HELD}
"""
# Tiny limits, but exempt_networks left at its default (loopback).
EXEMPT_LIMITS = """[limits]
refusal_delay = "0s"
max_connections = 1
max_connections_per_address = 1
max_prelogin_per_address = 1
max_new_connections_per_address = 1
max_sessions_per_user = 1
"""

res = harness.ModuleResources()
synth = fake = refusing = main = rate = total = exempt = hold = None


def setUpModule():
    global synth, fake, refusing, main, rate, total, exempt, hold
    with harness.closing_on_error(res):
        synth = res.add(harness.Synth(SYNTH_USERS, sizes=[100]))
        # Logs anyone in, any number of sessions of one user at once (the
        # synth locks a maildrop: one session per user).
        fake = res.add(harness.FakeBackend.ending())
        # Says no to every password (auth = "backend": after AdmitSession).
        refusing = res.add(harness.FakeBackend.refusing(b"-ERR [AUTH] Authentication failed.\r\n"))
        tenants = [
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users=SYNTH_USERS),
            harness.Tenant("fake", ["fake.example"], [fake.address], users=FAKE_USERS),
            harness.Tenant("small", ["small.example"], [fake.address], users=SMALL_USERS,
                           settings={"max_sessions": 2}),
            harness.Tenant("refuse", ["refuse.example"], [refusing.address], auth="backend"),
        ]
        main = res.add(harness.Popgate(tenants, extra_toml=MAIN_LIMITS))
        rate = res.add(harness.Popgate(tenants[:1], extra_toml=RATE_LIMITS))
        total = res.add(harness.Popgate(tenants[:1], extra_toml=TOTAL_LIMITS))
        exempt = res.add(harness.Popgate(tenants, extra_toml=EXEMPT_LIMITS))
        hold = res.add(harness.Popgate(tenants[:1], extra_toml=HOLD_LIMITS))


def tearDownModule():
    res.close()


class BoundClient(RawClient):
    """A RawClient whose socket is bound to `source` (a loopback address);
    `greeting` is the first line popgate sent (its refusal, if any)."""

    def __init__(self, port: int, source: str, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect((harness.LOOPBACK, port))
        self.buf = bytearray()
        self.greeting = self.readline()


class ConnectionLimits(harness.IntegrationTestCase):

    def client(self, popgate, source: str) -> BoundClient:
        c = BoundClient(popgate.port, source)
        self.addCleanup(c.close)
        return c

    def admitted(self, popgate, source: str) -> BoundClient:
        c = self.client(popgate, source)
        self.assertTrue(c.greeting.startswith(b"+OK"), (source, c.greeting))
        return c

    def logged_in(self, popgate, source: str, user: str) -> BoundClient:
        c = self.admitted(popgate, source)
        c.cmd_ok(f"USER {user}")
        r = c.cmd(f"PASS {PW}")
        self.assertTrue(r.startswith(b"+OK"), (source, user, r))
        return c

    def assert_refused(self, popgate, source: str, reply: bytes, detail: str):
        c = self.client(popgate, source)
        self.assertEqual(c.greeting, reply)
        self.assertTrue(c.is_closed(5), "a refused connection stays open")
        rec = popgate.wait_for_record(event="session", result="limited", detail=detail,
                                      client=f"{source}:{c.sock.getsockname()[1]}")
        self.assertIsNotNone(rec, f"no 'limited' session line for {source} ({detail})")
        self.assertEqual(rec["ended_by"], "proxy", rec)

    def wait_admitted(self, popgate, source: str) -> BoundClient:
        """Connects until popgate admits (it counts a closed connection out
        a moment after the client's close())."""
        deadline = time.monotonic() + harness.scaled(5)
        while True:
            c = self.client(popgate, source)
            if c.greeting.startswith(b"+OK") or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.05)
        self.assertTrue(c.greeting.startswith(b"+OK"), (source, c.greeting))
        return c

    def test_per_address(self):
        src = "127.0.0.10"
        held = [self.logged_in(main, src, f"u{i}@example.com") for i in (1, 2, 3)]
        self.assert_refused(main, src, TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
        # The others are still served, and so is another address.
        for c in held:
            self.assertTrue(c.cmd("STAT").startswith(b"+OK 1 "))
        self.admitted(main, "127.0.0.11")
        # One closed: room for one more.
        held[0].cmd_ok("QUIT")
        held[0].close()
        self.wait_admitted(main, src)

    def test_refusals_wait_refusal_delay_up_to_max_refusals_held(self):
        src = "127.0.0.15"
        first = self.admitted(hold, src)
        # Three refused at once: HELD of them answered after refusal_delay
        # (an attacker's connections wait), the one beyond the bound at once
        # (held refusals keep descriptors: there is a cap).
        socks = []
        for _ in range(HELD + 1):
            sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(sk.close)
            sk.settimeout(10)
            sk.bind((src, 0))
            sk.connect((harness.LOOPBACK, hold.port))
            socks.append(sk)
        # When each answer arrives (all read at once: reading them in turn
        # would date an early answer by the later ones before it).
        t0 = time.monotonic()
        took = []
        got = {sk: b"" for sk in socks}
        with selectors.DefaultSelector() as sel:
            for sk in socks:
                sel.register(sk, selectors.EVENT_READ)
            while sel.get_map() and time.monotonic() - t0 < 10:
                for key, _ in sel.select(timeout=1):
                    sk = key.fileobj
                    chunk = sk.recv(4096)
                    got[sk] += chunk
                    if not chunk or got[sk].endswith(b"\n"):
                        took.append(time.monotonic() - t0)
                        sel.unregister(sk)
        for sk in socks:
            self.assertEqual(got[sk], TOO_MANY_FROM_ADDRESS)
        took.sort()
        self.assertLess(took[0], HOLD_S / 2, took)
        for t in took[1:]:
            self.assertGreaterEqual(t, HOLD_S - 0.05, took)
        # The admitted connection was served meanwhile.
        first.cmd_ok("USER u1@example.com")
        self.assertTrue(first.cmd(f"PASS {PW}").startswith(b"+OK"))
        rec = hold.wait_for_record(event="session", result="limited",
                                   detail="max_connections_per_address")
        self.assertIsNotNone(rec)

    def test_prelogin_per_address(self):
        src = "127.0.0.20"
        c1 = self.admitted(main, src)
        self.admitted(main, src)
        self.assert_refused(main, src, TOO_MANY_PRELOGIN, "max_prelogin_per_address")
        # A logged-in connection no longer counts against the pre-login limit.
        c1.cmd_ok("USER u4@example.com")
        self.assertTrue(c1.cmd(f"PASS {PW}").startswith(b"+OK"))
        self.admitted(main, src)
        # Three open (one logged in): the per-address limit now.
        self.assert_refused(main, src, TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
        self.assertTrue(c1.cmd("STAT").startswith(b"+OK 1 "))

    def test_failed_backend_login_counts_as_prelogin_again(self):
        src = "127.0.0.25"
        c1 = self.admitted(main, src)
        # The backend says no after popgate admitted the session: the
        # connection is back to pre-login (and holds no session slot).
        c1.cmd_ok("USER x@refuse.example")
        self.assertTrue(c1.cmd("PASS wrong").startswith(b"-ERR [AUTH]"))
        self.admitted(main, src)
        self.assert_refused(main, src, TOO_MANY_PRELOGIN, "max_prelogin_per_address")
        # A local wrong password likewise (it never got that far).
        c1.cmd_ok("USER u5@example.com")
        self.assertTrue(c1.cmd("PASS wrong").startswith(b"-ERR [AUTH]"))
        self.assert_refused(main, src, TOO_MANY_PRELOGIN, "max_prelogin_per_address")

    def test_new_connections_per_second(self):
        src = "127.0.0.50"
        lines = []
        t0 = time.monotonic()
        for _ in range(4 * RATE):  # bounded: a dozen connects
            c = BoundClient(rate.port, src)
            lines.append(c.greeting)
            c.close()
        spent = time.monotonic() - t0
        admitted = sum(1 for l in lines if l.startswith(b"+OK"))
        refused = [l for l in lines if not l.startswith(b"+OK")]
        self.assertTrue(refused, f"{len(lines)} connects in {spent:.2f}s, none refused")
        self.assertEqual(set(refused), {TOO_FAST}, refused)
        # Whole-second windows: at most RATE per second the burst touched.
        self.assertLessEqual(admitted, RATE * (int(spent) + 2), lines)
        rec = rate.wait_for_record(event="session", result="limited",
                                   detail="max_new_connections_per_address")
        self.assertIsNotNone(rec)
        self.assertTrue(rec["client"].startswith(src + ":"), rec)
        # Another address is not slowed down by the flood.
        self.admitted(rate, "127.0.0.51")
        # The next second admits again.
        time.sleep(1.05)
        self.admitted(rate, src)

    def test_total(self):
        held = [self.admitted(total, f"127.0.0.{60 + i}") for i in range(3)]
        self.assert_refused(total, "127.0.0.63", TOO_MANY_TOTAL, "max_connections")
        # Those admitted are served.
        held[1].cmd_ok("USER u6@example.com")
        self.assertTrue(held[1].cmd(f"PASS {PW}").startswith(b"+OK"))
        held[0].close()
        self.wait_admitted(total, "127.0.0.63")

    def test_tenant_max_sessions(self):
        s1 = self.logged_in(main, "127.0.0.30", "s1@small.example")
        self.logged_in(main, "127.0.0.31", "s2@small.example")
        c = self.admitted(main, "127.0.0.32")
        c.cmd_ok("USER s3@small.example")
        self.assertEqual(c.cmd(f"PASS {PW}"), TENANT_FULL)
        self.assertTrue(c.is_closed(5))
        rec = main.wait_for_record(event="session", result="tenant_full",
                                   user="s3@small.example")
        self.assertIsNotNone(rec)
        self.assertEqual(rec["detail"], "max_sessions", rec)
        # Other tenants are not affected.
        self.logged_in(main, "127.0.0.32", "third@fake.example")
        # A session of the tenant ends: room again.
        s1.cmd_ok("QUIT")
        s1.close()
        deadline = time.monotonic() + harness.scaled(5)
        while True:
            c = self.admitted(main, "127.0.0.33")
            c.cmd_ok("USER s3@small.example")
            r = c.cmd(f"PASS {PW}")
            if r.startswith(b"+OK") or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.05)
        self.assertTrue(r.startswith(b"+OK"), r)

    def test_sessions_per_user(self):
        u = "multi@fake.example"
        first = self.logged_in(main, "127.0.0.40", u)
        self.logged_in(main, "127.0.0.41", u)
        c = self.admitted(main, "127.0.0.42")
        c.cmd_ok(f"USER {u}")
        self.assertEqual(c.cmd(f"PASS {PW}"), USER_FULL)
        # [IN-USE] may be retried in the session: another user logs in on it.
        c.cmd_ok("USER other@fake.example")
        self.assertTrue(c.cmd(f"PASS {PW}").startswith(b"+OK"))
        # A client that leaves after [IN-USE]: that is its result.
        d = self.admitted(main, "127.0.0.43")
        d.cmd_ok(f"USER {u}")
        self.assertEqual(d.cmd(f"PASS {PW}"), USER_FULL)
        d.close()
        rec = main.wait_for_record(event="session", result="user_sessions_full", user=u)
        self.assertIsNotNone(rec, "no user_sessions_full session line")
        self.assertEqual(rec["detail"], "max_sessions_per_user", rec)
        # One of the user's sessions ends: the user may log in again.
        first.cmd_ok("QUIT")
        first.close()
        deadline = time.monotonic() + harness.scaled(5)
        e = self.admitted(main, "127.0.0.44")
        while True:
            e.cmd_ok(f"USER {u}")
            r = e.cmd(f"PASS {PW}")
            if r.startswith(b"+OK") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(r.startswith(b"+OK"), r)

    def test_exempt_networks_default_is_not_limited(self):
        # Every limit is 1, but loopback is exempt by default.
        held = [self.admitted(exempt, "127.0.0.1") for _ in range(4)]
        held += [self.admitted(exempt, "127.0.0.2") for _ in range(4)]
        for i, c in enumerate(held[:3]):
            c.cmd_ok("USER multi@fake.example")
            self.assertTrue(c.cmd(f"PASS {PW}").startswith(b"+OK"), i)
        self.assertEqual(exempt.session_records(result="limited"), [])


if __name__ == "__main__":
    unittest.main()
