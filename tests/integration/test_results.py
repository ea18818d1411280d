"""One session result type (issue 8, 1.14): every way a session ends has its
own stable "result" name in the log line, with "ended_by" (client, backend
or proxy) and a free-text "detail" where there is one.  A backend that dies
in the middle of a RETR, a client that resets, an idle timeout and a clean
QUIT each get their own result."""

import socket
import struct
import time
import unittest

import harness

USER, PW = "res@example.com", "Results-Pw-1"
BIG = 8 * 1024 * 1024

res = harness.ModuleResources()
synth = popgate = None


def setUpModule():
    global synth, popgate
    try:
        synth = res.add(harness.Synth({USER: PW}, sizes=[700, BIG]))
        dead = harness.free_port()  # nothing listens there
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users={USER: PW}),
            harness.Tenant("down", ["down.example"], [f"{harness.LOOPBACK}:{dead}"],
                           users={"d@down.example": PW}),
        ], server={"preauth_idle_timeout": "1s"}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class Results(harness.IntegrationTestCase):

    def record(self, client_port: int, timeout: float = 8.0) -> dict:
        client = f"{harness.LOOPBACK}:{client_port}"
        rec = popgate.wait_for_record(timeout=timeout, event="session", client=client)
        self.assertIsNotNone(rec, f"no record for {client}\n" + popgate.stderr_text()[-3000:])
        self.assertIn(rec["ended_by"], ("client", "backend", "proxy"), rec)
        return rec

    def test_clean_quit_is_ok(self):
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()
        rec = self.record(port)
        self.assertEqual((rec["result"], rec["ended_by"]), ("ok", "client"), rec)
        self.assertNotIn("detail", rec)

    def test_quit_before_login_and_close_before_login(self):
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        c.cmd_ok("QUIT")
        c.close()
        self.assertEqual(self.record(port)["result"], "quit")
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        c.close()
        rec = self.record(port)
        self.assertEqual((rec["result"], rec["ended_by"]), ("client_closed", "client"), rec)

    def test_idle_timeout_before_login(self):
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.is_closed(5))
        c.close()
        rec = self.record(port)
        self.assertEqual((rec["result"], rec["ended_by"]), ("idle_timeout", "proxy"), rec)

    def test_backend_unavailable_has_a_detail(self):
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.login("d@down.example", PW).startswith(b"-ERR [SYS/TEMP]"))
        c.close()
        rec = self.record(port)
        self.assertEqual((rec["result"], rec["ended_by"]), ("backend_unavailable", "backend"))
        self.assertIn("connect", rec.get("detail", ""), rec)

    def test_auth_failed(self):
        c = self.raw(popgate.port)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.login(USER, "wrong").startswith(b"-ERR [AUTH]"))
        c.close()
        rec = self.record(port)
        self.assertEqual(rec["result"], "auth_failed", rec)

    def test_client_reset_mid_retr(self):
        c = self.raw(popgate.port, timeout=20)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.send(b"RETR 2\r\n")
        c.sock.recv(65536)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()  # RST
        rec = self.record(port)
        self.assertEqual((rec["result"], rec["ended_by"]), ("client_reset", "client"), rec)

    def test_backend_killed_mid_retr_is_not_ok(self):
        own = self.start_synth({USER: PW}, sizes=[BIG])
        p = self.start_popgate([
            harness.Tenant("example-com", ["example.com"], [own.address], users={USER: PW}),
        ])
        c = self.raw(p.port, timeout=20)
        port = c.sock.getsockname()[1]
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.send(b"RETR 1\r\n")
        c.sock.recv(65536)  # the transfer is under way; the client stops reading
        own.kill()
        try:
            c.read_until_closed(15)
        except (ConnectionResetError, AssertionError):
            pass
        c.close()
        rec = p.wait_for_record(timeout=15, event="session", client=f"{harness.LOOPBACK}:{port}")
        self.assertIsNotNone(rec, p.stderr_text()[-3000:])
        self.assertIn(rec["result"], ("backend_closed", "backend_reset"), rec)
        self.assertEqual(rec["ended_by"], "backend", rec)


if __name__ == "__main__":
    unittest.main()
