"""Multi-tenancy: tenants on different backends each see only their own mail
(two pop3-synth and a real Dovecot behind one popgate listener), the same
local part in two domains reaches two different mailboxes, `strip-domain`
sends the bare local part to the backend, and a tenant with two backends
keeps every user on one backend (consistent hashing) while using both."""

import unittest

import harness
from harness import RawClient, make_message

PW_A, PW_B, PW_C, PW_D = "Ten-A-pw", "Ten-B-pw", "Ten-C-pw", "Ten-D-pw"
A = "alice@example.com"      # synth 1
B = "alice@example.org"      # synth 2: same local part, other tenant
C = "carol@dove.example"     # Dovecot
D = "dave@strip.example"     # synth 3, backend knows only "dave"
POOL_USERS = [f"u{i}@pool.example" for i in range(24)]
POOL_PW = "Pool-pw"

res = harness.ModuleResources()
s1 = s2 = s3 = p1 = p2 = dovecot = popgate = None
C_MSGS = [make_message(900 + i, s) for i, s in enumerate([640, 1280, 2560])]


def setUpModule():
    global s1, s2, s3, p1, p2, dovecot, popgate
    try:
        s1 = res.add(harness.Synth({A: PW_A}, sizes=[1001, 1002, 1003]))
        s2 = res.add(harness.Synth({B: PW_B}, sizes=[2001, 2002]))
        s3 = res.add(harness.Synth({"dave": PW_D}, sizes=[3001]))
        # Pool backends: same users, different message sizes, so a session
        # tells which backend it reached.
        p1 = res.add(harness.Synth({u: POOL_PW for u in POOL_USERS}, sizes=[111]))
        p2 = res.add(harness.Synth({u: POOL_PW for u in POOL_USERS}, sizes=[222]))
        dovecot = harness.Dovecot()
        dovecot.add_user(C, PW_C, C_MSGS)
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("t-com", ["example.com"], [s1.address], users={A: PW_A}),
            harness.Tenant("t-org", ["example.org"], [s2.address], users={B: PW_B}),
            harness.Tenant("t-dove", ["dove.example"], [dovecot.address], users={C: PW_C}),
            harness.Tenant("t-strip", ["strip.example"], [s3.address], users={D: PW_D},
                           username="strip-domain"),
            harness.Tenant("t-pool", ["pool.example"], [p1.address, p2.address],
                           users={u: POOL_PW for u in POOL_USERS}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class Tenants(harness.IntegrationTestCase):

    def session(self, user, pw) -> tuple[bytes, list[bytes]]:
        c = self.raw(popgate.port, timeout=20)
        r = c.login(user, pw)
        self.assertTrue(r.startswith(b"+OK"), f"{user}: {r!r}")
        st = c.cmd("STAT")
        n = int(st.split()[1])
        msgs = [c.retr(i) for i in range(1, n + 1)]
        c.cmd_ok("QUIT")
        return st, msgs

    def test_each_tenant_sees_only_its_mail(self):
        cases = [(A, PW_A, s1.dumps(A)), (B, PW_B, s2.dumps(B)), (C, PW_C, C_MSGS),
                 (D, PW_D, s3.dumps("dave"))]
        for user, pw, want in cases:
            with self.subTest(user=user):
                st, got = self.session(user, pw)
                self.assertEqual(len(got), len(want), st)
                for i, (g, w) in enumerate(zip(got, want), 1):
                    self.assertBytesEqual(g, w, f"{user} message {i}")

    def test_passwords_do_not_cross_tenants(self):
        for user, pw in ((A, PW_B), (B, PW_A), (C, PW_A), (A, PW_C), (D, PW_A)):
            with self.subTest(user=user, pw=pw):
                c = self.raw(popgate.port)
                r = c.login(user, pw)
                self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_bare_local_part_is_not_routed(self):
        # No default tenant on this listener: "dave" alone has no tenant.
        c = self.raw(popgate.port)
        r = c.login("dave", PW_D)
        self.assertTrue(r.startswith(b"-ERR"), r)

    def test_pool_users_stick_to_one_backend_and_both_are_used(self):
        def which(user):
            c = self.raw(popgate.port)
            r = c.login(user, POOL_PW)
            self.assertTrue(r.startswith(b"+OK"), r)
            st = c.cmd("STAT")
            c.cmd_ok("QUIT")
            c.close()
            return {b"+OK 1 111\r\n": "p1", b"+OK 1 222\r\n": "p2"}.get(st, st)

        first = {u: which(u) for u in POOL_USERS}
        self.assertTrue(set(first.values()) <= {"p1", "p2"}, first)
        self.assertEqual(set(first.values()), {"p1", "p2"},
                         f"24 users all on one backend of two: {first}")
        for u in POOL_USERS[:8]:
            for _ in range(2):
                self.assertEqual(which(u), first[u], f"{u} moved between backends")
        # The session log names the backend the user was sent to.
        for u in POOL_USERS[:4]:
            rec = popgate.wait_for_record(user=u)
            self.assertIsNotNone(rec, f"no session log for {u}")
            want = p1.address if first[u] == "p1" else p2.address
            self.assertEqual(rec.get("backend"), want)


class DefaultTenant(harness.IntegrationTestCase):
    def test_bare_username_goes_to_default_tenant(self):
        s = self.start_synth({"dave": PW_D, "erin@example.net": PW_D}, sizes=[444])
        p = self.start_popgate([
            harness.Tenant("t-def", ["example.net"], [s.address],
                           users={"dave": PW_D, "erin@example.net": PW_D}),
        ], default_tenant="t-def")
        for user in ("dave", "DAVE", "erin@example.net"):
            with self.subTest(user=user):
                with RawClient(p.port) as c:
                    r = c.login(user, PW_D)
                    self.assertTrue(r.startswith(b"+OK"), r)
                    self.assertEqual(c.cmd("STAT"), b"+OK 1 444\r\n")
                    c.cmd_ok("QUIT")
        rec = p.wait_for_record(user="dave")
        self.assertIsNotNone(rec)
        self.assertEqual(rec["tenant"], "t-def")
        # A domain no tenant owns is still refused, default tenant or not.
        with RawClient(p.port) as c:
            self.assertTrue(c.login("dave@other.example", PW_D).startswith(b"-ERR [AUTH]"))


if __name__ == "__main__":
    unittest.main()
