"""Authentication and the pre-login front end of popgate.

wrong password, unknown domain, max failures, PASS without USER, unknown
commands before login, case-insensitive commands and bare LF, password
schemes in the passwd-file, `auth = "backend"` tenants (pop3-synth and a real
Dovecot decide), and username tricks that could reach another tenant."""

import shutil
import subprocess
import time
import unittest

import harness
from harness import RawClient

A_USER, A_PW = "alice@example.com", "Alice-Pw-7x!q"
ORG_ALICE, ORG_ALICE_PW = "alice@example.org", "OrgAlice-Pw-2"
BOB, BOB_PW = "bob@example.org", "Bob-Pw-9"
SPACE_USER, SPACE_PW = "spacey@example.com", "open sesame please"
DAN, DAN_PW = "dan@backend.example", "Dan-Backend-Pw-4"
ERIN, ERIN_PW = "erin@dove.example", "Erin-Dove-Pw-8"
SCHEMES = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I"]
HASH_PW = "Hashed-Pw-61"

res = harness.ModuleResources()
synth_com = synth_org = synth_be = dovecot = popgate = None
hashed_users: list[str] = []


def _hash(scheme: str, pw: str) -> str | None:
    if not shutil.which("doveadm"):
        return None
    r = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", pw], capture_output=True,
                       text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.startswith("{") else None


def setUpModule():
    global synth_com, synth_org, synth_be, dovecot, popgate
    try:
        lines = []
        for s in SCHEMES:
            h = _hash(s, HASH_PW)
            if h:
                u = f"{s.lower()}@example.com"
                hashed_users.append(u)
                lines.append(f"{u}:{h}")
        com_users = {A_USER: A_PW, SPACE_USER: SPACE_PW}
        synth_com = res.add(harness.Synth({**com_users, **{u: HASH_PW for u in hashed_users}},
                                          sizes=[500, 600, 700]))
        synth_org = res.add(harness.Synth({BOB: BOB_PW, ORG_ALICE: ORG_ALICE_PW},
                                          sizes=[1500, 1600]))
        synth_be = res.add(harness.Synth({DAN: DAN_PW}, sizes=[800]))
        dovecot = harness.Dovecot()
        dovecot.add_user(ERIN, ERIN_PW, [harness.make_message(77, 900)])
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth_com.address],
                           users=com_users, passwd_lines=lines),
            harness.Tenant("example-org", ["example.org"], [synth_org.address],
                           users={BOB: BOB_PW, ORG_ALICE: ORG_ALICE_PW}),
            harness.Tenant("backend-synth", ["backend.example"], [synth_be.address],
                           auth="backend"),
            harness.Tenant("backend-dove", ["dove.example"], [dovecot.address],
                           auth="backend"),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def alice_view(port=None) -> tuple[bytes, bytes]:
    with RawClient(port or synth_com.port) as c:
        c.login(A_USER, A_PW)
        st = c.cmd("STAT")
        _, uidl = c.multi("UIDL")
        c.cmd("QUIT")
    return st, uidl


class AuthBase(harness.IntegrationTestCase):
    def conn(self, **kw) -> RawClient:
        return self.raw(popgate.port, **kw)

    def assertNormalSession(self, user=A_USER, pw=A_PW):
        c = self.conn()
        r = c.login(user, pw)
        self.assertTrue(r.startswith(b"+OK"), f"normal login after the test: {r!r}")
        self.assertTrue(c.cmd("STAT").startswith(b"+OK"))
        c.cmd_ok("QUIT")

    def assertRefused(self, user: bytes, pw: bytes, what: str) -> bytes:
        """The login must not succeed: -ERR at USER or at PASS."""
        c = self.conn()
        c.send(b"USER " + user + b"\r\n")
        r = c.readline()
        if r.startswith(b"-ERR"):
            return r
        self.assertTrue(r.startswith(b"+OK"), f"{what}: USER -> {r!r}")
        c.send(b"PASS " + pw + b"\r\n")
        r = c.readline()
        self.assertTrue(r.startswith(b"-ERR"), f"{what}: login must be refused, got {r!r}")
        return r


