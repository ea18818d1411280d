"""Each way a forwarded session ends gets its own result in the session log
(issue 8, item 14): a clean QUIT ("ok", also as lowercase "quit" with LF
only, and also when the client closes or resets as soon as it has read
+OK), a backend that dies in the middle of a RETR ("backend_closed": before,
199 of 200 such sessions were logged "ok"), a backend that resets
("backend_reset"), a client that resets ("client_reset"), an idle forwarded
session ("idle_timeout").  The same over TLS (the copy path, or kernel TLS
where the kernel has it), with the client drain after the backend's end."""

import socket
import ssl
import time
import unittest

import harness
import tlsharness as th

PW = "Forward-Ends-Pw"
USER = "u@ends.example"


class Ends(harness.IntegrationTestCase):
    """What the plain and the TLS cases share; each has its own popgate()
    and logged_in(p) -> (client, the client's address)."""

    def result_of(self, p, c_addr: tuple[str, int], timeout: float = 10.0) -> str:
        rec = p.wait_for_record(timeout, client="%s:%d" % c_addr)
        self.assertIsNotNone(rec, f"no session line for {c_addr}")
        return rec["result"]

    def on_synth(self, **server):
        """A popgate in front of a pop3-synth with one 3000-byte message."""
        synth = self.start_synth({USER: PW}, sizes=[3000])
        return synth, self.popgate(synth.address, **server)

    def ending_backend(self) -> harness.FakeBackend:
        b = harness.FakeBackend.ending()
        self.addCleanup(b.cleanup)
        return b

    def kill_backend_mid_retr(self, c, victim: harness.Synth, errors: tuple) -> None:
        """RETR 1 of a big message, SIGKILL for the backend once 1 MiB of it
        has come, then read until popgate closes (or an error in `errors`)."""
        c.send(b"RETR 1\r\n")
        harness.recv_at_least(c.sock, 1024 * 1024)
        victim.kill()  # SIGKILL while the message is in flight
        harness.drain_until_closed(c, 10, errors)
        c.close()


class ForwardEnds(Ends):

    def popgate(self, backend_address: str, **server):
        return self.start_popgate(
            [harness.Tenant("ends", ["ends.example"], [backend_address],
                            users={USER: PW})],
            server={"client_drain_timeout": "2s", **server})

    def logged_in(self, p, **kw):
        c = self.raw(p.port, **kw)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        return c, c.sock.getsockname()

    def test_quit_is_ok(self):
        synth, p = self.on_synth()
        for quit_line in (b"QUIT\r\n", b"quit\n", b"Quit\r\n"):
            with self.subTest(quit=quit_line):
                c, addr = self.logged_in(p)
                self.assertBytesEqual(c.retr(1), synth.dump(USER, 1), "RETR 1")
                c.send(quit_line)
                self.assertTrue(c.readline().startswith(b"+OK"))
                c.read_until_closed(5)
                c.close()
                self.assertEqual(self.result_of(p, addr), "ok")

    def test_quit_then_reset_at_once_is_ok(self):
        _, p = self.on_synth()
        for _ in range(5):
            c, addr = self.logged_in(p)
            self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
            harness.reset_close(c.sock)
            self.assertEqual(self.result_of(p, addr), "ok")

    def test_quit_pipelined_behind_pass_is_ok(self):
        _, p = self.on_synth()
        c = self.raw(p.port)
        addr = c.sock.getsockname()
        c.send(f"USER {USER}\r\nPASS {PW}\r\nQUIT\r\n".encode())
        c.read_until_closed(5)
        c.close()
        self.assertEqual(self.result_of(p, addr), "ok")

    def test_backend_killed_mid_retr_is_backend_closed(self):
        for i in range(3):
            with self.subTest(round=i):
                victim = self.start_synth({USER: PW}, sizes=["20m"])
                p = self.popgate(victim.address)
                c, addr = self.logged_in(p, timeout=30)
                self.kill_backend_mid_retr(c, victim, (ConnectionResetError,))
                self.assertIn(self.result_of(p, addr), ("backend_closed", "backend_reset"))

    def test_backend_reset_is_backend_reset(self):
        b = self.ending_backend()
        p = self.popgate(b.address)
        c, addr = self.logged_in(p)
        c.cmd_ok("NOOP")
        c.send(b"RST\r\n")
        harness.drain_until_closed(c, 5)
        c.close()
        self.assertEqual(self.result_of(p, addr), "backend_reset")

    def test_backend_closing_on_its_own_is_backend_closed(self):
        b = self.ending_backend()
        p = self.popgate(b.address)
        c, addr = self.logged_in(p)
        c.send(b"BYE\r\n")
        self.assertEqual(c.readline(), b"+OK bye\r\n")
        c.read_until_closed(5)
        c.close()
        self.assertEqual(self.result_of(p, addr), "backend_closed")

    def test_client_reset_is_client_reset(self):
        _, p = self.on_synth()
        c, addr = self.logged_in(p)
        c.cmd_ok("NOOP")
        harness.reset_close(c.sock)
        self.assertEqual(self.result_of(p, addr), "client_reset")

    def test_idle_is_idle_timeout(self):
        _, p = self.on_synth(forward_idle_timeout="1s")
        c, addr = self.logged_in(p)
        harness.drain_until_closed(c, 5)
        self.assertEqual(self.result_of(p, addr), "idle_timeout")


