"""After the backend's end (EOF or reset) a forwarded session ends: the client
gets server.client_drain_timeout to read what was sent, then popgate closes
its side, whether or not the client reads or closes (issue 8, item 15).
Before, popgate half-closed the client and kept both descriptors until the
client closed or forward_idle_timeout (30 min) passed.

The backend is harness.FakeBackend.ending() (also used by test_forward_ends):
a POP3 backend in Python threads on 127.0.0.1 that logs anyone in and then
obeys test commands: BYE (answer, close), RST (reset), BIG n (n bytes, then
close)."""

import socket
import time
import unittest

import harness

PW = "Backend-End-Pw"
USER = "u@end.example"
DRAIN = 1.0
MARGIN = 4.0  # generous: before the fix popgate held the client for 30 min


def popgate_saw_fin_from(backend_port: int) -> bool:
    """True once no connection to `backend_port` is ESTABLISHED any more on
    our side: the backend's FIN has reached popgate (CLOSE_WAIT, or popgate
    has already closed its end; /proc/net/tcp, state 01 = ESTABLISHED)."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if int(parts[2].split(":")[1], 16) == backend_port and parts[3] == "01":
                return False
    return True


class BackendEnd(harness.IntegrationTestCase):

    def setUp(self):
        self.backend = harness.FakeBackend.ending()
        self.addCleanup(self.backend.cleanup)

    def popgate(self, **server):
        cfg = {"client_drain_timeout": f"{int(DRAIN * 1000)}ms"}
        cfg.update(server)
        return self.start_popgate(
            [harness.Tenant("end", ["end.example"], [self.backend.address],
                            users={USER: PW})], server=cfg)

    def logged_in(self, p):
        c = self.raw(p.port, timeout=30)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        return c

    def assert_closed_within(self, p, c, bound: float, t0: float):
        ours = (harness.LOOPBACK, p.port)
        peer = c.sock.getsockname()
        self.assertTrue(harness.popgate_holds_connection(p.proc.pid, ours, peer) or
                        time.monotonic() - t0 < bound,
                        "could not find popgate's socket for the client")
        gone = harness.wait_until(
            lambda: not harness.popgate_holds_connection(p.proc.pid, ours, peer),
            bound + 10, 0.05)
        elapsed = time.monotonic() - t0
        self.assertTrue(gone, "popgate still holds the client's connection")
        self.assertLess(elapsed, bound,
                        f"popgate held the client {elapsed:.2f}s after the backend's end")
        return elapsed

    def assert_backend_end_closes(self, p, c, result: str):
        """The backend ends the session (the command is sent): popgate lets
        the client go within the drain time, and logs `result`."""
        self.assertTrue(self.backend.closed.wait(5))
        t0 = time.monotonic()
        self.assert_closed_within(p, c, DRAIN + MARGIN, t0)
        rec = p.wait_for_record(5, client="%s:%d" % c.sock.getsockname())
        self.assertIsNotNone(rec, "no session line")
        self.assertEqual(rec["result"], result, rec)

    def test_backend_close_client_never_reads_nor_closes(self):
        p = self.popgate()
        c = self.logged_in(p)
        c.send(b"BYE\r\n")  # the backend answers and closes; we never read
        self.assert_backend_end_closes(p, c, "backend_closed")
        # What was sent before the end is still there for the client.
        self.assertEqual(c.readline(), b"+OK bye\r\n")

    def test_backend_reset_client_never_closes(self):
        p = self.popgate()
        c = self.logged_in(p)
        c.cmd_ok("NOOP")
        c.send(b"RST\r\n")
        self.assert_backend_end_closes(p, c, "backend_reset")

    def test_client_that_reads_and_closes_is_not_cut_short(self):
        # A long drain time: a client that reads what was sent and closes
        # ends the session at once, and gets every byte.
        p = self.popgate(client_drain_timeout="30s")
        c = self.logged_in(p)
        c.send(b"BIG 300000\r\n")
        t0 = time.monotonic()
        got = c.read_until_closed(10)
        self.assertTrue(got.startswith(b"+OK here\r\n"))
        self.assertGreaterEqual(len(got), 300000)
        c.close()
        self.assertLess(time.monotonic() - t0, 10)
        rec = p.wait_for_record(5, user=USER)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["result"], "backend_closed", rec)

    def test_backend_end_behind_a_stalled_client(self):
        # The backend's last bytes and FIN wait in popgate's buffers behind a
        # client that reads nothing: popgate still lets go after about the
        # drain time (it looks at the backend while it waits on the client).
        # Sized to be more than the client's receive buffer and popgate's
        # send buffer hold, so popgate's pipe is stuck, and less than all
        # buffers on the way, so the backend's FIN reaches popgate.
        p = self.popgate(forward_socket_buffer=262144)
        c = self.logged_in(p)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"BIG 750000\r\n")
        self.assertTrue(self.backend.closed.wait(10), "backend could not send it all")
        # The backend's close() returns with bytes still in its send buffer:
        # the drain time counts from when its FIN reaches popgate, which on a
        # machine busy with other tests can be a while later.
        port = int(self.backend.address.rsplit(":", 1)[1])
        deadline = time.monotonic() + 10
        while not popgate_saw_fin_from(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(popgate_saw_fin_from(port),
                        "the backend's FIN never reached popgate: the buffers on "
                        "the way are smaller than this test assumes")
        t0 = time.monotonic()
        self.assert_closed_within(p, c, 1.25 * DRAIN + 0.5 + MARGIN, t0)
        rec = p.wait_for_record(5, user=USER)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["result"], "backend_closed", rec)


if __name__ == "__main__":
    unittest.main()
