"""Per-pool capabilities and per-backend admin state (issue 9), with
pop3-synth behind counting relays:

* `capabilities`: CAPA before login on a listener whose default tenant is
  the tenant lists exactly the configured capabilities, in order, besides
  the USER / SASL / STLS / IMPLEMENTATION lines popgate decides itself; an
  empty list leaves only those; a listener without a default tenant offers
  the defaults.
* A tenant whose only backend has state = "down": -ERR [SYS/TEMP] at once
  and the backend sees no connection; state = "drain": the same for new
  sessions, and a session running when a reload drains its backend goes on
  while new ones are refused.
* failover = "next" with one backend down and one up: every user logs in,
  on the up one; failover = "none": the users whose first choice is the
  down backend get -ERR [SYS/TEMP], the others log in; the down backend
  sees no connection either way.
"""

import time
import unittest

import harness
import tlsharness as th
from harness import FakeBackend, RawClient

PW = "State-pw-1"
CAPS = ["TOP", "UIDL", "EXPIRE NEVER", "X-POPGATE-TEST 1 2", "RESP-CODES"]
DEFAULT_CAPS = ["PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "TOP", "UIDL"]
NEXT_USERS = [f"n{i}@next.example" for i in range(20)]
NONE_USERS = [f"s{i}@none.example" for i in range(20)]
CAPS_USER, DOWN_USER, DRAIN_USER = "c@caps.example", "d@down.example", "r@drain.example"
ALL_USERS = NEXT_USERS + NONE_USERS + [CAPS_USER, DOWN_USER, DRAIN_USER]

res = harness.ModuleResources()
up = other = pg = None
relays: dict[str, FakeBackend] = {}


def relay_to(target) -> FakeBackend:
    r = FakeBackend("proxy", target=(harness.LOOPBACK, target.port))
    return res.add(r)


def setUpModule():
    global up, other, pg
    with harness.closing_on_error(res):
        up = res.add(harness.Synth({u: PW for u in ALL_USERS}, sizes=[111]))
        other = res.add(harness.Synth({u: PW for u in ALL_USERS}, sizes=[222]))
        for key in ("down", "drain", "next-down", "next-up", "none-down", "none-up", "caps"):
            relays[key] = relay_to(other if key.endswith("down") or key == "drain" else up)
        users = lambda us: {u: PW for u in us}  # noqa: E731
        tenants = [
            harness.Tenant("t-caps", ["caps.example"], [relays["caps"].address],
                           users=users([CAPS_USER]), settings={"capabilities": CAPS}),
            harness.Tenant("t-nocaps", ["nocaps.example"], [up.address],
                           settings={"capabilities": []}),
            harness.Tenant("t-down", ["down.example"], [relays["down"].address],
                           users=users([DOWN_USER]), backend_settings=[{"state": "down"}]),
            harness.Tenant("t-drain", ["drain.example"], [relays["drain"].address],
                           users=users([DRAIN_USER]), backend_settings=[{"state": "drain"}]),
            harness.Tenant("t-next", ["next.example"],
                           [relays["next-down"].address, relays["next-up"].address],
                           users=users(NEXT_USERS), settings={"failover": "next"},
                           backend_settings=[{"state": "down"}, {}]),
            harness.Tenant("t-none", ["none.example"],
                           [relays["none-down"].address, relays["none-up"].address],
                           users=users(NONE_USERS), settings={"failover": "none"},
                           backend_settings=[{"state": "down"}, {}]),
        ]
        pg = res.add(th.TlsPopgate(tenants, [
            th.Listener("caps", "none", default_tenant="t-caps"),
            th.Listener("nocaps", "none", default_tenant="t-nocaps"),
            th.Listener("plain", "none"),
        ]))


def tearDownModule():
    res.close()


def capa_lines(port: int) -> list[str]:
    with RawClient(port) as c:
        r, body = c.multi("CAPA")
        assert r.startswith(b"+OK"), r
        c.cmd_ok("QUIT")
    return [l.decode() for l in body.split(b"\r\n") if l]


def configured_part(lines: list[str]) -> list[str]:
    """The CAPA lines popgate does not decide itself."""
    own = ("USER", "SASL", "STLS", "IMPLEMENTATION")
    return [l for l in lines if l.split(" ", 1)[0].upper() not in own]


class Capabilities(harness.IntegrationTestCase):

    def test_configured_capabilities_exactly(self):
        lines = capa_lines(pg.ports["caps"])
        self.assertEqual(configured_part(lines), CAPS, lines)
        self.assertIn("USER", lines)
        self.assertTrue(any(l.startswith("SASL ") for l in lines), lines)
        self.assertTrue(any(l.startswith("IMPLEMENTATION popgate") for l in lines), lines)
        self.assertNotIn("PIPELINING", lines)

    def test_empty_capabilities(self):
        lines = capa_lines(pg.ports["nocaps"])
        self.assertEqual(configured_part(lines), [], lines)
        self.assertTrue(any(l.startswith("IMPLEMENTATION popgate") for l in lines), lines)

    def test_listener_without_default_tenant_offers_defaults(self):
        lines = capa_lines(pg.ports["plain"])
        self.assertEqual(configured_part(lines), DEFAULT_CAPS, lines)

    def test_login_still_works(self):
        c = self.raw(pg.ports["caps"])
        self.assertTrue(c.login(CAPS_USER, PW).startswith(b"+OK"))
        self.assertEqual(c.cmd("STAT"), b"+OK 1 111\r\n")
        c.cmd_ok("QUIT")


def stat_of(port: int, user: str) -> tuple[bytes, bytes | None, float]:
    """(PASS reply, STAT reply or None, seconds from PASS to its reply)."""
    with RawClient(port, timeout=20) as c:
        assert c.cmd(f"USER {user}").startswith(b"+OK")
        t0 = time.monotonic()
        r = c.cmd(f"PASS {PW}")
        dt = time.monotonic() - t0
        st = c.cmd("STAT") if r.startswith(b"+OK") else None
        try:
            c.cmd("QUIT")
        except (OSError, harness.ConnectionClosed):
            pass
    return r, st, dt


class AdminState(harness.IntegrationTestCase):

    def assert_refused_without_connect(self, user: str, relay: FakeBackend) -> None:
        before = relay.accepted
        pmark = pg.log_mark()
        r, _, dt = stat_of(pg.ports["plain"], user)
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        # "At once": no connect attempt, no failure delay (generous bound).
        self.assertLess(dt, 1.5, f"-ERR [SYS/TEMP] took {dt:.2f} s")
        rec = pg.record_after(pmark, 10, event="session", user=user)
        self.assertIsNotNone(rec)
        self.assertEqual(rec.get("result"), "no_backend", rec)
        # The relay accepts in a loop that polls every 0.2 s: let it see a
        # connection popgate might have made.
        time.sleep(0.5)
        self.assertEqual(relay.accepted, before, "popgate connected to a backend it must not use")

    def test_down_backend_refuses_at_once(self):
        for _ in range(3):
            self.assert_refused_without_connect(DOWN_USER, relays["down"])

    def test_drained_backend_takes_no_new_session(self):
        for _ in range(3):
            self.assert_refused_without_connect(DRAIN_USER, relays["drain"])

    def test_failover_next_moves_everyone_to_the_up_backend(self):
        pmark = pg.log_mark()
        for u in NEXT_USERS:
            r, st, _ = stat_of(pg.ports["plain"], u)
            self.assertTrue(r.startswith(b"+OK"), f"{u}: {r!r}")
            self.assertEqual(st, b"+OK 1 111\r\n", u)
        time.sleep(0.5)  # the relay's accept loop polls every 0.2 s
        self.assertEqual(relays["next-down"].accepted, 0)
        recs = [pg.record_after(pmark, 10, event="session", user=u) for u in NEXT_USERS]
        self.assertNotIn(None, recs)
        self.assertEqual({r["backend"] for r in recs}, {relays["next-up"].address})
        moved = [r for r in recs if r.get("failovers", 0) >= 1]
        # 20 users over two backends: P(none had the down one first) = 2^-20.
        self.assertTrue(moved, "no user had the down backend first")
        print(f"\n  failover next: {len(moved)} of {len(NEXT_USERS)} users moved off the down backend")

    def test_failover_none_refuses_only_the_down_backends_users(self):
        refused, served = [], []
        for u in NONE_USERS:
            r, st, dt = stat_of(pg.ports["plain"], u)
            if r.startswith(b"+OK"):
                self.assertEqual(st, b"+OK 1 111\r\n", u)
                served.append(u)
            else:
                self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), f"{u}: {r!r}")
                self.assertLess(dt, 1.5, f"{u}: -ERR [SYS/TEMP] took {dt:.2f} s")
                refused.append(u)
        time.sleep(0.5)  # the relay's accept loop polls every 0.2 s
        self.assertEqual(relays["none-down"].accepted, 0)
        self.assertTrue(refused and served, (refused, served))
        # The same users again: the same answers (nobody moves).
        for u in refused[:3]:
            self.assertTrue(stat_of(pg.ports["plain"], u)[0].startswith(b"-ERR [SYS/TEMP]"))
        for u in served[:3]:
            self.assertTrue(stat_of(pg.ports["plain"], u)[0].startswith(b"+OK"))