class ForwardEndsTls(Ends):

    @classmethod
    def setUpClass(cls):
        cls.pki = th.Pki()
        try:
            cls.pki.start()
            cls.cert = cls.pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        except Exception:
            cls.pki.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def popgate(self, backend_address: str):
        p = th.TlsPopgate(
            [harness.Tenant("ends", ["ends.example"], [backend_address], users={USER: PW})],
            [th.Listener("tls", "implicit", [self.cert])],
            server={"client_drain_timeout": "1s"})
        self.addCleanup(p.cleanup)
        p.start()
        return p

    def logged_in(self, p):
        c = th.TlsClient(p.ports["tls"], ctx=th.verifying_ctx(self.pki.ca_file),
                         server_hostname="127.0.0.1", timeout=30)
        self.addCleanup(c.close)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        return c, c.raw_sock.getsockname()

    def assert_let_go(self, p, addr, wait: float, bound: float, what: str):
        """popgate closes the TLS client's connection within `bound` seconds
        (waiting up to `wait`) and logs backend_closed."""
        t0 = time.monotonic()
        ours = (harness.LOOPBACK, p.ports["tls"])
        gone = harness.wait_until(
            lambda: not harness.popgate_holds_connection(p.proc.pid, ours, addr), wait, 0.05)
        self.assertTrue(gone, what)
        self.assertLess(time.monotonic() - t0, bound)
        self.assertEqual(self.result_of(p, addr), "backend_closed")

    def test_quit_is_ok(self):
        _, p = self.on_synth()
        c, addr = self.logged_in(p)
        self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
        c.close()
        self.assertEqual(self.result_of(p, addr), "ok")

    def test_backend_killed_mid_retr_is_backend_closed(self):
        victim = self.start_synth({USER: PW}, sizes=["20m"])
        p = self.popgate(victim.address)
        c, addr = self.logged_in(p)
        self.kill_backend_mid_retr(c, victim, (ConnectionResetError, ssl.SSLError))
        self.assertIn(self.result_of(p, addr), ("backend_closed", "backend_reset"))

    def test_backend_close_client_never_reads_nor_closes(self):
        b = self.ending_backend()
        p = self.popgate(b.address)
        c, addr = self.logged_in(p)
        c.send(b"BYE\r\n")
        self.assertTrue(b.closed.wait(5))
        self.assert_let_go(p, addr, 15, 5.0, "popgate still holds the TLS client's connection")

    def test_backend_end_behind_a_stalled_client(self):
        # The client reads nothing, so popgate is stuck writing to it; the
        # backend's last bytes and FIN wait behind them (sized as in
        # test_backend_end). popgate still lets go about the drain time
        # after the backend's end.
        b = self.ending_backend()
        p = self.popgate(b.address)
        c, addr = self.logged_in(p)
        c.raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"BIG 750000\r\n")
        self.assertTrue(b.closed.wait(10), "backend could not send it all")
        self.assert_let_go(p, addr, 20, 6.0,
                           "popgate still holds the stalled TLS client's connection")


if __name__ == "__main__":
    unittest.main()
