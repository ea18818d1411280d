"""[server] backend_pipelining against a real Dovecot: the first login to a
backend waits for the USER reply and learns from CAPA that Dovecot lists
PIPELINING; every later login sends CAPA + USER + PASS in one write. Both
kinds must log in, refuse a wrong password and fetch the same bytes, with
the setting on (the default) and off."""

import poplib
import unittest

import harness
from harness import make_message, pop_login, poplib_retr_bytes

USER, PW = "erin@dove.example", "Pipe-Backend-3"
OTHER, OTHER_PW = "frank@dove.example", "Pipe-Backend-4"
MSGS = [make_message(700 + i, s) for i, s in enumerate([350, 4200, 70000])]
OTHER_MSGS = [make_message(800, 999)]

res = harness.ModuleResources()
dovecot = None
proxies: dict[bool, harness.Popgate] = {}


def setUpModule():
    global dovecot
    try:
        dovecot = harness.Dovecot()
        dovecot.add_user(USER, PW, MSGS)
        dovecot.add_user(OTHER, OTHER_PW, OTHER_MSGS)
        res.add(dovecot)
        for on in (True, False):
            proxies[on] = res.add(harness.Popgate(
                [harness.Tenant("dove", ["dove.example"], [dovecot.address],
                                users={USER: PW, OTHER: OTHER_PW})],
                server={"backend_pipelining": on, "workers": 2}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class BackendPipelining(harness.IntegrationTestCase):

    def _fetch_all(self, port, user, pw, msgs):
        p = pop_login(port, user, pw)
        try:
            self.assertEqual(p.stat()[0], len(msgs))
            for i, want in enumerate(msgs, 1):
                self.assertBytesEqual(poplib_retr_bytes(p, i), want, f"RETR {i}")
        finally:
            p.quit()

    def _run(self, on: bool):
        port = proxies[on].port
        mark = dovecot.log_mark()
        # Logins in a row, the two users interleaved, wrong passwords among
        # them: on the default setting all but the first are pipelined.
        for round_ in range(4):
            self._fetch_all(port, USER, PW, MSGS)
            with self.assertRaises(poplib.error_proto) as cm:
                pop_login(port, USER, "not-" + PW)
            self.assertIn(b"[AUTH]", cm.exception.args[0])
            self._fetch_all(port, OTHER, OTHER_PW, OTHER_MSGS)
        logins = dovecot.logins(mark)
        self.assertEqual(len([r for r in logins if r.user == USER]), 4, logins)
        self.assertEqual(len([r for r in logins if r.user == OTHER]), 4, logins)
        self.assertEqual(dovecot.error_lines(mark), [])

    def test_pipelined_logins_to_dovecot(self):
        self._run(True)

    def test_setting_off_waits_for_every_user_reply(self):
        self._run(False)

    def test_client_pipelining_behind_a_pipelined_backend_login(self):
        # The client's own commands behind PASS still reach Dovecot in
        # order, after the backend login that went in one write.
        pop_login(proxies[True].port, OTHER, OTHER_PW).quit()  # memo: PIPELINING
        c = self.raw(proxies[True].port, timeout=20)
        c.send(f"USER {USER}\r\nPASS {PW}\r\nSTAT\r\nRETR 2\r\nQUIT\r\n".encode())
        self.assertTrue(c.readline().startswith(b"+OK"))  # USER
        self.assertTrue(c.readline().startswith(b"+OK"))  # PASS
        self.assertTrue(c.readline().startswith(f"+OK {len(MSGS)} ".encode()))  # STAT
        self.assertTrue(c.readline().startswith(b"+OK"))  # RETR 2
        self.assertBytesEqual(c.read_multiline(), MSGS[1], "pipelined RETR 2")
        self.assertTrue(c.readline().startswith(b"+OK"))  # QUIT
        self.assertEqual(c.read_until_closed(5), b"")


if __name__ == "__main__":
    unittest.main()
