"""Hostile or broken client input before login; every test ends by checking
that a normal session still works and popgate is alive.

overlong lines (RFC 2449: 255 octets including CRLF), a huge line with no
newline, NUL bytes (including a correct password followed by NUL+junk),
control characters, binary garbage, connect-and-vanish clients, resets, and
the pre-login idle timeout."""

import os
import random
import socket
import struct
import time
import unittest

import harness
from harness import RawClient

USER, PW = "alice@example.com", "Bad-Input-Pw-1"

res = harness.ModuleResources()
synth = popgate = None


def setUpModule():
    global synth, popgate
    try:
        synth = res.add(harness.Synth({USER: PW}, sizes=[1234, 2345]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users={USER: PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class BadInput(harness.IntegrationTestCase):

    def tearDown(self):
        self.assertTrue(popgate.alive(), "popgate died" + harness._tail(popgate.stderr_path))

    def assertNormalSession(self, c: RawClient | None = None):
        """On `c` if given (the connection must still be usable), else anew."""
        c = c or self.raw(popgate.port)
        r = c.login(USER, PW)
        self.assertTrue(r.startswith(b"+OK"), f"normal login: {r!r}")
        self.assertEqual(c.cmd("STAT"), b"+OK 2 3579\r\n")
        self.assertBytesEqual(c.retr(1), synth.dump(USER, 1), "RETR after bad input")
        c.cmd_ok("QUIT")

    # --- line length ---------------------------------------------------------

    def test_line_of_255_octets_is_processed(self):
        c = self.raw(popgate.port)
        c.cmd_ok(f"USER {USER}")
        line = b"PASS " + b"p" * (255 - 7)
        self.assertEqual(len(line) + 2, 255)
        r = c.cmd(line)
        self.assertTrue(r.startswith(b"-ERR [AUTH]"),
                        f"a 255-octet line is legal and must be processed: {r!r}")
        self.assertNormalSession(c)

    def test_one_overlong_line_then_usable(self):
        c = self.raw(popgate.port)
        r = c.cmd(b"USER " + b"a" * 300)
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertNormalSession(c)

    def test_overlong_256_octets(self):
        c = self.raw(popgate.port)
        c.cmd_ok(f"USER {USER}")
        line = b"PASS " + b"p" * (256 - 7)
        r = c.cmd(line)
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertNormalSession(c)

    def test_repeated_overlong_lines_close(self):
        c = self.raw(popgate.port)
        closed = False
        for i in range(20):
            try:
                c.send(b"NOOP " + b"x" * 400 + b"\r\n")
                r = c.readline()
            except (harness.ConnectionClosed, BrokenPipeError):
                closed = True
                break
            except ConnectionResetError:
                self.fail(f"connection RESET (not closed cleanly) after {i} overlong lines")
            self.assertTrue(r.startswith(b"-ERR"), r)
            # Before sending more, see whether popgate closed after this
            # answer (sending into a closed socket would provoke a RST).
            c.sock.settimeout(0.3)
            try:
                if c.sock.recv(1, socket.MSG_PEEK) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                self.fail(f"connection RESET (not closed cleanly) after {i + 1} overlong lines")
            c.sock.settimeout(10)
        self.assertTrue(closed, "20 overlong lines in a row and the connection is still open")
        self.assertNormalSession()

    def test_huge_line_without_newline(self):
        rss0 = popgate.rss_kb()
        c = self.raw(popgate.port)
        chunk = b"A" * 65536
        sent = 0
        try:
            for _ in range(64):  # up to 4 MiB
                c.send(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # popgate gave up on us: fine
        # Whatever it answered must be -ERR lines, then a close.
        try:
            data = c.read_until_closed(5)
        except ConnectionResetError:
            data = b""
        except AssertionError:
            data = None  # still open: must have answered -ERR
        if data is not None:
            for line in data.splitlines():
                self.assertTrue(line.startswith(b"-ERR"), line[:100])
        grew = (popgate.rss_kb() - rss0) / 1024
        self.assertLess(grew, 2, f"popgate RSS grew {grew:.1f} MB for one unterminated line")
        self.assertNormalSession()

    # --- NUL and control characters -----------------------------------------

    def test_nul_in_commands(self):
        c = self.raw(popgate.port)
        for line in (b"CAPA\x00", b"\x00", b"US\x00ER alice@example.com", b"QUIT\x00"):
            r = c.cmd(line)
            self.assertTrue(r.startswith(b"-ERR"), f"{line!r} -> {r!r}")
        self.assertNormalSession(c)

    def test_nul_in_user(self):
        c = self.raw(popgate.port)
        c.send(b"USER alice\x00@example.com\r\n")
        r = c.readline()
        if r.startswith(b"+OK"):
            r = c.cmd(f"PASS {PW}")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertNormalSession()

    def test_correct_password_followed_by_nul_is_refused(self):
        c = self.raw(popgate.port)
        c.cmd_ok(f"USER {USER}")
        r = c.cmd(b"PASS " + PW.encode() + b"\x00junk")
        self.assertTrue(r.startswith(b"-ERR"), f"password truncated at NUL was accepted: {r!r}")
        self.assertNormalSession()

    def test_binary_garbage(self):
        rnd = random.Random(1234)
        c = self.raw(popgate.port)
        garbage = bytes(rnd.randrange(256) for _ in range(4000))
        try:
            c.send(garbage + b"\r\n")
            data = c.read_until_closed(3)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except AssertionError:
            data = None  # still open is fine too
        self.assertNormalSession()

    # --- connection-level abuse ---------------------------------------------

    def test_connect_and_vanish(self):
        for i in range(50):
            s = socket.create_connection((harness.LOOPBACK, popgate.port), timeout=5)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.assertNormalSession()

    def test_reset_after_user(self):
        for _ in range(10):
            c = RawClient(popgate.port)
            c.cmd_ok(f"USER {USER}")
            c.send(f"PASS {PW}\r\nSTAT\r\n".encode())
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        # The backend sessions opened for those logins get closed, so the
        # maildrop is not left locked ([IN-USE]) for the next login.
        ok = harness.wait_until(lambda: self._try_login(), 5, 0.2)
        self.assertTrue(ok, "maildrop still locked after clients reset their connections")
        self.assertNormalSession()

    def _try_login(self) -> bool:
        with RawClient(popgate.port) as c:
            r = c.login(USER, PW)
            if r.startswith(b"+OK"):
                c.cmd("QUIT")
                return True
            return False


class PreauthIdleTimeout(harness.IntegrationTestCase):

    def test_idle_client_is_closed(self):
        s = self.start_synth({USER: PW}, sizes=[500])
        p = self.start_popgate([harness.Tenant("example-com", ["example.com"], [s.address],
                                               users={USER: PW})],
                               server={"preauth_idle_timeout": "1s"})
        c = self.raw(p.port)
        t0 = time.monotonic()
        c.read_until_closed(4)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.8, "closed before the idle timeout")
        self.assertLess(elapsed, 3.0, "idle timeout not enforced")
        # After USER too.
        c = self.raw(p.port)
        c.cmd_ok(f"USER {USER}")
        t0 = time.monotonic()
        c.read_until_closed(4)
        self.assertLess(time.monotonic() - t0, 3.0)
        # An active client that keeps talking is not cut off.
        c = self.raw(p.port)
        for _ in range(4):
            time.sleep(0.5)
            r, _ = c.multi("CAPA")
            self.assertTrue(r.startswith(b"+OK"), r)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
