"""A fleet of real Dovecots behind two popgate instances (issue 9).

Three Dovecot instances share ONE maildir tree (shared storage) and the same
users; two popgate instances have identical tenants on them:

  fleet    failover = "next", active health checks every 1 s (fall 2, rise 2)
  shard    failover = "none", the same checks (sharded storage: nobody moves)
  cap      failover = "none", max_connections = 1 on every backend
  capnext  failover = "next", max_connections = 1 on every backend

Cases: both instances send every user to the same backend; a backend killed
(SIGKILL, the whole process tree, like a machine dying) while users log in:
its users move to their next backend in their own rendezvous order (the
same through both instances) within the checks' fall time, nobody else
moves or fails, no mail is lost, and no maildrop is ever open on two
backends at once (from Dovecot's own logs); it comes back and its users
return; a backend that hangs (SIGSTOP: accepted, never greets) is passed
over after backend_timeout and skipped at once once marked down; state = "drain" keeps a running session, answers a second login of
its user -ERR [IN-USE] and sends new sessions elsewhere; state = "down"
cuts running sessions without touching the mailbox; failover = "none"
answers -ERR [SYS/TEMP] at once, without a connect attempt, once the
backend is marked down; max_connections.

Prints the measured figures: "failover after X.XX s" (kill -> first
successful login of a moved user), when each instance marked the backend
down and up again (killed and hung), how long logins took meanwhile.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import unittest

import harness
from harness import ConnectionClosed, RawClient, make_message
from popgate_testing.dovecot_fleet import DovecotFleet, log_time
from popgate_testing.helpers import closing_on_error

PW = "Fleet-pw-1"
FLEET = [f"f{i:02d}@fleet.example" for i in range(30)]
SHARD = [f"s{i:02d}@shard.example" for i in range(15)]
CAP = [f"c{i:02d}@cap.example" for i in range(6)]
CAPNEXT = [f"n{i:02d}@capnext.example" for i in range(12)]
ALL_USERS = FLEET + SHARD + CAP + CAPNEXT

INTERVAL, TIMEOUT, RISE, FALL = 1.0, 0.5, 2, 2
HEALTH = {"interval": "1s", "timeout": "500ms", "rise": RISE, "fall": FALL, "capa": True}
# The checks' bound on noticing a death (fall checks, the last one timing
# out) plus a generous margin for a loaded 2-core CI machine.
DOWN_BOUND = FALL * INTERVAL + TIMEOUT + 3.5
UP_BOUND = RISE * INTERVAL + TIMEOUT + 3.5
# After an instance logs the down line, a login already past its pick may
# still meet the dead backend; a new one may not.
SETTLE = 0.3

res = harness.ModuleResources()
fleet: DovecotFleet | None = None
gates: list[harness.Popgate] = []
routes: dict[str, str] = {}            # user -> first-choice backend, all up
baseline: dict[str, bytes] = {}        # user -> UIDL listing, straight from Dovecot


def tenants(addresses: list[str]) -> list[harness.Tenant]:
    users = lambda names: {u: PW for u in names}  # noqa: E731
    every = lambda **kw: [dict(kw) for _ in addresses]  # noqa: E731
    return [
        harness.Tenant("fleet", ["fleet.example"], list(addresses), users=users(FLEET),
                       settings={"failover": "next"}, health_check=dict(HEALTH)),
        harness.Tenant("shard", ["shard.example"], list(addresses), users=users(SHARD),
                       settings={"failover": "none"}, health_check=dict(HEALTH)),
        harness.Tenant("cap", ["cap.example"], list(addresses), users=users(CAP),
                       settings={"failover": "none"},
                       backend_settings=every(max_connections=1)),
        harness.Tenant("capnext", ["capnext.example"], list(addresses), users=users(CAPNEXT),
                       settings={"failover": "next"},
                       backend_settings=every(max_connections=1)),
    ]


def setUpModule():
    global fleet
    with closing_on_error(res):
        fleet = DovecotFleet(3, process_limit=200)
        for i, u in enumerate(ALL_USERS):
            fleet.add_user(u, PW, [make_message(1000 + 3 * i + k, 300 + 97 * k) for k in range(3)])
        res.add(fleet)
        for _ in range(2):
            gates.append(res.add(harness.Popgate(tenants(fleet.addresses))))
        for u in ALL_USERS:
            with RawClient(fleet.members[0].port) as c:
                assert c.login(u, PW).startswith(b"+OK"), u
                r, body = c.multi("UIDL")
                assert r.startswith(b"+OK") and body.count(b"\n") == 3, (u, r, body)
                baseline[u] = body
                c.cmd_ok("QUIT")
        # Every user's first choice with all backends up, through instance 1
        # (test_1 checks instance 2 agrees).
        for u in ALL_USERS:
            ok, addr, reply = login_once(gates[0], u)
            assert ok, (u, reply)
            routes[u] = session_record(gates[0], addr, u)["backend"]


def tearDownModule():
    res.close()


# ---------------------------------------------------------------------------
# Client side


def login_once(gate, user, cmds=("STAT",)) -> tuple[bool, str, bytes]:
    """USER/PASS, the commands, QUIT. Returns (all +OK, client address as
    popgate logs it, the first non-+OK reply or b"")."""
    with RawClient(gate.port, timeout=15) as c:
        addr = "%s:%d" % c.sock.getsockname()
        r = c.login(user, PW)
        if not r.startswith(b"+OK"):
            return False, addr, r
        for cmd in cmds:
            r = c.cmd(cmd)
            if not r.startswith(b"+OK"):
                return False, addr, r
        r = c.cmd("QUIT")
        return r.startswith(b"+OK"), addr, (b"" if r.startswith(b"+OK") else r)


def session_record(gate, client: str, user: str, timeout: float = 5.0) -> dict:
    """The session line of the connection from `client` (ports are not
    reused within a test run's few thousand connections)."""
    def get():
        for r in reversed(gate.log_records()):
            if r.get("event") == "session" and r.get("client") == client and r.get("user") == user:
                return r
        return None
    rec = harness.wait_until(get, harness.scaled(timeout))
    if rec is None:
        raise AssertionError(f"no session line for {user} from {client}"
                             + harness._tail(gate.stderr_path))
    return rec


def session_records_of(gi: int, attempts: list["Attempt"], timeout: float = 5.0) -> dict:
    """(client, user) -> session line, for every attempt through gate gi
    (read once: a gate's log holds thousands of lines)."""
    want = {(a.client, a.user) for a in attempts if a.gate == gi and a.client}
    got: dict = {}

    def done():
        got.clear()
        for r in gates[gi].log_records():
            if r.get("event") == "session":
                got[(r.get("client"), r.get("user"))] = r
        return want <= got.keys()
    if not harness.wait_until(done, harness.scaled(timeout), interval=0.2):
        missing = sorted(want - got.keys())[:5]
        raise AssertionError(f"popgate {gi + 1}: no session line for {missing}")
    return got


def backend_of(gate, user: str) -> str:
    ok, addr, reply = login_once(gate, user)
    if not ok:
        raise AssertionError(f"{user} through popgate {gates.index(gate) + 1}: {reply!r}, "
                             f"logged {session_record(gate, addr, user)}")
    return session_record(gate, addr, user)["backend"]


def health_lines(gate, tenant: str, backend: str, to: str, after: float) -> list[dict]:
    return [r for r in gate.log_records()
            if r.get("event") == "backend_health" and r.get("tenant") == tenant
            and r.get("backend") == backend and r.get("to") == to and log_time(r) >= after - 0.01]


def wait_health(gate, tenant: str, backend: str, to: str, after: float, timeout: float) -> float:
    """The time of the first health line (tenant, backend) -> `to` logged
    after `after`; an AssertionError after `timeout`."""
    recs = harness.wait_until(lambda: health_lines(gate, tenant, backend, to, after),
                              harness.scaled(timeout), interval=0.05)
    if not recs:
        raise AssertionError(
            f"popgate {gates.index(gate) + 1}: no backend_health {tenant} {backend} "
            f"-> {to} within {timeout:.1f}s: "
            f"{[r for r in gate.log_records() if r.get('event') == 'backend_health'][-6:]}")
    return log_time(recs[0])


@dataclasses.dataclass
class Attempt:
    user: str
    gate: int
    t0: float
    t1: float
    ok: bool
    reply: str
    client: str = ""

    @property
    def clean_failure(self) -> bool:
        return self.reply.startswith("-ERR [SYS/TEMP]") or self.reply.startswith("closed")


def attempt(gi: int, user: str) -> Attempt:
    """One session (login, STAT: all three messages, QUIT) through gate gi,
    timed; a failure is described, never raised."""
    t0 = time.time()
    addr = ""
    try:
        with RawClient(gates[gi].port, timeout=10) as c:
            addr = "%s:%d" % c.sock.getsockname()
            r = c.login(user, PW)
            if r.startswith(b"+OK"):
                st = c.cmd("STAT")
                r = c.cmd("QUIT") if st.startswith(b"+OK 3 ") else b"STAT: " + st
            ok = r.startswith(b"+OK")
            reply = "" if ok else r.decode("ascii", "replace").strip()
    except TimeoutError as e:
        ok, reply = False, f"timeout: {e!r}"
    except (ConnectionClosed, ConnectionError) as e:
        ok, reply = False, f"closed: {e!r}"
    return Attempt(user, gi, t0, time.time(), ok, reply, addr)


class LoginLoop:
    """Threads logging users in, round after round (alternating the two
    popgate instances), until stopped or `max_rounds`."""

    def __init__(self, users: list[str], threads: int = 2, max_rounds: int = 200):
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(users[k::threads], k, max_rounds),
                                          daemon=True) for k in range(threads)]

    def _run(self, users, k, max_rounds):
        for rnd in range(max_rounds):
            for u in users:
                if self._stop.is_set():
                    return
                a = attempt((rnd + k) % 2, u)
                with self._lock:
                    self.attempts.append(a)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def users_on(address: str, names: list[str]) -> list[str]:
    return [u for u in names if routes[u] == address]


