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
import struct
import time
import unittest

import harness
import tlsharness as th
from test_backend_end import ScriptedBackend, popgate_holds_connection

PW = "Forward-Ends-Pw"
USER = "u@ends.example"


def reset_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class ForwardEnds(harness.IntegrationTestCase):

    def popgate(self, backend_address: str, **server):
        return self.start_popgate(
            [harness.Tenant("ends", ["ends.example"], [backend_address],
                            users={USER: PW})],
            server={"client_drain_timeout": "2s", **server})

    def result_of(self, p, c_addr: tuple[str, int], timeout: float = 10.0) -> str:
        rec = p.wait_for_record(timeout, client="%s:%d" % c_addr)
        self.assertIsNotNone(rec, f"no session line for {c_addr}")
        return rec["result"]

    def test_quit_is_ok(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address)
        for quit_line in (b"QUIT\r\n", b"quit\n", b"Quit\r\n"):
            with self.subTest(quit=quit_line):
                c = self.raw(p.port)
                self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
                addr = c.sock.getsockname()
                self.assertBytesEqual(c.retr(1), synth.dump(USER, 1), "RETR 1")
                c.send(quit_line)
                self.assertTrue(c.readline().startswith(b"+OK"))
                c.read_until_closed(5)
                c.close()
                self.assertEqual(self.result_of(p, addr), "ok")

    def test_quit_then_reset_at_once_is_ok(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address)
        for _ in range(5):
            c = self.raw(p.port)
            self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
            addr = c.sock.getsockname()
            self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
            reset_close(c.sock)
            self.assertEqual(self.result_of(p, addr), "ok")

    def test_quit_pipelined_behind_pass_is_ok(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address)
        c = self.raw(p.port)
        addr = c.sock.getsockname()
        c.send(f"USER {USER}\r\nPASS {PW}\r\nQUIT\r\n".encode())
        c.read_until_closed(5)
        c.close()
        self.assertEqual(self.result_of(p, addr), "ok")

    def test_backend_killed_mid_retr_is_backend_closed(self):
        for i in range(3):
            with self.subTest(round=i):
                victim = harness.Synth({USER: PW}, sizes=["20m"])
                self.addCleanup(victim.cleanup)
                victim.start()
                p = self.popgate(victim.address)
                c = self.raw(p.port, timeout=30)
                self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
                addr = c.sock.getsockname()
                c.send(b"RETR 1\r\n")
                got = 0
                while got < 1024 * 1024:
                    b = c.sock.recv(65536)
                    self.assertTrue(b, "closed too early")
                    got += len(b)
                victim.kill()  # SIGKILL while the message is in flight
                try:
                    c.read_until_closed(10)
                except ConnectionResetError:
                    pass
                c.close()
                self.assertIn(self.result_of(p, addr), ("backend_closed", "backend_reset"))

    def test_backend_reset_is_backend_reset(self):
        b = ScriptedBackend()
        self.addCleanup(b.cleanup)
        p = self.popgate(b.address)
        c = self.raw(p.port)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = c.sock.getsockname()
        c.cmd_ok("NOOP")
        c.send(b"RST\r\n")
        try:
            c.read_until_closed(5)
        except ConnectionResetError:
            pass
        c.close()
        self.assertEqual(self.result_of(p, addr), "backend_reset")

    def test_backend_closing_on_its_own_is_backend_closed(self):
        b = ScriptedBackend()
        self.addCleanup(b.cleanup)
        p = self.popgate(b.address)
        c = self.raw(p.port)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = c.sock.getsockname()
        c.send(b"BYE\r\n")
        self.assertEqual(c.readline(), b"+OK bye\r\n")
        c.read_until_closed(5)
        c.close()
        self.assertEqual(self.result_of(p, addr), "backend_closed")

    def test_client_reset_is_client_reset(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address)
        c = self.raw(p.port)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = c.sock.getsockname()
        c.cmd_ok("NOOP")
        reset_close(c.sock)
        self.assertEqual(self.result_of(p, addr), "client_reset")

    def test_idle_is_idle_timeout(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address, forward_idle_timeout="1s")
        c = self.raw(p.port)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = c.sock.getsockname()
        try:
            c.read_until_closed(5)
        except ConnectionResetError:
            pass
        self.assertEqual(self.result_of(p, addr), "idle_timeout")


class ForwardEndsTls(harness.IntegrationTestCase):

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

    def client(self, p):
        c = th.TlsClient(p.ports["tls"], ctx=th.verifying_ctx(self.pki.ca_file),
                         server_hostname="127.0.0.1", timeout=30)
        self.addCleanup(c.close)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        return c

    def result_of(self, p, addr) -> str:
        rec = p.wait_for_record(10, client="%s:%d" % addr)
        self.assertIsNotNone(rec, f"no session line for {addr}")
        return rec["result"]

    def test_quit_is_ok(self):
        synth = self.start_synth({USER: PW}, sizes=[3000])
        p = self.popgate(synth.address)
        c = self.client(p)
        addr = c.raw_sock.getsockname()
        self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
        c.close()
        self.assertEqual(self.result_of(p, addr), "ok")

    def test_backend_killed_mid_retr_is_backend_closed(self):
        victim = self.start_synth({USER: PW}, sizes=["20m"])
        p = self.popgate(victim.address)
        c = self.client(p)
        addr = c.raw_sock.getsockname()
        c.send(b"RETR 1\r\n")
        got = 0
        while got < 1024 * 1024:
            b = c.sock.recv(65536)
            self.assertTrue(b, "closed too early")
            got += len(b)
        victim.kill()
        try:
            c.read_until_closed(10)
        except (ConnectionResetError, ssl.SSLError):
            pass
        c.close()
        self.assertIn(self.result_of(p, addr), ("backend_closed", "backend_reset"))

    def test_backend_close_client_never_reads_nor_closes(self):
        b = ScriptedBackend()
        self.addCleanup(b.cleanup)
        p = self.popgate(b.address)
        c = self.client(p)
        addr = c.raw_sock.getsockname()
        c.send(b"BYE\r\n")
        self.assertTrue(b.closed.wait(5))
        t0 = time.monotonic()
        gone = harness.wait_until(
            lambda: not popgate_holds_connection(p.proc.pid, (harness.LOOPBACK, p.ports["tls"]),
                                                 addr), 15, 0.05)
        self.assertTrue(gone, "popgate still holds the TLS client's connection")
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(self.result_of(p, addr), "backend_closed")

    def test_backend_end_behind_a_stalled_client(self):
        # The client reads nothing, so popgate is stuck writing to it; the
        # backend's last bytes and FIN wait behind them (sized as in
        # test_backend_end). popgate still lets go about the drain time
        # after the backend's end.
        b = ScriptedBackend()
        self.addCleanup(b.cleanup)
        p = self.popgate(b.address)
        c = self.client(p)
        c.raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        addr = c.raw_sock.getsockname()
        c.send(b"BIG 750000\r\n")
        self.assertTrue(b.closed.wait(10), "backend could not send it all")
        t0 = time.monotonic()
        gone = harness.wait_until(
            lambda: not popgate_holds_connection(p.proc.pid, (harness.LOOPBACK, p.ports["tls"]),
                                                 addr), 20, 0.05)
        self.assertTrue(gone, "popgate still holds the stalled TLS client's connection")
        self.assertLess(time.monotonic() - t0, 6.0)
        self.assertEqual(self.result_of(p, addr), "backend_closed")


if __name__ == "__main__":
    unittest.main()
