"""Sanity test of pop3-synth and of the harness, DIRECTLY (no popgate).

The popgate tests compare what comes through popgate with what pop3-synth
serves and with `pop3-synth --dump`; this module pins down that the synth
itself gets those right, so a failure elsewhere can be attributed."""

import time
import unittest

import harness
from harness import RawClient, expected_top

ALICE = "alice@example.com"
PW = "synth-pw-1"
SIZES = [300, 2048, 4097, 70000]

synth: harness.Synth | None = None


def setUpModule():
    global synth
    synth = harness.Synth({ALICE: PW, "del@example.com": PW, "lock@example.com": PW},
                          sizes=SIZES)
    try:
        synth.start()
    except Exception:
        synth.cleanup()
        raise


def tearDownModule():
    if synth is not None:
        synth.cleanup()


class SynthDirect(harness.IntegrationTestCase):

    def test_dump_sizes_and_dot_lines(self):
        msgs = synth.dumps(ALICE)
        self.assertEqual([len(m) for m in msgs], SIZES)
        self.assertTrue(any(l.startswith(b".") for l in msgs[1].split(b"\r\n")),
                        "messages must contain lines starting with '.'")

    def test_stat_list_uidl_retr_top(self):
        msgs = synth.dumps(ALICE)
        with RawClient(synth.port) as c:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            self.assertEqual(c.cmd("STAT"), f"+OK {len(msgs)} {sum(SIZES)}\r\n".encode())
            r, body = c.multi("LIST")
            self.assertEqual(harness.parse_scan_listing(body),
                             [(i + 1, str(s)) for i, s in enumerate(SIZES)])
            r, body = c.multi("UIDL")
            uidls = harness.parse_scan_listing(body)
            self.assertEqual(len({u for _, u in uidls}), len(msgs))
            for i, m in enumerate(msgs, 1):
                self.assertBytesEqual(c.retr(i), m, f"RETR {i}")
                for n in (0, 2):
                    r, body = c.multi(f"TOP {i} {n}")
                    self.assertBytesEqual(body, expected_top(m, n), f"TOP {i} {n}")
            c.cmd_ok("QUIT")

    def test_in_use(self):
        with RawClient(synth.port) as a, RawClient(synth.port) as b:
            self.assertTrue(a.login("lock@example.com", PW).startswith(b"+OK"))
            r = b.login("lock@example.com", PW)
            self.assertTrue(r.startswith(b"-ERR [IN-USE]"), r)

    def test_dele_semantics(self):
        u = "del@example.com"
        c = RawClient(synth.port)
        c.login(u, PW)
        c.cmd_ok("DELE 1")
        c.close()
        # The lock is released once the synth notices the close.
        def stat():
            with RawClient(synth.port) as c2:
                r = c2.login(u, PW)
                if r.startswith(b"-ERR [IN-USE]"):
                    return None
                return c2.cmd("STAT")
        s = harness.wait_until(stat, 5)
        self.assertTrue(s.startswith(f"+OK {len(SIZES)} ".encode()), s)
        with RawClient(synth.port) as c:
            c.login(u, PW)
            c.cmd_ok("DELE 1")
            c.cmd_ok("QUIT")
        with RawClient(synth.port) as c:
            c.login(u, PW)
            self.assertTrue(c.cmd("STAT").startswith(f"+OK {len(SIZES) - 1} ".encode()))

    def test_curl(self):
        r = harness.curl(synth.port, ALICE, PW, "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, synth.dump(ALICE, 2), "curl RETR 2")


if __name__ == "__main__":
    unittest.main()