def busiest(names: list[str]) -> int:
    """The fleet member that is first choice for most of `names`."""
    counts = [len(users_on(a, names)) for a in fleet.addresses]
    return counts.index(max(counts))


class Fleet(harness.IntegrationTestCase):

    def assertNoMaildropOnTwoBackends(self):
        time.sleep(0.3)  # let the Dovecots' log processes write their last lines
        overlaps = fleet.overlaps()
        if overlaps:
            self.fail("a maildrop was open on two backends at once:\n" + fleet.describe(overlaps))

    def assertMailIntact(self, users):
        for u in users:
            with RawClient(gates[0].port, timeout=15) as c:
                self.assertTrue(c.login(u, PW).startswith(b"+OK"), u)
                r, body = c.multi("UIDL")
                self.assertEqual(body, baseline[u], f"{u}: UIDL changed")
                c.cmd_ok("QUIT")
            keys = {m.key for m in fleet.seeded(u)}
            self.assertTrue(keys <= fleet.present_keys(u), f"{u}: messages gone from disk")

    def restart_and_wait_up(self, i: int, since: float, bring_back=None) -> list[float]:
        """Restarts member i (or calls bring_back) and waits until both
        instances have it up again for every actively checked tenant (those
        that marked it down after `since` log an up line); returns each
        instance's time from the restart to its last up line."""
        t = time.time()
        (bring_back or (lambda: fleet.restart(i)))()
        addr = fleet.addresses[i]

        def last(g, tn):
            recs = [r for r in g.log_records() if r.get("event") == "backend_health"
                    and r.get("tenant") == tn and r.get("backend") == addr]
            return recs[-1] if recs else None
        settled = harness.wait_until(
            lambda: all((last(g, tn) or {}).get("to") != "down"
                        for g in gates for tn in ("fleet", "shard")),
            harness.scaled(UP_BOUND))
        self.assertTrue(settled, f"{addr} not up again {UP_BOUND:.1f}s after its restart")
        ups = []
        for g in gates:
            self.assertTrue(
                any(health_lines(g, tn, addr, "down", since) for tn in ("fleet", "shard")),
                f"popgate {gates.index(g) + 1} never marked {addr} down")
            ups.append(max(log_time(last(g, tn)) for tn in ("fleet", "shard")
                           if health_lines(g, tn, addr, "up", t)) - t)
        return ups

    def set_state(self, gate: harness.Popgate, address: str, state: str) -> None:
        for t in gate.tenants:
            if t.name == "fleet":
                t.set_backend(address, state=state)
        gate.reload_and_wait()

    # -- 1 -------------------------------------------------------------------

    def test_1_both_instances_send_every_user_to_the_same_backend(self):
        for u in FLEET + SHARD:
            b1, b2 = backend_of(gates[0], u), backend_of(gates[1], u)
            self.assertEqual(b1, b2, f"{u}: popgate 1 chose {b1}, popgate 2 {b2}")
            self.assertEqual(b1, routes[u], f"{u} moved with every backend up")
        used = {routes[u] for u in FLEET}
        self.assertEqual(used, set(fleet.addresses), "30 users and a backend got none")

    # -- 2, 3 ----------------------------------------------------------------

    def test_2_killed_backend_users_move_then_return(self):
        victim = busiest(FLEET)
        vaddr = fleet.addresses[victim]
        moved = users_on(vaddr, FLEET)
        stayed = [u for u in FLEET if u not in moved]
        self.assertGreaterEqual(len(moved), 3, routes)
        restarted = False

        def restart_if_needed():
            if not restarted and not fleet.alive(victim):
                fleet.restart(victim)
        self.addCleanup(restart_if_needed)

        with LoginLoop(FLEET) as loop:
            time.sleep(1.0)
            t_kill = fleet.kill(victim)
            downs = [wait_health(g, "fleet", vaddr, "down", t_kill, DOWN_BOUND) for g in gates]
            # Long enough after both marked it down for every moved user to
            # log in through both instances.
            time.sleep(2.5)
        t_stop = time.time()
        attempts = loop.attempts
        print(f"\n  {len(attempts)} sessions; popgate 1 marked {vaddr} down after "
              f"{downs[0] - t_kill:.2f} s, popgate 2 after {downs[1] - t_kill:.2f} s")

        # Users of the other backends never fail.
        bad = [a for a in attempts if a.user in stayed and not a.ok]
        self.assertEqual(bad, [], "users of live backends failed")
        # Users of the dead one fail cleanly, and only until it is marked down.
        for a in attempts:
            if a.user in moved and not a.ok:
                self.assertTrue(a.clean_failure, a)
                self.assertLess(a.t0, downs[a.gate] + SETTLE,
                                f"failed after popgate {a.gate + 1} marked {vaddr} down: {a}")
        late = [a for a in attempts if a.user in moved and a.t0 > max(downs) + SETTLE]
        self.assertTrue(late and all(a.ok for a in late), "moved users did not log in again")
        ok_moved = [a for a in attempts if a.user in moved and a.ok and a.t0 > t_kill]
        first = min(a.t1 for a in ok_moved) - t_kill
        failed = [a for a in attempts if a.user in moved and not a.ok]
        print(f"  failover after {first:.2f} s; {len(failed)} sessions of its users failed"
              + (f" (started {', '.join(f'{a.t0 - t_kill:+.2f}' for a in failed[:6])} s from "
                 "the kill)" if failed else ""))
        self.assertLess(first, DOWN_BOUND)

        # Where they went: one backend per moved user, the same through
        # both instances, never the dead one; nobody else moved.
        recs = [session_records_of(gi, attempts) for gi in (0, 1)]
        went: dict[tuple[str, int], set[str]] = {}
        for a in attempts:
            if a.ok and a.t0 > t_kill:
                rec = recs[a.gate][(a.client, a.user)]
                went.setdefault((a.user, a.gate), set()).add(rec["backend"])
        for u in stayed:
            for gi in (0, 1):
                self.assertEqual(went.get((u, gi), {routes[u]}), {routes[u]}, f"{u} moved")
        for u in moved:
            b1, b2 = went.get((u, 0)), went.get((u, 1))
            self.assertTrue(b1 and b2, f"{u} did not log in through both instances")
            self.assertEqual(len(b1), 1, f"{u} through popgate 1 went to {b1}")
            self.assertEqual(b1, b2, f"{u}: popgate 1 chose {b1}, popgate 2 {b2}")
            self.assertNotIn(vaddr, b1)
        spread = sorted({next(iter(went[(u, 0)])) for u in moved})
        print(f"  {len(moved)} users of {vaddr} moved to {spread}")
        self.assertMailIntact(FLEET)

        # 3: it comes back; after `rise` good checks its users return.
        ups = self.restart_and_wait_up(victim, t_kill)
        restarted = True
        print(f"  back up after {ups[0]:.2f} s (popgate 1), {ups[1]:.2f} s (popgate 2)"
              f" [stopped the loop {t_stop - t_kill:.1f} s after the kill]")
        for u in moved:
            for g in gates:
                self.assertEqual(backend_of(g, u), vaddr, f"{u} did not return to {vaddr}")
        self.assertNoMaildropOnTwoBackends()

    def test_3_hung_backend_is_passed_over_then_marked_down(self):
        """A backend that stops answering (SIGSTOP: the kernel still accepts
        connections, nothing greets): its users' logins pass over it after
        backend_timeout (no credentials went there), the checks mark it
        down within fall x interval + timeout, and from then on its users
        go straight to their next backend, the same through both."""
        h = busiest(FLEET)
        haddr = fleet.addresses[h]
        husers = users_on(haddr, FLEET)
        pids = fleet.members[h].pause()
        t_stop = time.time()
        resumed = []
        self.addCleanup(lambda: resumed or fleet.members[h].resume(pids))
        attempts: list[Attempt] = []
        downs: list[float | None] = [None, None]
        k = 0
        while time.time() < t_stop + DOWN_BOUND + 4:
            attempts.append(attempt(k % 2, husers[(k // 2) % len(husers)]))
            k += 1
            for gi in (0, 1):
                recs = downs[gi] is None and health_lines(gates[gi], "fleet", haddr, "down", t_stop)
                if recs:
                    downs[gi] = log_time(recs[0])
            if None not in downs and sum(a.t0 > max(downs) + SETTLE for a in attempts) >= 4:
                break
        self.assertNotIn(None, downs, f"{haddr} hung and not marked down by both instances")
        before = [a.t1 - a.t0 for a in attempts if a.t0 < max(downs)]
        after = [a.t1 - a.t0 for a in attempts if a.t0 > max(downs) + SETTLE]
        print(f"\n  hung backend: marked down after {downs[0] - t_stop:.2f} s (popgate 1), "
              f"{downs[1] - t_stop:.2f} s (popgate 2); logins before took up to "
              f"{max(before, default=0):.2f} s, after at most {max(after):.2f} s")
        self.assertEqual([a for a in attempts if not a.ok], [], "a login failed")
        backend_timeout = 2.0  # popgate.py's test default
        for a in attempts:
            self.assertLess(a.t1 - a.t0, backend_timeout + 1.5, a)
        for gi in (0, 1):
            self.assertLess(downs[gi] - t_stop, DOWN_BOUND)
        self.assertLess(max(after), 1.0, "popgate still tried the hung backend once it was down")
        recs = [session_records_of(gi, attempts) for gi in (0, 1)]
        went: dict[str, set[str]] = {}
        for a in attempts:
            went.setdefault(a.user, set()).add(recs[a.gate][(a.client, a.user)]["backend"])
        for u, bs in went.items():
            self.assertEqual(len(bs), 1, f"{u} went to {bs}")
            self.assertNotIn(haddr, bs)
        ups = self.restart_and_wait_up(h, t_stop,
                                       lambda: (fleet.members[h].resume(pids), resumed.append(1)))
        print(f"  resumed: up after {ups[0]:.2f} s, {ups[1]:.2f} s")
        for u in husers[:3]:
            self.assertEqual(backend_of(gates[0], u), haddr)
        self.assertNoMaildropOnTwoBackends()

    # -- 4 -------------------------------------------------------------------

    def test_4_drain_keeps_running_session_and_moves_new_ones(self):
        a = busiest(FLEET)
        aaddr = fleet.addresses[a]
        u, v = users_on(aaddr, FLEET)[:2]
        g = gates[0]
        self.addCleanup(self.set_state, g, aaddr, "up")
        t = time.time()
        c = self.raw(g.port, timeout=15)
        self.assertTrue(c.login(u, PW).startswith(b"+OK"))
        held = harness.wait_until(
            lambda: [s for s in fleet.members[a].sessions(a)
                     if s.user == u and s.start >= t - 0.05],
            harness.scaled(3))
        self.assertEqual(len(held), 1, f"{u}'s session is not on {aaddr}")

        self.set_state(g, aaddr, "drain")
        # The running session goes on.
        r, listing = c.multi("LIST")
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertEqual(listing.count(b"\n"), 3)
        self.assertBytesEqual(c.retr(1), fleet.seeded(u)[0].data, f"{u} RETR 1 while draining")
        # A second session of the same user may not open the maildrop
        # elsewhere while the first is on the drained backend.
        with RawClient(g.port, timeout=15) as c2:
            r2 = c2.login(u, PW)
            self.assertTrue(r2.startswith(b"-ERR [IN-USE]"), r2)
        # Other users of the drained backend go to their next one.
        self.assertNotEqual(backend_of(g, v), aaddr, f"{v} was sent to the drained backend")
        self.assertBytesEqual(c.retr(2), fleet.seeded(u)[1].data, f"{u} RETR 2 while draining")
        self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
        self.assertEqual(c.read_until_closed(5), b"")
        c.close()  # as a client does: popgate drains a client until it closes
        # Once it ended, the user goes to the next backend too.
        nxt = backend_of(g, u)
        self.assertNotEqual(nxt, aaddr, f"{u} was sent to the drained backend")
        # The other instance, not drained, still uses it.
        self.assertEqual(backend_of(gates[1], v), aaddr)

        self.set_state(g, aaddr, "up")
        self.assertEqual(backend_of(g, u), aaddr, f"{u} did not return after the drain")
        self.assertNoMaildropOnTwoBackends()

    # -- 5 -------------------------------------------------------------------

    def test_5_state_down_cuts_sessions_and_keeps_the_mailbox(self):
        # Another backend than test_4's (any with users).
        b = next((i for i in range(3)
                  if i != busiest(FLEET) and users_on(fleet.addresses[i], FLEET)),
                 busiest(FLEET))
        baddr = fleet.addresses[b]
        w = users_on(baddr, FLEET)[0]
        g = gates[0]
        self.addCleanup(self.set_state, g, baddr, "up")
        c = self.raw(g.port, timeout=15)
        addr = "%s:%d" % c.sock.getsockname()
        self.assertTrue(c.login(w, PW).startswith(b"+OK"))
        r, body = c.multi("UIDL")
        self.assertEqual(body, baseline[w])
        c.cmd_ok("DELE 1")
        c.cmd_ok("DELE 2")

        t = time.monotonic()
        self.set_state(g, baddr, "down")
        try:
            c.read_until_closed(5)
        except ConnectionResetError:
            pass
        print(f"\n  state = \"down\": session cut {time.monotonic() - t:.2f} s after SIGHUP")
        rec = session_record(g, addr, w)
        self.assertEqual(rec["backend"], baddr)
        self.assertNotEqual(rec["result"], "ok", rec)
        # While it is down its users go elsewhere; the cut session's DELE
        # marks were never committed.
        self.assertNotEqual(backend_of(g, w), baddr)
        self.assertMailIntact([w])
        self.set_state(g, baddr, "up")
        self.assertEqual(backend_of(g, w), baddr)
        self.assertMailIntact([w])
        self.assertNoMaildropOnTwoBackends()

    # -- 6 -------------------------------------------------------------------

    def test_6_failover_none_refuses_at_once_once_down(self):
        x = busiest(SHARD)
        xaddr = fleet.addresses[x]
        xusers = users_on(xaddr, SHARD)
        others = [u for u in SHARD if u not in xusers]
        self.assertGreaterEqual(len(xusers), 2, routes)
        restarted = False

        def restart_if_needed():
            if not restarted and not fleet.alive(x):
                fleet.restart(x)
        self.addCleanup(restart_if_needed)

        with LoginLoop(SHARD, threads=1) as loop:
            time.sleep(0.5)
            t_kill = fleet.kill(x)
            downs = [wait_health(g, "shard", xaddr, "down", t_kill, DOWN_BOUND) for g in gates]
            time.sleep(1.5)
        print(f"\n  failover = \"none\": {xaddr} marked down after {downs[0] - t_kill:.2f} s, "
              f"{downs[1] - t_kill:.2f} s")
        attempts = loop.attempts
        self.assertEqual([a for a in attempts if a.user in others and not a.ok], [],
                         "users of live backends failed")
        after = [a for a in attempts if a.user in xusers and a.t0 > downs[a.gate] + SETTLE]
        self.assertTrue(after, "no login of the dead backend's users after it was marked down")
        for a in attempts:
            if a.user in xusers and a.t0 > t_kill:
                self.assertFalse(a.ok, f"{a.user} logged in with its only backend dead")
                self.assertTrue(a.clean_failure, a)
        recs = [session_records_of(gi, attempts) for gi in (0, 1)]
        for a in after:
            self.assertTrue(a.reply.startswith("-ERR [SYS/TEMP]"), a)
            self.assertLess(a.t1 - a.t0, 1.0, f"not at once: {a}")
            rec = recs[a.gate][(a.client, a.user)]
            self.assertEqual(rec["backend"], xaddr, rec)
            self.assertIn("down", rec.get("detail", ""), rec)
            self.assertNotIn("refused", rec.get("detail", "").lower(),
                             f"popgate tried to connect to a backend marked down: {rec}")
        for a in attempts:
            if a.ok:
                self.assertEqual(recs[a.gate][(a.client, a.user)]["backend"],
                                 routes[a.user], f"{a.user} moved under failover = \"none\"")
        self.restart_and_wait_up(x, t_kill)
        restarted = True
        for u in xusers:
            self.assertEqual(backend_of(gates[0], u), xaddr)

    # -- 7 -------------------------------------------------------------------

    def test_7_max_connections(self):
        g = gates[0]
        # "none": a second concurrent session on a full backend is refused.
        m = CAP[0]
        c1 = self.raw(g.port, timeout=15)
        c1_addr = "%s:%d" % c1.sock.getsockname()
        self.assertTrue(c1.login(m, PW).startswith(b"+OK"))
        with RawClient(g.port, timeout=15) as c2:
            addr = "%s:%d" % c2.sock.getsockname()
            r = c2.login(m, PW)
            self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        rec = session_record(g, addr, m)
        self.assertEqual(rec["backend"], routes[m])
        self.assertIn("full", rec.get("detail", ""), rec)
        # The other instance counts its own sessions: it is not full there.
        self.assertEqual(backend_of(gates[1], m), routes[m])
        c1.cmd_ok("QUIT")
        c1.read_until_closed(5)
        c1.close()
        # The slot goes when the session has unwound, which its log line
        # follows (the client may see the close a worker turn earlier, and
        # the next login may run on the other worker).
        session_record(g, c1_addr, m)
        self.assertEqual(backend_of(g, m), routes[m], "the slot was not given back")

        # "next": another user whose first choice is the full backend goes
        # to their next one.
        by_first: dict[str, list[str]] = {}
        for u in CAPNEXT:
            by_first.setdefault(routes[u], []).append(u)
        x, (na, nb) = next((a, us[:2]) for a, us in by_first.items() if len(us) >= 2)
        c3 = self.raw(g.port, timeout=15)
        c3_addr = "%s:%d" % c3.sock.getsockname()
        self.assertTrue(c3.login(na, PW).startswith(b"+OK"))
        got = backend_of(g, nb)
        self.assertNotEqual(got, x, f"{nb} was sent to the full backend")
        self.assertIn(got, fleet.addresses)
        c3.cmd_ok("QUIT")
        c3.read_until_closed(5)
        c3.close()
        session_record(g, c3_addr, na)
        self.assertEqual(backend_of(g, nb), x)


if __name__ == "__main__":
    unittest.main()