class DrainByReload(harness.IntegrationTestCase):
    """state = "drain" by SIGHUP: the running session goes on, new ones
    are refused; "up" again: new sessions come back."""

    def test_drain_keeps_running_session(self):
        s = self.start_synth({"live@live.example": PW}, sizes=[333, 444])
        t = harness.Tenant("t-live", ["live.example"], [s.address],
                           users={"live@live.example": PW}, backend_settings=[{"state": "up"}])
        p = th.TlsPopgate([t])
        self.addCleanup(p.cleanup)
        p.start()
        running = self.raw(p.port)
        self.assertTrue(running.login("live@live.example", PW).startswith(b"+OK"))
        self.assertEqual(running.cmd("STAT"), b"+OK 2 777\r\n")

        def reload_to(state: str) -> None:
            t.backend_settings = [{"state": state}]
            mark = p.log_mark()
            p.write_config()
            p.reload()
            self.assertIsNotNone(p.record_after(mark, 10, event="reloaded"),
                                 "no reloaded line: " + str(p.log_records()[mark:]))

        reload_to("drain")
        r, _, dt = stat_of(p.port, "live@live.example")
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        self.assertLess(dt, 1.5)
        # The running session is untouched.
        self.assertBytesEqual(running.retr(2), s.dump("live@live.example", 2), "RETR 2")
        running.cmd_ok("QUIT")
        reload_to("up")
        r, st, _ = stat_of(p.port, "live@live.example")
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertEqual(st, b"+OK 2 777\r\n")


if __name__ == "__main__":
    unittest.main()
