"""[limits] store = "redis" (issue 10, docs/redis.md): one real redis-server
(Debian's, its own config in a temp dir) shared by TWO popgate instances.

- Failed logins spread over both instances add up to one address block that
  both enforce.
- max_sessions_per_user = 1 holds across them: a second session of the user
  on the OTHER instance gets [IN-USE]; after the first ends, it logs in.
- Redis SIGKILLed mid-test: the fail_open instance keeps logging users in
  (one store_down line however many logins), the fail_closed one answers
  -ERR [SYS/TEMP] quickly (no hang); Redis restarted on the same port:
  blocks are shared again and store_up is logged.

Client addresses: each case binds its clients to its own 127.0.0.x."""

import socket
import time
import unittest

import harness
from harness import RawClient
from popgate_testing.redis import RedisServer, redis_server_bin

PW = "Redis-Pw-1"
WRONG = "Wrong-Guess-3"
# max_sessions_per_user = 1 everywhere, and a session's slot is released
# after the client saw its QUIT answered: logins that follow each other use
# fresh users (FRESH) so they do not race their predecessor's release.
USERS = {f"{n}@example.com": PW for n in ["victim", "solo", "closed"]}
USERS.update({f"u{i}@example.com": PW for i in range(60)})
FRESH = iter(f"u{i}@example.com" for i in range(60))
BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins; try again later\r\n"
UNAVAILABLE = b"-ERR [SYS/TEMP] Login service temporarily unavailable\r\n"


def limits(redis: RedisServer, policy: str) -> str:
    return f"""[limits]
store = "redis"
redis_address = "{redis.address}"
redis_timeout = "200ms"
redis_down = "{policy}"
redis_prefix = "it:"
exempt_networks = []
failure_window = "1m"
max_failure_delay = "100ms"
address_failures_to_block = 4
address_users_to_block = 0
user_failures_to_block = 0
block_time = "30s"
max_sessions_per_user = 1
max_new_connections_per_address = 0
refusal_delay = "100ms"
"""


res = harness.ModuleResources()
redis = synth = pg_open = pg_closed = None


def setUpModule():
    global redis, synth, pg_open, pg_closed
    if redis_server_bin() is None:
        raise unittest.SkipTest("redis-server is not installed")
    with harness.closing_on_error(res):
        redis = res.add(RedisServer())
        synth = res.add(harness.Synth(USERS, sizes=[100]))
        tenants = [harness.Tenant("example-com", ["example.com"], [synth.address],
                                  users=USERS)]
        server = {"auth_failure_delay": "20ms", "max_auth_failures": 10}
        pg_open = res.add(harness.Popgate(tenants, server=server,
                                          extra_toml=limits(redis, "fail_open")))
        pg_closed = res.add(harness.Popgate(tenants, server=server,
                                            extra_toml=limits(redis, "fail_closed")))


def tearDownModule():
    res.close()


