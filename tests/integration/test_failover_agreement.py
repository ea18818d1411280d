"""Fail-over agreement at scale (issue 9), against pop3-synth: five
backends, 10,000 users, failover = "next".

Three popgate instances built independently from their own configs: one
with all five backends up, two with backend #2 set to state = "down".
Every user logs in once (USER/PASS/QUIT) through each, with a fast asyncio
client (32 connections at a time).  From the session logs:

  * the two instances with #2 down sent every one of the 10,000 users to
    the same backend (no coordination: each user's own rendezvous order);
  * compared with all five up, exactly the users that had #2 moved, none
    to #2, and nobody else; about a fifth of them (within 15% of 2000);
  * the moved users spread over the other four backends (each gets its
    share of them).

Prints "moved N of 10000" and the login rate.
"""

from __future__ import annotations

import asyncio
import collections
import time
import unittest

import harness
from popgate_testing.helpers import closing_on_error

N_USERS = 10_000
N_BACKENDS = 5
DOWN = 1              # backend #2 (index 1)
DOMAIN = "agree.example"
PW = "Agree-pw-7"
USERS = [f"user{i}@{DOMAIN}" for i in range(N_USERS)]
CONCURRENCY = 32
RUN_BOUND = 40.0      # seconds for all logins through one instance

res = harness.ModuleResources()
synths: list[harness.Synth] = []
gate_up = gate_a = gate_b = None


def tenant(addresses: list[str], down: int | None) -> harness.Tenant:
    opts = [{"state": "down"} if i == down else {} for i in range(len(addresses))]
    return harness.Tenant("agree", [DOMAIN], list(addresses), users={u: PW for u in USERS},
                          settings={"failover": "next"}, backend_settings=opts)


def setUpModule():
    global gate_up, gate_a, gate_b
    with closing_on_error(res):
        for _ in range(N_BACKENDS):
            synths.append(res.add(harness.Synth(
                {}, messages=1, size=300,
                extra_args=["--generated-users", str(N_USERS), "--generated-domain", DOMAIN,
                            "--generated-password", PW])))
        addrs = [s.address for s in synths]
        # Logs only what matters here: no auth delay, plenty of queue.
        server = {"auth_queue_limit": 4096}
        gate_up = res.add(harness.Popgate([tenant(addrs, None)], server=server))
        gate_a = res.add(harness.Popgate([tenant(addrs, DOWN)], server=server))
        gate_b = res.add(harness.Popgate([tenant(addrs, DOWN)], server=server))


def tearDownModule():
    res.close()


async def _login(port: int, user: str, sem: asyncio.Semaphore) -> bytes:
    async with sem:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(harness.LOOPBACK, port), 10)
        try:
            async def line() -> bytes:
                return await asyncio.wait_for(reader.readline(), 10)
            g = await line()
            if not g.startswith(b"+OK"):
                return b"greeting: " + g
            writer.write(f"USER {user}\r\nPASS {PW}\r\n".encode())
            r = await line()
            if not r.startswith(b"+OK"):
                return b"USER: " + r
            r = await line()
            if not r.startswith(b"+OK"):
                return b"PASS: " + r
            writer.write(b"QUIT\r\n")
            r = await line()
            return b"" if r.startswith(b"+OK") else b"QUIT: " + r
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def _login_all(port: int) -> dict[str, bytes]:
    sem = asyncio.Semaphore(CONCURRENCY)
    results = await asyncio.gather(*(_login(port, u, sem) for u in USERS),
                                   return_exceptions=True)
    return {u: r for u, r in zip(USERS, results)
            if not (isinstance(r, bytes) and r == b"")}


def backends_from_log(gate) -> dict[str, str]:
    """user -> backend of its (one) ok session; waits for all 10,000 lines
    (the log thread writes them a little after the sessions end)."""
    def get():
        out = {}
        for r in gate.log_records():
            if r.get("event") == "session" and r.get("result") == "ok":
                out[r["user"]] = r["backend"]
        return out if len(out) >= N_USERS else None
    got = harness.wait_until(get, harness.scaled(15), interval=0.5)
    if got is None:
        raise AssertionError("not every session line was logged" + harness._tail(gate.stderr_path))
    return got


class FailoverAgreement(harness.IntegrationTestCase):

    def run_all(self, gate) -> dict[str, str]:
        t = time.monotonic()
        failed = asyncio.run(_login_all(gate.port))
        took = time.monotonic() - t
        print(f"\n  {N_USERS} logins through popgate :{gate.port} in {took:.1f} s "
              f"({N_USERS / took:.0f}/s)")
        self.assertEqual(dict(list(failed.items())[:5]), {}, f"{len(failed)} logins failed")
        self.assertLess(took, RUN_BOUND)
        return backends_from_log(gate)

    def test_instances_agree_and_only_the_down_backends_users_move(self):
        addrs = [s.address for s in synths]
        up = self.run_all(gate_up)
        a = self.run_all(gate_a)
        b = self.run_all(gate_b)
        self.assertEqual(set(up), set(USERS))

        disagree = [u for u in USERS if a[u] != b[u]]
        self.assertEqual(disagree[:5], [], f"{len(disagree)} users got different backends")
        moved = [u for u in USERS if a[u] != up[u]]
        had_down = [u for u in USERS if up[u] == addrs[DOWN]]
        print(f"  moved {len(moved)} of {N_USERS} (backend #{DOWN + 1} down)")
        wrong = sorted(set(moved) - set(had_down))
        stuck = sorted(set(had_down) - set(moved))
        self.assertEqual((len(wrong), len(stuck)), (0, 0),
                         f"the users that moved are not exactly those of the down backend: "
                         f"{len(wrong)} others moved (e.g. {wrong[:3]}), {len(stuck)} of its "
                         f"{len(had_down)} did not (e.g. {stuck[:3]})")
        self.assertNotIn(addrs[DOWN], set(a.values()))
        self.assertLess(abs(len(moved) - N_USERS / N_BACKENDS), 0.15 * N_USERS / N_BACKENDS)

        # Evenly over the rest: each of the four gets about a quarter of
        # the moved users (binomial; 30% is many standard deviations).
        spread = collections.Counter(a[u] for u in moved)
        share = len(moved) / (N_BACKENDS - 1)
        for addr in addrs:
            if addr != addrs[DOWN]:
                self.assertLess(abs(spread[addr] - share), 0.3 * share, spread)
        print("  moved users went to " + ", ".join(
            f"#{addrs.index(k) + 1}: {v}" for k, v in sorted(spread.items(),
                                                               key=lambda kv: addrs.index(kv[0]))))


if __name__ == "__main__":
    unittest.main()