class PasswordChecks(AuthBase):

    def test_correct_password(self):
        self.assertNormalSession()

    def test_wrong_password_is_auth_error_then_retry_works(self):
        c = self.conn()
        c.cmd_ok(f"USER {A_USER}")
        r = c.cmd("PASS wrong-password")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        # One failure does not close the connection; a retry succeeds.
        self.assertTrue(c.login(A_USER, A_PW).startswith(b"+OK"))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        c.cmd_ok("QUIT")

    def test_unknown_user_in_known_domain(self):
        r = self.assertRefused(b"nobody@example.com", b"whatever", "unknown user")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_unknown_domain_is_auth_error(self):
        r = self.assertRefused(b"alice@unknown.example", A_PW.encode(), "unknown domain")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        self.assertNormalSession()

    def test_three_failures_close_the_connection(self):
        c = self.conn()
        for i in range(3):
            r = c.login(A_USER, f"bad-{i}")
            self.assertTrue(r.startswith(b"-ERR"), r)
        rest = c.read_until_closed(5)
        self.assertEqual(rest, b"", "nothing but a close after the 3rd failure")
        self.assertNormalSession()

    def test_other_tenants_password_does_not_work(self):
        r = self.assertRefused(A_USER.encode(), ORG_ALICE_PW.encode(), "org password on com")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_password_with_spaces(self):
        # RFC 1939 7: PASS has one argument; spaces may be part of it.
        self.assertNormalSession(SPACE_USER, SPACE_PW)

    def test_hashed_password_schemes(self):
        if not hashed_users:
            self.skipTest("doveadm not available to make hashes")
        for u in hashed_users:
            with self.subTest(user=u):
                c = self.conn()
                self.assertTrue(c.login(u, "not-it").startswith(b"-ERR [AUTH]"))
                r = c.login(u, HASH_PW)
                self.assertTrue(r.startswith(b"+OK"), f"{u}: {r!r}")
                self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
                c.cmd_ok("QUIT")

    def test_second_concurrent_login_in_use(self):
        a = self.conn()
        self.assertTrue(a.login(BOB, BOB_PW).startswith(b"+OK"))
        b = self.conn()
        r = b.login(BOB, BOB_PW)
        # The backend refuses a second session on a locked maildrop.
        self.assertTrue(r.startswith(b"-ERR [IN-USE]"), r)
        self.assertTrue(a.cmd("STAT").startswith(b"+OK 2 "))
        a.cmd_ok("QUIT")


class BackendAuth(AuthBase):
    """auth = "backend": the backend's answer to USER/PASS is the verdict."""

    def test_synth_refusal_relayed(self):
        c = self.conn()
        r = c.login(DAN, "wrong")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_synth_success(self):
        c = self.conn()
        r = c.login(DAN, DAN_PW)
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertEqual(c.cmd("STAT"), b"+OK 1 800\r\n")
        c.cmd_ok("QUIT")

    def test_synth_unknown_user_refused(self):
        r = self.assertRefused(b"nobody@backend.example", b"x", "backend unknown user")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_dovecot_refusal_relayed(self):
        c = self.conn()
        r = c.login(ERIN, "wrong")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)

    def test_dovecot_success(self):
        c = self.conn()
        r = c.login(ERIN, ERIN_PW)
        self.assertEqual(r, b"+OK Logged in.\r\n")  # Dovecot's own +OK, relayed
        self.assertEqual(c.cmd("STAT"), b"+OK 1 900\r\n")
        self.assertBytesEqual(c.retr(1), harness.make_message(77, 900), "RETR via backend auth")
        c.cmd_ok("QUIT")


