"""DELE semantics through popgate (RFC 1939 UPDATE state):
DELE + QUIT deletes; DELE then an abrupt disconnect (close, RST, or half-close)
deletes nothing, because popgate never sends QUIT on the client's behalf; RSET
undoes DELE.  Against pop3-synth (deletion visible in a later session) and a
real Dovecot (the maildir files themselves are checked)."""

import socket
import struct
import time
import unittest

import harness
from harness import RawClient, make_message

PW = "Del-Pw-5521"
SIZES = [300, 1200, 2500, 4000]
# One mailbox per test so tests are independent of each other and of order.
CASES = ["quit", "close", "rst", "halfclose", "rset", "poplib"]

res = harness.ModuleResources()
synth = dovecot = popgate = None


def synth_user(case):
    return f"{case}@example.com"


def dove_user(case):
    return f"{case}@dove.example"


def setUpModule():
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({synth_user(c): PW for c in CASES}, sizes=SIZES))
        dovecot = harness.Dovecot()
        for i, c in enumerate(CASES):
            dovecot.add_user(dove_user(c), PW,
                             [make_message(1000 * i + k, s) for k, s in enumerate(SIZES)])
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={synth_user(c): PW for c in CASES}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={dove_user(c): PW for c in CASES}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class DeleteMixin:
    def user(self, case) -> str:
        raise NotImplementedError

    def mailbox_state(self, case) -> list[str]:
        """UIDLs/keys of the messages still in the mailbox, read at the source
        (Dovecot: maildir; synth: a direct session), after the backend has
        finished with the previous session."""
        raise NotImplementedError

    def original_state(self, case) -> list[str]:
        raise NotImplementedError

    def login(self, case) -> RawClient:
        c = RawClient(popgate.port)
        self.addCleanup(c.close)
        r = c.login(self.user(case), PW)
        self.assertTrue(r.startswith(b"+OK"), r)
        return c

    def test_dele_quit_deletes(self):
        c = self.login("quit")
        r = c.cmd("DELE 2")
        self.assertTrue(r.startswith(b"+OK"), r)
        r = c.cmd("DELE 4")
        self.assertTrue(r.startswith(b"+OK"), r)
        # Deleted messages are gone for the rest of this session already.
        self.assertTrue(c.cmd("RETR 2").startswith(b"-ERR"))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 2 "))
        r = c.cmd("QUIT")
        self.assertTrue(r.startswith(b"+OK"), r)
        self.assertEqual(c.read_until_closed(5), b"")
        orig = self.original_state("quit")
        self.assertEqual(self.mailbox_state("quit"), [orig[0], orig[2]])
        # A new session through popgate sees the same.
        c = self.login("quit")
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 2 "))
        c.cmd_ok("QUIT")

    def _dele_then(self, case, how):
        c = self.login(case)
        c.cmd_ok("DELE 1")
        c.cmd_ok("DELE 3")
        if how == "close":
            c.close()
        elif how == "rst":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif how == "halfclose":
            c.sock.shutdown(socket.SHUT_WR)
            # popgate passes the FIN on; the backend ends the session without
            # an UPDATE state and closes; popgate then closes towards us.
            c.read_until_closed(10)
            c.close()
        self.assertEqual(self.mailbox_state(case), self.original_state(case),
                         f"DELE then {how} without QUIT must not delete")
        self.assertNoQuitSent(case)

    def assertNoQuitSent(self, case):
        pass  # only observable with Dovecot (its log says how a session ended)

    def test_dele_then_close_does_not_delete(self):
        self._dele_then("close", "close")

    def test_dele_then_rst_does_not_delete(self):
        self._dele_then("rst", "rst")

    def test_dele_then_halfclose_does_not_delete(self):
        self._dele_then("halfclose", "halfclose")

    def test_rset_undoes_dele(self):
        c = self.login("rset")
        c.cmd_ok("DELE 1")
        c.cmd_ok("DELE 2")
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 2 "))
        c.cmd_ok("RSET")
        self.assertTrue(c.cmd("STAT").startswith(f"+OK {len(SIZES)} ".encode()))
        c.cmd_ok("QUIT")
        self.assertEqual(self.mailbox_state("rset"), self.original_state("rset"))

    def test_poplib_dele_quit(self):
        p = harness.pop_login(popgate.port, self.user("poplib"), PW)
        p.dele(1)
        p.quit()
        self.assertEqual(self.mailbox_state("poplib"), self.original_state("poplib")[1:])


