"""Sanity test of the Dovecot harness: talks to the real Dovecot DIRECTLY
(no popgate), so a failure here is a harness/environment problem, not a
popgate bug.  It also pins down the Dovecot behaviour the popgate tests rely
on (byte-exact CRLF messages, DELE semantics, fast [AUTH] refusals)."""

import time
import unittest

import harness
from harness import RawClient, make_message, make_big_message, expected_top

ALICE = "alice@dove.example"
BOB = "bob@dove.example"
PW = "dove-secret-1"

dc: harness.Dovecot | None = None
MSGS = [make_message(100 + i, s) for i, s in enumerate([300, 1500, 7000, 64 * 1024 + 3])]


def setUpModule():
    global dc
    dc = harness.Dovecot()
    try:
        dc.add_user(ALICE, PW, MSGS)
        dc.start()
    except Exception:
        dc.cleanup()
        raise


def tearDownModule():
    if dc is not None:
        dc.cleanup()


class DovecotDirect(harness.IntegrationTestCase):

    def test_greeting_and_capa(self):
        with RawClient(dc.port) as c:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            r, body = c.multi("CAPA")
            self.assertTrue(r.startswith(b"+OK"))
            self.assertIn(b"UIDL", body)

    def test_stat_list_uidl_retr_top_exact(self):
        with RawClient(dc.port) as c:
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            self.assertEqual(c.cmd("STAT"),
                             f"+OK {len(MSGS)} {sum(map(len, MSGS))}\r\n".encode())
            r, body = c.multi("LIST")
            self.assertEqual(harness.parse_scan_listing(body),
                             [(i + 1, str(len(m))) for i, m in enumerate(MSGS)])
            r, body = c.multi("UIDL")
            self.assertEqual(len(harness.parse_scan_listing(body)), len(MSGS))
            for i, m in enumerate(MSGS, 1):
                self.assertBytesEqual(c.retr(i), m, f"RETR {i}")
                for n in (0, 1, 5):
                    r, body = c.multi(f"TOP {i} {n}")
                    self.assertBytesEqual(body, expected_top(m, n), f"TOP {i} {n}")
            c.cmd_ok("QUIT")

    def test_curl_and_poplib(self):
        r = harness.curl(dc.port, ALICE, PW, "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, MSGS[1], "curl RETR 2")
        p = harness.pop_login(dc.port, ALICE, PW)
        try:
            self.assertBytesEqual(harness.poplib_retr_bytes(p, 3), MSGS[2], "poplib RETR 3")
        finally:
            p.quit()

    def test_wrong_password_is_fast_auth_error(self):
        for _ in range(3):  # repeated failures: no growing anvil penalty
            with RawClient(dc.port) as c:
                t0 = time.monotonic()
                r = c.login(ALICE, "wrong")
                self.assertTrue(r.startswith(b"-ERR [AUTH]"), r)
                self.assertLess(time.monotonic() - t0, 1.0)

    def test_dele_quit_deletes_disconnect_and_rset_do_not(self):
        msgs = [make_message(200 + i, 400 + i) for i in range(3)]
        user = "deltest@dove.example"
        seeded = dc.add_user(user, PW, msgs)
        keys = {s.key for s in seeded}
        self.assertEqual(dc.present_keys(user), keys)
        # DELE then abrupt close: nothing deleted.
        c = RawClient(dc.port)
        self.assertTrue(c.login(user, PW).startswith(b"+OK"))
        c.cmd_ok("DELE 1")
        c.close()
        time.sleep(0.3)
        self.assertEqual(dc.present_keys(user), keys)
        # DELE, RSET, QUIT: nothing deleted.
        with RawClient(dc.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            c.cmd_ok("DELE 1")
            c.cmd_ok("RSET")
            c.cmd_ok("QUIT")
        self.assertEqual(dc.present_keys(user), keys)
        # DELE + QUIT deletes.
        with RawClient(dc.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            c.cmd_ok("DELE 2")
            c.cmd_ok("QUIT")
        self.assertEqual(dc.present_keys(user), keys - {seeded[1].key})

    def test_big_message(self):
        big = make_big_message(7, 20 * 1024 * 1024)
        dc.add_user(BOB, PW, [big])
        with RawClient(dc.port, timeout=30) as c:
            self.assertTrue(c.login(BOB, PW).startswith(b"+OK"))
            self.assertBytesEqual(c.retr(1), big, "RETR 20MB")
            c.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
