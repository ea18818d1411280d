"""The per-tenant auth cache (issue 10, docs/auth-cache.md) through real
logins to pop3-synth, with SHA512-CRYPT hashes in the passwd-file.

* a second login with the same user and password is answered from the
  cache ("auth_cache":"hit" in its session line) and skips the hash (alice's
  hash has 500,000 rounds: the cached login is much faster);
* a wrong password is cached too: the second try is a hit, still -ERR, and
  still answered no sooner than auth_failure_delay;
* another password, another user, an unknown user: no hit;
* auth_cache_ttl expires a verdict; auth_cache_negative_ttl = 0 caches no
  failure; auth_cache_size = 0 caches nothing;
* a reload empties the cache: after the passwd-file changes and SIGHUP,
  the old password fails at once (no hit) and the new one works."""

import time
import unittest
import warnings

import harness

SERVER = {"auth_failure_delay": "200ms"}
DELAY = 0.2
SLOW_ROUNDS = 500_000

ALICE, ALICE_PW = "alice@slow.test", "Alice-Slow-Pw-1"  # a slow hash
BOB, BOB_PW = "bob@cache.test", "Bob-Cache-Pw-2"
CAROL_CACHE, CAROL_CACHE_PW = "carol@cache.test", "Carol-Cache-Pw-7"
DAVE, DAVE_PW = "dave@nocache.test", "Dave-NoCache-Pw-3"
ERIN, ERIN_PW = "erin@short.test", "Erin-Short-Pw-4"
CAROL = "carol@reload.test"
CAROL_OLD, CAROL_NEW = "Carol-Old-Pw-5", "Carol-New-Pw-6"


def sha512_crypt(pw: str, rounds: int = 5000) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512, rounds=rounds))


def line(user: str, pw: str, rounds: int = 5000) -> str:
    return f"{user}:{{SHA512-CRYPT}}{sha512_crypt(pw, rounds)}"


def tenant(name: str, domain: str, backend: str, lines: list[str], **settings) -> harness.Tenant:
    return harness.Tenant(name, [domain], [backend], passwd_lines=lines, settings=settings)


class Attempt:
    """One connection: USER/PASS, the reply, how long PASS took, QUIT;
    then its session line (found by the client's port)."""

    def __init__(self, p: harness.Popgate, user: str, pw: str):
        with harness.RawClient(p.port) as c:
            port = c.sock.getsockname()[1]
            self.user_reply = c.cmd(f"USER {user}")
            t0 = time.monotonic()
            self.reply = c.cmd(f"PASS {pw}")
            self.took = time.monotonic() - t0
            c.cmd("QUIT")
        self.record = p.wait_for_record(event="session", client=f"{harness.LOOPBACK}:{port}")
        if self.record is None:
            raise AssertionError(f"no session line for {user} from port {port}")

    @property
    def ok(self) -> bool:
        return self.reply.startswith(b"+OK")

    @property
    def hit(self) -> bool:
        return self.record.get("auth_cache") == "hit"


res = harness.ModuleResources()
synth = gate = None