class BoundClient(RawClient):
    """A RawClient whose socket is bound to `source` (a loopback address)."""

    def __init__(self, port: int, source: str, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect((harness.LOOPBACK, port))
        self.buf = bytearray()
        self.greeting = self.readline()


class RedisLimits(harness.IntegrationTestCase):

    def attempt(self, pg, source: str, user: str, pw: str):
        """USER/PASS on a fresh connection: (reply, seconds from PASS, client)."""
        c = BoundClient(pg.port, source)
        self.addCleanup(c.close)
        c.cmd_ok(f"USER {user}")
        t0 = time.monotonic()
        r = c.cmd(f"PASS {pw}")
        return r, time.monotonic() - t0, c

    def events(self, pg, event: str) -> list[dict]:
        return pg.session_records(event=event)

    def fail_on_both(self, source: str, n: int):
        for i in range(n):
            pg = pg_open if i % 2 == 0 else pg_closed
            r, _t, _c = self.attempt(pg, source, "victim@example.com", WRONG)
            self.assertTrue(r.startswith(b"-ERR [AUTH]"), (i, r))

    def assert_blocked_on_both(self, source: str):
        for pg in (pg_open, pg_closed):
            r, took, c = self.attempt(pg, source, "victim@example.com", PW)
            self.assertEqual(r, BLOCKED, f"instance on {pg.port}")
            # No hash; answered after the capped failure delay (100 ms).
            self.assertGreaterEqual(took, 0.08)
            self.assertLess(took, 0.6)
            self.assertTrue(c.is_closed(5))

    def assert_logs_in(self, pg, source: str, user: str):
        r, took, c = self.attempt(pg, source, user, PW)
        self.assertTrue(r.startswith(b"+OK"), (pg.port, source, user, r))
        self.assertLess(took, 1.0, f"a login took {took:.2f}s")
        c.cmd_ok("QUIT")

    def test_1_failures_on_both_instances_add_up_to_one_block(self):
        src = "127.0.0.20"
        self.fail_on_both(src, 4)  # 2 on each: only together do they reach 4
        self.assert_blocked_on_both(src)
        # Another address is served by both meanwhile.
        self.assert_logs_in(pg_open, "127.0.0.21", next(FRESH))
        self.assert_logs_in(pg_closed, "127.0.0.21", next(FRESH))
        # The block sits in Redis with a TTL; no key holds a user name.
        keys = redis.command("KEYS", "it:*")
        self.assertTrue(keys, "nothing in Redis")
        for k in keys:
            self.assertNotIn(b"victim", k)
            self.assertGreater(redis.command("PTTL", k), 0, k)
        self.assertIn(b"it:ba:127.0.0.20", keys)
        # One login_block line for the block, from whichever instance set it.
        blocks = [r for pg in (pg_open, pg_closed) for r in self.events(pg, "login_block")
                  if r.get("address") == src]
        self.assertEqual(len(blocks), 1, blocks)

    def test_2_sessions_per_user_hold_across_instances(self):
        first = BoundClient(pg_open.port, "127.0.0.22")
        self.addCleanup(first.close)
        self.assertTrue(first.login("solo@example.com", PW).startswith(b"+OK"))
        r, _t, c = self.attempt(pg_closed, "127.0.0.23", "solo@example.com", PW)
        self.assertTrue(r.startswith(b"-ERR [IN-USE]"), r)
        first.cmd_ok("QUIT")
        first.close()
        # The slot is released (fire and forget): the other instance admits
        # the user again.
        deadline = time.monotonic() + harness.scaled(5)
        r = b""
        while time.monotonic() < deadline:
            r, _t, c = self.attempt(pg_closed, "127.0.0.23", "solo@example.com", PW)
            if r.startswith(b"+OK"):
                c.cmd_ok("QUIT")
                break
            time.sleep(0.05)
        self.assertTrue(r.startswith(b"+OK"), r)

    def test_3_redis_killed_then_restarted(self):
        redis.kill()
        t0 = time.monotonic()
        for i in range(5):
            self.assert_logs_in(pg_open, "127.0.0.24", next(FRESH))
        r, took, c = self.attempt(pg_closed, "127.0.0.25", "closed@example.com", PW)
        self.assertEqual(r, UNAVAILABLE)
        self.assertLess(took, 1.0, "fail_closed hung")
        self.assertTrue(c.is_closed(5))
        self.assertLess(time.monotonic() - t0, 8)
        # Log lines reach stderr a loop turn later: wait for them.
        for pg in (pg_open, pg_closed):
            self.assertIsNotNone(pg.wait_for_record(event="store_down"), pg.port)
        downs = self.events(pg_open, "store_down")
        self.assertEqual(len(downs), 1, downs)
        self.assertEqual(downs[0].get("policy"), "fail_open")
        self.assertEqual(downs[0].get("store"), "redis")
        self.assertEqual(len(self.events(pg_closed, "store_down")), 1)
        self.assertEqual(self.events(pg_closed, "store_down")[0].get("policy"),
                         "fail_closed")

        redis.start()
        # Both come back by themselves (back-off of at most a few seconds).
        deadline = time.monotonic() + harness.scaled(12)
        back = False
        while time.monotonic() < deadline and not back:
            r, _t, c = self.attempt(pg_closed, "127.0.0.26", next(FRESH), PW)
            if r.startswith(b"+OK"):
                c.cmd_ok("QUIT")
                back = True
            else:
                self.assertEqual(r, UNAVAILABLE)
                time.sleep(0.2)
        self.assertTrue(back, "the fail_closed instance never used Redis again")
        deadline = time.monotonic() + harness.scaled(12)
        while time.monotonic() < deadline and not self.events(pg_open, "store_up"):
            self.assert_logs_in(pg_open, "127.0.0.27", next(FRESH))
            time.sleep(0.2)
        self.assertIsNotNone(pg_closed.wait_for_record(event="store_up"))
        self.assertEqual(len(self.events(pg_open, "store_up")), 1)
        self.assertEqual(len(self.events(pg_closed, "store_up")), 1)
        # Shared again: a block from failures on both instances.
        time.sleep(1.2)  # past every worker's skip after the outage
        self.fail_on_both("127.0.0.28", 4)
        self.assert_blocked_on_both("127.0.0.28")
        for pg in (pg_open, pg_closed):
            for line in pg.stderr_text().splitlines():
                self.assertNotIn(PW, line)


if __name__ == "__main__":
    unittest.main()
