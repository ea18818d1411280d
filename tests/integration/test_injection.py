"""Command injection through decoded credentials (issue 8, 1.1): SASL decodes
bytes that no command line may carry (CR, LF, NUL).  popgate must refuse
such a username or password (-ERR [AUTH], counted as a failed login) and
never write it into its USER/PASS lines to the backend: the password
"demo\\r\\nDELE 1" once made the backend execute DELE 1."""

import base64
import time
import unittest

import harness

BE_USER, BE_PW = "inj@backend.example", "demo"
FILE_USER, FILE_PW = "file@example.com", "demo"

res = harness.ModuleResources()
synth = popgate = None


def setUpModule():
    global synth, popgate
    with harness.closing_on_error(res):
        synth = res.add(harness.Synth({BE_USER: BE_PW, FILE_USER: FILE_PW}, messages=3,
                                      sizes=[700]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("be", ["backend.example"], [synth.address], auth="backend"),
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={FILE_USER: FILE_PW}),
        ], server={"max_auth_failures": 2, "auth_failure_delay": "200ms"}))


def tearDownModule():
    res.close()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


class Injection(harness.IntegrationTestCase):

    def message_count(self, user, pw) -> int:
        with harness.RawClient(synth.port) as c:
            self.assertTrue(c.login(user, pw).startswith(b"+OK"))
            n = int(c.cmd("STAT").split()[1])
            c.cmd("QUIT")
            return n

    def attempt(self, c, line: str) -> bytes:
        r = c.cmd(line)
        if r.startswith(b"+OK"):
            # The injection worked: the backend ran DELE 1 in our session;
            # QUIT makes it count, as a real client's QUIT would.
            c.cmd("QUIT")
        return r

    def test_sasl_plain_password_with_crlf_deletes_nothing(self):
        before = self.message_count(BE_USER, BE_PW)
        c = self.raw(popgate.port)
        r = self.attempt(c, "AUTH PLAIN " + b64(b"\0" + BE_USER.encode() + b"\0demo\r\nDELE 1"))
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        c.close()
        self.assertEqual(self.message_count(BE_USER, BE_PW), before, "DELE 1 was injected")

    def test_sasl_login_password_with_lf_or_nul(self):
        before = self.message_count(BE_USER, BE_PW)
        for pw in (b"demo\nDELE 1", b"demo\rDELE 1", b"demo\0DELE 1"):
            c = self.raw(popgate.port)
            self.assertTrue(c.cmd("AUTH LOGIN").startswith(b"+ "))
            self.assertTrue(c.cmd(b64(BE_USER.encode())).startswith(b"+ "))
            r = self.attempt(c, b64(pw))
            self.assertTrue(r.startswith(b"-ERR [AUTH]"), (pw, r))
            c.close()
        self.assertEqual(self.message_count(BE_USER, BE_PW), before)

    def test_sasl_username_with_crlf(self):
        before = self.message_count(BE_USER, BE_PW)
        c = self.raw(popgate.port)
        user = BE_USER.encode() + b"\r\nPASS demo\r\nDELE 1"
        r = self.attempt(c, "AUTH PLAIN " + b64(b"\0" + user + b"\0demo"))
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        c.close()
        self.assertEqual(self.message_count(BE_USER, BE_PW), before)

    def test_refusal_counts_as_failed_login(self):
        c = self.raw(popgate.port)
        bad = "AUTH PLAIN " + b64(b"\0" + BE_USER.encode() + b"\0demo\r\nNOOP")
        t0 = time.monotonic()
        r1 = self.attempt(c, bad)
        self.assertGreaterEqual(time.monotonic() - t0, 0.15, "no failure delay")
        self.assertTrue(r1.startswith(b"-ERR [AUTH]"), r1)
        r2 = self.attempt(c, bad)  # max_auth_failures = 2
        self.assertIn(b"too many failures", r2)
        self.assertTrue(c.is_closed(5))
        rec = popgate.wait_for_record(user=BE_USER, result="too_many_auth_failures")
        self.assertIsNotNone(rec, popgate.stderr_text()[-2000:])
        self.assertEqual(rec["auth_failures"], 2)
        # Nothing of the password in the log.
        self.assertNotIn("NOOP", popgate.stderr_text())

    def test_file_tenant_refuses_too(self):
        # The password check would fail anyway; the reply says why.
        c = self.raw(popgate.port)
        r = self.attempt(c, "AUTH PLAIN " + b64(b"\0" + FILE_USER.encode() + b"\0demo\r\nDELE 1"))
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        self.assertTrue(c.login(FILE_USER, FILE_PW).startswith(b"+OK"), "connection unusable")
        c.cmd_ok("QUIT")

    def test_ordinary_logins_still_work(self):
        c = self.raw(popgate.port)
        r = c.cmd("AUTH PLAIN " + b64(b"\0" + BE_USER.encode() + b"\0" + BE_PW.encode()))
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertTrue(c.cmd("STAT").startswith(b"+OK"))
        c.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
