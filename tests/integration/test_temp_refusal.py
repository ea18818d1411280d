"""A backend's temporary refusal is no failed login (issue 8, 1.3): [IN-USE]
(the mailbox is locked by another session; pop3-synth says so when a
maildrop is already open) and [SYS/TEMP] (from a small scripted backend
here, harness.FakeBackend.refusing) are relayed at once, without
auth_failure_delay, and do not count toward max_auth_failures."""

import time
import unittest

import harness

USER, PW = "locked@example.com", "Temp-Pw-1"
TEMP_USER, TEMP_PW = "temp@temp.example", "Temp-Pw-2"
DELAY = 1.0

res = harness.ModuleResources()
synth = popgate = scripted = None


def setUpModule():
    global synth, popgate, scripted
    with harness.closing_on_error(res):
        synth = res.add(harness.Synth({USER: PW}, sizes=[100]))
        scripted = res.add(harness.FakeBackend.refusing(b"-ERR [SYS/TEMP] Try again later\r\n"))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users={USER: PW}),
            harness.Tenant("temp", ["temp.example"], [scripted.address], auth="backend"),
        ], server={"auth_failure_delay": f"{int(DELAY * 1000)}ms", "max_auth_failures": 2}))


def tearDownModule():
    res.close()


class TempRefusal(harness.IntegrationTestCase):

    def timed_login(self, c, user, pw):
        c.cmd_ok(f"USER {user}")
        t0 = time.monotonic()
        r = c.cmd(f"PASS {pw}")
        return r, time.monotonic() - t0

    def test_in_use_relayed_at_once_and_not_counted(self):
        holder = self.raw(synth.port)  # holds the maildrop's lock
        self.assertTrue(holder.login(USER, PW).startswith(b"+OK"))
        c = self.raw(popgate.port, timeout=10)
        for i in range(4):  # more than max_auth_failures
            r, took = self.timed_login(c, USER, PW)
            self.assertTrue(r.startswith(b"-ERR [IN-USE]"), (i, r))
            self.assertLess(took, DELAY / 2, f"refusal #{i} delayed {took:.2f}s")
        holder.cmd_ok("QUIT")  # releases the lock
        r, took = self.timed_login(c, USER, PW)
        self.assertTrue(r.startswith(b"+OK"), f"connection unusable after refusals: {r!r}")
        c.cmd_ok("QUIT")
        c.close()
        rec = popgate.wait_for_record(user=USER, result="ok")
        self.assertIsNotNone(rec)
        self.assertEqual(rec["auth_failures"], 0, rec)

    def test_sys_temp_relayed_at_once_and_not_counted(self):
        c = self.raw(popgate.port, timeout=10)
        for i in range(3):
            r, took = self.timed_login(c, TEMP_USER, TEMP_PW)
            self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), (i, r))
            self.assertLess(took, DELAY / 2, f"refusal #{i} delayed {took:.2f}s")
        # A real failure is still delayed and counted: the connection is
        # still open after 3 refusals, so max_auth_failures was not reached.
        r, took = self.timed_login(c, USER, "wrong")
        self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
        self.assertGreaterEqual(took, DELAY - 0.05)
        c.cmd_ok("QUIT")
        rec = popgate.wait_for_record(user=USER, result="quit")
        self.assertIsNotNone(rec)
        self.assertEqual(rec["auth_failures"], 1, rec)

    def test_result_says_backend_refused(self):
        c = self.raw(popgate.port, timeout=10)
        r, _ = self.timed_login(c, TEMP_USER, TEMP_PW)
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        c.close()
        rec = popgate.wait_for_record(user=TEMP_USER, result="backend_refused")
        self.assertIsNotNone(rec, popgate.stderr_text()[-2000:])
        self.assertEqual(rec["ended_by"], "backend")
        self.assertIn("SYS/TEMP", rec.get("detail", ""))
        self.assertEqual(rec["auth_failures"], 0)


if __name__ == "__main__":
    unittest.main()
