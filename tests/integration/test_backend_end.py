"""After the backend's end (EOF or reset) a forwarded session ends: the client
gets server.client_drain_timeout to read what was sent, then popgate closes
its side, whether or not the client reads or closes (issue 8, item 15).
Before, popgate half-closed the client and kept both descriptors until the
client closed or forward_idle_timeout (30 min) passed.

ScriptedBackend (also used by test_forward_ends) is a POP3 backend in Python
threads on 127.0.0.1 that logs anyone in and then obeys test commands:
BYE (answer, close), RST (reset), BIG n (n bytes, then close)."""

import os
import socket
import struct
import threading
import time
import unittest

import harness

PW = "Backend-End-Pw"
USER = "u@end.example"
DRAIN = 1.0
MARGIN = 4.0  # generous: before the fix popgate held the client for 30 min


class ScriptedBackend:
    """Greets, takes any USER/PASS, then per line:
       BYE    -> "+OK bye", close
       RST    -> reset (SO_LINGER 0 close)
       BIG n  -> "+OK", n bytes of body, close (without the final ".")
       QUIT   -> "+OK", close
       CAPA   -> a capability list
       other  -> "+OK"
    Every connection is closed on cleanup; threads are daemons bounded by
    socket timeouts."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((harness.LOOPBACK, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()  # set when a connection was closed by us
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{harness.LOOPBACK}:{self.port}"

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(30)
        buf = b""
        try:
            conn.sendall(b"+OK scripted ready\r\n")
            while not self._stop.is_set():
                while b"\n" not in buf:
                    b = conn.recv(4096)
                    if not b:
                        return
                    buf += b
                line, buf = buf.split(b"\n", 1)
                cmd = line.strip().split()
                verb = cmd[0].upper() if cmd else b""
                if verb == b"BYE":
                    conn.sendall(b"+OK bye\r\n")
                    conn.close()
                    self.closed.set()
                    return
                if verb == b"RST":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    conn.close()
                    self.closed.set()
                    return
                if verb == b"BIG":
                    n = int(cmd[1])
                    conn.sendall(b"+OK here\r\n")
                    chunk = b"x" * 1022 + b"\r\n"
                    sent = 0
                    while sent < n:
                        conn.sendall(chunk)
                        sent += len(chunk)
                    conn.close()
                    self.closed.set()
                    return
                if verb == b"CAPA":
                    conn.sendall(b"+OK\r\nUSER\r\n.\r\n")
                    continue
                if verb == b"QUIT":
                    conn.sendall(b"+OK bye\r\n")
                    conn.close()
                    self.closed.set()
                    return
                conn.sendall(b"+OK\r\n")
        except OSError:
            pass

    def cleanup(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self._thread.join(5)


def _hex_endpoint(addr: tuple[str, int]) -> str:
    ip = socket.inet_aton(addr[0])
    return "%08X:%04X" % (struct.unpack("<I", ip)[0], addr[1])


def popgate_holds_connection(pid: int, popgate_side: tuple[str, int],
                             peer: tuple[str, int]) -> bool:
    """True if process `pid` still has an fd for the TCP connection whose
    local end is `popgate_side` and remote end `peer` (/proc/net/tcp + fds)."""
    local, remote = _hex_endpoint(popgate_side), _hex_endpoint(peer)
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == local and parts[2] == remote and parts[9] != "0":
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return False
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                return True
        except OSError:
            continue
    return False


class BackendEnd(harness.IntegrationTestCase):

    def setUp(self):
        self.backend = ScriptedBackend()
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
        self.assertTrue(popgate_holds_connection(p.proc.pid, ours, peer) or
                        time.monotonic() - t0 < bound,
                        "could not find popgate's socket for the client")
        gone = harness.wait_until(
            lambda: not popgate_holds_connection(p.proc.pid, ours, peer),
            bound + 10, 0.05)
        elapsed = time.monotonic() - t0
        self.assertTrue(gone, "popgate still holds the client's connection")
        self.assertLess(elapsed, bound,
                        f"popgate held the client {elapsed:.2f}s after the backend's end")
        return elapsed

    def test_backend_close_client_never_reads_nor_closes(self):
        p = self.popgate()
        c = self.logged_in(p)
        c.send(b"BYE\r\n")  # the backend answers and closes; we never read
        self.assertTrue(self.backend.closed.wait(5))
        t0 = time.monotonic()
        self.assert_closed_within(p, c, DRAIN + MARGIN, t0)
        rec = p.wait_for_record(5, client="%s:%d" % c.sock.getsockname())
        self.assertIsNotNone(rec, "no session line")
        self.assertEqual(rec["result"], "backend_closed", rec)
        # What was sent before the end is still there for the client.
        self.assertEqual(c.readline(), b"+OK bye\r\n")

    def test_backend_reset_client_never_closes(self):
        p = self.popgate()
        c = self.logged_in(p)
        c.cmd_ok("NOOP")
        c.send(b"RST\r\n")
        self.assertTrue(self.backend.closed.wait(5))
        t0 = time.monotonic()
        self.assert_closed_within(p, c, DRAIN + MARGIN, t0)
        rec = p.wait_for_record(5, client="%s:%d" % c.sock.getsockname())
        self.assertIsNotNone(rec, "no session line")
        self.assertEqual(rec["result"], "backend_reset", rec)

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
        t0 = time.monotonic()
        self.assert_closed_within(p, c, 1.25 * DRAIN + 0.5 + MARGIN, t0)
        rec = p.wait_for_record(5, user=USER)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["result"], "backend_closed", rec)


if __name__ == "__main__":
    unittest.main()