class PreLoginCommands(AuthBase):

    def test_pass_without_user(self):
        c = self.conn()
        r = c.cmd(f"PASS {A_PW}")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertTrue(c.login(A_USER, A_PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")

    def test_unknown_and_transaction_commands_before_login(self):
        c = self.conn()
        for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 0", "NOOP",
                    "RSET", "FOO", "XYZZY 1 2 3", "APOP alice@example.com 0123456789abcdef"):
            r = c.cmd(cmd)
            self.assertTrue(r.startswith(b"-ERR"), f"{cmd} -> {r!r}")
        self.assertTrue(c.login(A_USER, A_PW).startswith(b"+OK"))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        c.cmd_ok("QUIT")

    def test_empty_line(self):
        c = self.conn()
        r = c.cmd("")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertTrue(c.login(A_USER, A_PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")

    def test_quit_before_login(self):
        c = self.conn()
        r = c.cmd("QUIT")
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertEqual(c.read_until_closed(5), b"")

    def test_lowercase_commands_and_bare_lf(self):
        c = self.conn()
        c.send(b"capa\n")
        r = c.readline()
        self.assertTrue(r.startswith(b"+OK"), r)
        c.read_multiline()
        c.send(f"user {A_USER}\n".encode())
        self.assertTrue(c.readline().startswith(b"+OK"))
        c.send(f"pAsS {A_PW}\n".encode())
        r = c.readline()
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        c.cmd_ok("QUIT")

    def test_byte_at_a_time(self):
        c = self.conn()
        for b in f"USER {A_USER}\r\nPASS {A_PW}\r\nSTAT\r\n".encode():
            c.send(bytes([b]))
            time.sleep(0.001)
        self.assertTrue(c.readline().startswith(b"+OK"))
        self.assertTrue(c.readline().startswith(b"+OK"))
        self.assertTrue(c.readline().startswith(b"+OK 3 "))
        c.cmd_ok("QUIT")


class UsernameTricks(AuthBase):
    """A username must reach exactly one tenant: either canonicalised or
    refused, never a mix (e.g. one tenant's password check and another's
    backend)."""

    def login_outcome(self, user: bytes, pw: bytes) -> tuple[bytes, bytes | None, bytes | None]:
        c = self.conn()
        c.send(b"USER " + user + b"\r\n")
        r = c.readline()
        if not r.startswith(b"+OK"):
            return r, None, None
        c.send(b"PASS " + pw + b"\r\n")
        r = c.readline()
        if not r.startswith(b"+OK"):
            return r, None, None
        st = c.cmd("STAT")
        _, uidl = c.multi("UIDL")
        c.cmd("QUIT")
        return r, st, uidl

    def test_uppercase_is_same_mailbox(self):
        want = alice_view()
        for u in ("ALICE@EXAMPLE.COM", "Alice@Example.Com", "alice@EXAMPLE.com"):
            with self.subTest(user=u):
                r, st, uidl = self.login_outcome(u.encode(), A_PW.encode())
                self.assertTrue(r.startswith(b"+OK"), f"{u}: {r!r}")
                self.assertEqual((st, uidl), want, f"{u} must be alice@example.com's mailbox")

    def test_double_at(self):
        com = alice_view()
        for user in (b"alice@example.com@example.org", b"alice@example.org@example.com"):
            for pw in (A_PW.encode(), ORG_ALICE_PW.encode()):
                with self.subTest(user=user, pw=pw):
                    r, st, uidl = self.login_outcome(user, pw)
                    if r.startswith(b"+OK"):
                        # Canonicalised to exactly one tenant: then it must
                        # be that tenant's password AND that tenant's mailbox.
                        with RawClient(synth_org.port) as d:
                            d.login(ORG_ALICE, ORG_ALICE_PW)
                            org = (d.cmd("STAT"), d.multi("UIDL")[1])
                            d.cmd("QUIT")
                        ok = ((st, uidl) == com and pw == A_PW.encode()) or \
                             ((st, uidl) == org and pw == ORG_ALICE_PW.encode())
                        self.assertTrue(ok, f"{user!r}/{pw!r} logged in to an unexpected mailbox {st!r}")
                    else:
                        self.assertTrue(r.startswith(b"-ERR"), r)

    def test_refused_names(self):
        for user in (b"al ice@example.com", b"alice @example.com", b"alice@ example.com",
                     b"alice\x01@example.com", b"alice@example.com\x01", b"alice@exam\x7fple.com",
                     b"alice@example.com\tx", b"@example.com", b"alice@", b"",
                     b"alice%example.com", b"alice@.example.com",
                     b"a" * 200 + b"@example.com", b"alice@example.com\xc3\xa9",
                     b"alice@@example.com"):
            with self.subTest(user=user):
                self.assertRefused(user, A_PW.encode(), f"user {user!r}")
        self.assertNormalSession()

    def test_surrounding_whitespace(self):
        # Either trimmed to alice@example.com (same mailbox) or refused.
        want = alice_view()
        for user in (b" alice@example.com", b"alice@example.com ", b"alice@example.com\t",
                     b"alice@example.com."):
            with self.subTest(user=user):
                r, st, uidl = self.login_outcome(user, A_PW.encode())
                if r.startswith(b"+OK"):
                    self.assertEqual((st, uidl), want)
                else:
                    self.assertTrue(r.startswith(b"-ERR"), r)


if __name__ == "__main__":
    unittest.main()