def setUpModule():
    global synth, gate
    try:
        synth = res.add(harness.Synth({ALICE: ALICE_PW, BOB: BOB_PW,
                                       CAROL_CACHE: CAROL_CACHE_PW, DAVE: DAVE_PW,
                                       ERIN: ERIN_PW}, messages=1, size=500))
        gate = res.add(harness.Popgate([
            # Alone in its tenant: its typical verification time (which
            # failed logins wait for) stays the others' few milliseconds.
            tenant("slow", "slow.test", synth.address, [line(ALICE, ALICE_PW, SLOW_ROUNDS)]),
            tenant("cache", "cache.test", synth.address,
                   [line(BOB, BOB_PW), line(CAROL_CACHE, CAROL_CACHE_PW)]),
            tenant("nocache", "nocache.test", synth.address, [line(DAVE, DAVE_PW)],
                   auth_cache_size=0),
            tenant("short", "short.test", synth.address, [line(ERIN, ERIN_PW)],
                   auth_cache_ttl="1s", auth_cache_negative_ttl="0s"),
        ], server=SERVER))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class Cached(harness.IntegrationTestCase):

    def test_second_good_login_is_a_hit_and_skips_the_hash(self):
        first = Attempt(gate, ALICE, ALICE_PW)
        self.assertTrue(first.ok, first.reply)
        self.assertFalse(first.hit, first.record)
        second = Attempt(gate, ALICE, ALICE_PW)
        self.assertTrue(second.ok, second.reply)
        self.assertTrue(second.hit, second.record)
        self.assertEqual(second.record["result"], first.record["result"])
        # 500,000 SHA-512 rounds against none: even on a busy machine the
        # hit is well under half the hashed login.
        self.assertLess(second.took, first.took / 2,
                        f"cached {second.took:.3f}s, hashed {first.took:.3f}s")

    def test_wrong_password_is_cached_negative_and_still_delayed(self):
        bad = "Not-Bobs-Password"
        first = Attempt(gate, BOB, bad)
        self.assertTrue(first.reply.startswith(b"-ERR"), first.reply)
        self.assertFalse(first.hit, first.record)
        second = Attempt(gate, BOB, bad)
        self.assertTrue(second.reply.startswith(b"-ERR"), second.reply)
        self.assertEqual(second.reply, first.reply)
        self.assertTrue(second.hit, second.record)
        self.assertEqual(second.record["auth_failures"], 1, second.record)
        self.assertGreaterEqual(second.took, DELAY - 0.01,
                                "a cached failure is answered no sooner than an uncached one")
        # The good password is its own entry: not the failure's verdict.
        good = Attempt(gate, BOB, BOB_PW)
        self.assertTrue(good.ok, good.reply)

    def test_other_password_or_user_misses(self):
        Attempt(gate, BOB, BOB_PW)
        self.assertTrue(Attempt(gate, BOB, BOB_PW).hit)
        other_pw = Attempt(gate, BOB, BOB_PW + "x")
        self.assertFalse(other_pw.ok)
        self.assertFalse(other_pw.hit, other_pw.record)
        # carol, another user of the tenant, with bob's password: no hit
        # from bob's entry.
        other_user = Attempt(gate, CAROL_CACHE, BOB_PW)
        self.assertFalse(other_user.ok)
        self.assertFalse(other_user.hit, other_user.record)
        # An unknown user's "no" is never cached.
        for _ in range(2):
            unknown = Attempt(gate, "nobody@cache.test", BOB_PW)
            self.assertFalse(unknown.ok)
            self.assertFalse(unknown.hit, unknown.record)

    def test_size_zero_never_hits(self):
        for pw, ok in ((DAVE_PW, True), (DAVE_PW, True), ("wrong", False), ("wrong", False)):
            a = Attempt(gate, DAVE, pw)
            self.assertEqual(a.ok, ok, a.reply)
            self.assertFalse(a.hit, a.record)

    def test_ttls(self):
        self.assertFalse(Attempt(gate, ERIN, ERIN_PW).hit)
        self.assertTrue(Attempt(gate, ERIN, ERIN_PW).hit)
        # auth_cache_negative_ttl = 0: failures are not cached.
        for _ in range(2):
            a = Attempt(gate, ERIN, "wrong")
            self.assertFalse(a.ok)
            self.assertFalse(a.hit, a.record)
        # auth_cache_ttl = 1s: the good verdict is gone after it.
        time.sleep(1.1)
        late = Attempt(gate, ERIN, ERIN_PW)
        self.assertTrue(late.ok, late.reply)
        self.assertFalse(late.hit, late.record)


class ReloadEmptiesTheCache(harness.IntegrationTestCase):

    def test_changed_passwd_file_applies_at_once(self):
        old_backend = self.start_synth({CAROL: CAROL_OLD}, messages=1, size=500)
        new_backend = self.start_synth({CAROL: CAROL_NEW}, messages=1, size=500)
        t = tenant("reload", "reload.test", old_backend.address, [line(CAROL, CAROL_OLD)])
        p = self.start_popgate([t], server=SERVER)
        self.assertTrue(Attempt(p, CAROL, CAROL_OLD).ok)
        cached = Attempt(p, CAROL, CAROL_OLD)
        self.assertTrue(cached.ok and cached.hit, cached.record)

        # The password changes (and the backend with it, which checks it
        # too): a cached "good" for the old one must not survive.
        t.passwd_lines = [line(CAROL, CAROL_NEW)]
        t.backends = [new_backend.address]
        p.reload_and_wait()
        old = Attempt(p, CAROL, CAROL_OLD)
        self.assertTrue(old.reply.startswith(b"-ERR"), old.reply)
        self.assertFalse(old.hit, old.record)
        self.assertEqual(old.record["auth_failures"], 1, old.record)
        self.assertEqual(old.record.get("backend", ""), "", old.record)
        new = Attempt(p, CAROL, CAROL_NEW)
        self.assertTrue(new.ok, new.reply)
        self.assertFalse(new.hit, new.record)
        self.assertEqual(new.record["backend"], new_backend.address)
        self.assertTrue(Attempt(p, CAROL, CAROL_NEW).hit)


if __name__ == "__main__":
    unittest.main()
