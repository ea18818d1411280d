"""Big messages: a 20 MB message arrives intact through popgate from
pop3-synth and from a real Dovecot (raw client, poplib and curl), and a client
that stops reading in the middle of a 20 MB RETR neither stalls other
sessions nor makes popgate buffer the message (backpressure), and still gets
every byte when it resumes."""

import socket
import threading
import time
import unittest

import harness
from harness import RawClient, make_big_message

MB = 1024 * 1024
BIG = 20 * MB
PW = "Big-Pw-20"
SYNTH_USERS = ["big@example.com", "stall@example.com", "other@example.com",
               "curl@example.com"]
DOVE_USER = "big@dove.example"
DOVE_MSGS = [make_big_message(11, BIG), harness.make_message(12, 5000)]

res = harness.ModuleResources()
synth = dovecot = popgate = None


def setUpModule():
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({u: PW for u in SYNTH_USERS}, sizes=["20m", "100k"]))
        dovecot = harness.Dovecot()
        dovecot.add_user(DOVE_USER, PW, DOVE_MSGS)
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={u: PW for u in SYNTH_USERS}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={DOVE_USER: PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class BigMessages(harness.IntegrationTestCase):

    def _raw_retr(self, user, want: bytes):
        c = self.raw(popgate.port, timeout=60)
        self.assertTrue(c.login(user, PW).startswith(b"+OK"))
        r = c.cmd("LIST 1")
        self.assertEqual(r, f"+OK 1 {len(want)}\r\n".encode())
        t0 = time.monotonic()
        got = c.retr(1)
        elapsed = time.monotonic() - t0
        self.assertBytesEqual(got, want, f"RETR of {len(want)} bytes")
        r, top = c.multi("TOP 1 5")
        self.assertBytesEqual(top, harness.expected_top(want, 5), "TOP 1 5 of the big message")
        c.cmd_ok("QUIT")
        self.assertEqual(c.read_until_closed(5), b"")
        c.close()
        self.assertLess(elapsed, 30, "20 MB over loopback should not take this long")

    def test_synth_20mb_raw(self):
        want = synth.dump("big@example.com", 1)
        self.assertEqual(len(want), BIG)
        self._raw_retr("big@example.com", want)
        # The session log counts the bytes.
        rec = popgate.wait_for_record(user="big@example.com")
        self.assertIsNotNone(rec, "no session log line")
        self.assertGreaterEqual(max(rec["bytes_in"], rec["bytes_out"]), BIG, rec)

    def test_dovecot_20mb_raw(self):
        self._raw_retr(DOVE_USER, DOVE_MSGS[0])

    def test_synth_20mb_curl(self):
        r = harness.curl(popgate.port, "curl@example.com", PW, "1", max_time=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, synth.dump("curl@example.com", 1), "curl 20 MB")

    def test_dovecot_20mb_curl_and_poplib(self):
        r = harness.curl(popgate.port, DOVE_USER, PW, "1", max_time=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertBytesEqual(r.stdout, DOVE_MSGS[0], "curl 20 MB (Dovecot)")
        p = harness.pop_login(popgate.port, DOVE_USER, PW, timeout=60)
        try:
            self.assertBytesEqual(harness.poplib_retr_bytes(p, 1), DOVE_MSGS[0],
                                  "poplib 20 MB (Dovecot)")
        finally:
            p.quit()

    def test_stalled_reader_does_not_block_others_or_buffer(self):
        want = synth.dump("stall@example.com", 1)
        rss_before = popgate.rss_kb()
        stalled = self.raw(popgate.port, timeout=60, rcvbuf=16384)
        self.assertTrue(stalled.login("stall@example.com", PW).startswith(b"+OK"))
        stalled.send(b"RETR 1\r\n")
        got = bytearray()
        while len(got) < 256 * 1024:  # read a little, then stop reading
            got += stalled.sock.recv(65536)
        time.sleep(1.0)  # let every buffer on the path fill up

        # Others are served meanwhile, promptly and correctly.
        for i in range(3):
            t0 = time.monotonic()
            with RawClient(popgate.port, timeout=20) as c:
                self.assertTrue(c.login("other@example.com", PW).startswith(b"+OK"))
                self.assertBytesEqual(c.retr(2), synth.dump("other@example.com", 2),
                                      "other session during the stall")
                c.cmd_ok("QUIT")
            self.assertLess(time.monotonic() - t0, 5.0, "other session slowed by the stall")
        # While the client does not read, popgate must not have pulled the
        # message into its own memory.
        growth_mb = (popgate.rss_kb() - rss_before) / 1024
        self.assertLess(growth_mb, 8, f"popgate RSS grew {growth_mb:.1f} MB during the stall")

        # Resume: the whole message arrives, exact.
        stalled.buf = bytearray(got)
        status = stalled.readline()
        self.assertTrue(status.startswith(b"+OK"), status)
        stalled.settimeout(60)
        body = stalled.read_multiline()
        self.assertBytesEqual(body, want, "stalled RETR after resuming")
        stalled.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
