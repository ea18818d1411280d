"""SIGTERM closes the listening sockets at once (issue 8, item 6).

Before: the sockets stayed open for the whole shutdown_grace, so new
connections were queued in their backlog, waited, and were reset when
popgate exited. Now the kernel refuses them at once (ECONNREFUSED; with a
second instance on the same port it would hand them to that one) while
sessions in progress, logged in or not, keep their grace."""

import os
import signal
import socket
import subprocess
import time
import unittest

import harness

PW = "Shutdown-Pw-6"
ALICE = "alice@example.com"
BOB = "bob@example.com"  # a second maildrop: pop3-synth locks one per session


def connect_result(port: int, timeout: float = 2.0) -> str:
    """'refused', or 'connected' (the kernel completed the handshake)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((harness.LOOPBACK, port))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error {e!r}"
    finally:
        s.close()


class SigtermClosesListeners(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({ALICE: PW, BOB: PW}, sizes=[3000])
        # Long grace: the listeners must not wait for it.
        self.p = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [self.synth.address],
                            users={ALICE: PW, BOB: PW})],
            server={"shutdown_grace": "6s"})
        self.p.expected_exit = True

    def test_new_connections_refused_sessions_finish(self):
        held = self.raw(self.p.port)
        self.assertTrue(held.login(ALICE, PW).startswith(b"+OK"))
        # A session that has not logged in yet keeps its grace too.
        prelogin = self.raw(self.p.port)
        t0 = time.monotonic()
        os.kill(self.p.proc.pid, signal.SIGTERM)
        # The listeners close at once: well within a second, every new
        # connect is refused by the kernel (none waits in a backlog).
        refused = harness.wait_until(lambda: connect_result(self.p.port) == "refused", 1.0, 0.02)
        self.assertTrue(refused, "a connect 1s after SIGTERM was not refused: "
                        + connect_result(self.p.port))
        self.assertLess(time.monotonic() - t0, 1.5)
        results = [connect_result(self.p.port) for _ in range(12)]
        self.assertEqual(results, ["refused"] * 12)
        self.assertTrue(self.p.alive(), "popgate exited before its grace was used")
        # The sessions in progress keep working within the grace period.
        self.assertEqual(held.cmd("STAT"), b"+OK 1 3000\r\n")
        self.assertBytesEqual(held.retr(1), self.synth.dump(ALICE, 1), "RETR during grace")
        self.assertTrue(prelogin.login(BOB, PW).startswith(b"+OK"),
                        "a connection accepted before SIGTERM could not log in during grace")
        self.assertEqual(prelogin.cmd("STAT"), b"+OK 1 3000\r\n")
        # Clients close after QUIT's +OK (popgate would otherwise give them
        # client_drain_timeout to read the rest).
        for c in (held, prelogin):
            c.cmd_ok("QUIT")
            c.close()
        # With no session left popgate exits without using the whole grace.
        rc = self.p.proc.wait(timeout=4)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5.0)
        recs = [r for r in self.p.session_records() if r.get("user") in (ALICE, BOB)]
        self.assertEqual(sorted((r["user"], r["result"]) for r in recs),
                         [(ALICE, "ok"), (BOB, "ok")], recs)

    def test_pending_connection_not_left_in_backlog(self):
        # A client that connects after SIGTERM must never sit in a queue
        # that nobody will accept from (then be reset at exit): the connect
        # itself fails.
        held = self.raw(self.p.port)
        self.assertTrue(held.login(ALICE, PW).startswith(b"+OK"))
        os.kill(self.p.proc.pid, signal.SIGTERM)
        self.assertTrue(harness.wait_until(
            lambda: connect_result(self.p.port) == "refused", 1.0, 0.02))
        late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        late.settimeout(2)
        with self.assertRaises(ConnectionRefusedError):
            late.connect((harness.LOOPBACK, self.p.port))
        late.close()
        held.cmd_ok("QUIT")
        held.close()
        self.assertEqual(self.p.proc.wait(timeout=4), 0)


if __name__ == "__main__":
    unittest.main()