class DeleteViaSynth(DeleteMixin, harness.IntegrationTestCase):
    _orig: dict = {}

    def user(self, case):
        return synth_user(case)

    def _uidls_direct(self, case):
        def attempt():
            with RawClient(synth.port) as c:
                r = c.login(self.user(case), PW)
                if r.startswith(b"-ERR [IN-USE]"):
                    return None  # the previous session is still being torn down
                if not r.startswith(b"+OK"):
                    raise AssertionError(r)
                r, body = c.multi("UIDL")
                c.cmd_ok("QUIT")
                return [u for _, u in harness.parse_scan_listing(body)]
        v = harness.wait_until(attempt, 10, 0.1)
        self.assertIsNotNone(v, "mailbox still locked 10s after the session ended")
        return v

    def original_state(self, case):
        # UIDLs are a pure function of (user, n, size): compute them from a
        # second synth with the same flags, so nothing of this one is touched.
        if case not in DeleteViaSynth._orig:
            other = harness.Synth({self.user(case): PW}, sizes=SIZES)
            with other:
                with RawClient(other.port) as c:
                    c.login(self.user(case), PW)
                    _, body = c.multi("UIDL")
            DeleteViaSynth._orig[case] = [u for _, u in harness.parse_scan_listing(body)]
        return DeleteViaSynth._orig[case]

    def mailbox_state(self, case):
        return self._uidls_direct(case)


class DeleteViaDovecot(DeleteMixin, harness.IntegrationTestCase):
    def user(self, case):
        return dove_user(case)

    def original_state(self, case):
        return [s.key for s in dovecot.seeded[self.user(case)]]

    def mailbox_state(self, case):
        user = self.user(case)
        # Wait until Dovecot has finished the session (its log says
        # "Disconnected" for every login of this user), then read the maildir.
        def settled():
            log = dovecot.log()
            logins = log.count(f"Login: user=<{user}>")
            ends = sum(1 for l in log.splitlines()
                       if f"pop3({user})" in l and "Disconnected" in l)
            return logins > 0 and logins == ends
        self.assertTrue(harness.wait_until(settled, 10),
                        "Dovecot session did not end" + dovecot.log()[-2000:])
        present = dovecot.present_keys(user)
        return [k for k in self.original_state(case) if k in present]

    def assertNoQuitSent(self, case):
        user = self.user(case)
        ends = [l for l in dovecot.log().splitlines()
                if f"pop3({user})" in l and "Disconnected" in l]
        self.assertTrue(ends)
        # "Disconnected: Logged out ..." would mean a QUIT reached Dovecot.
        self.assertNotIn("Logged out", ends[-1], f"popgate sent QUIT for the client: {ends[-1]}")


class ForwardIdleTimeout(harness.IntegrationTestCase):
    """forward_idle_timeout closes an idle forwarded session without QUIT, so
    DELE marks made before the silence are discarded."""

    def test_idle_forwarded_session_closed_without_quit(self):
        user = "idle@example.com"
        s = self.start_synth({user: PW}, sizes=SIZES)
        p = self.start_popgate([harness.Tenant("example-com", ["example.com"], [s.address],
                                               users={user: PW})],
                               server={"forward_idle_timeout": "1s"})
        c = self.raw(p.port)
        self.assertTrue(c.login(user, PW).startswith(b"+OK"))
        # Activity keeps it open past the timeout ...
        for _ in range(3):
            time.sleep(0.5)
            c.cmd_ok("NOOP")
        c.cmd_ok("DELE 1")
        # ... silence closes it.
        t0 = time.monotonic()
        try:
            c.read_until_closed(5)
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 3.0)

        def count():
            with RawClient(s.port) as d:
                r = d.login(user, PW)
                if r.startswith(b"-ERR [IN-USE]"):
                    return None
                return d.cmd("STAT")
        st = harness.wait_until(count, 5, 0.1)
        self.assertTrue(st and st.startswith(f"+OK {len(SIZES)} ".encode()),
                        f"DELE applied after an idle close: {st!r}")


if __name__ == "__main__":
    unittest.main()
