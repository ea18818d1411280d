"""A raw POP3 client that sees exact bytes, plus poplib and curl helpers."""

from __future__ import annotations

import poplib
import socket
import subprocess
import time
from typing import Sequence

from .paths import LOOPBACK


class ConnectionClosed(Exception):
    pass


class RawClient:
    """Line-oriented POP3 client over a plain socket; multiline responses are
    returned dot-unstuffed with their exact line endings."""

    def __init__(self, port: int, timeout: float = 10.0, read_greeting: bool = True,
                 rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((LOOPBACK, port))
        self.buf = bytearray()
        self.greeting = self.readline() if read_greeting else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionClosed(f"connection closed; pending {bytes(self.buf[:200])!r}")
        self.buf += chunk

    def readline(self) -> bytes:
        """One line including its terminator."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > 1 << 20:
                raise AssertionError("line longer than 1 MiB")
            start = len(self.buf)
            self._fill()

    def read_multiline(self) -> bytes:
        """Reads a multiline body up to CRLF.CRLF; returns it dot-unstuffed
        (exact bytes otherwise; the terminator's CRLF belongs to the body's
        last line)."""
        start = 0
        while True:
            if len(self.buf) >= 3 and self.buf[:3] == b".\r\n":
                del self.buf[:3]
                return b""
            if len(self.buf) >= 3 or not b".\r\n".startswith(bytes(self.buf)):
                i = self.buf.find(b"\r\n.\r\n", start)
                if i >= 0:
                    body = bytes(self.buf[:i + 2])
                    del self.buf[:i + 5]
                    if body.startswith(b"."):
                        body = body[1:]
                    # Every line starting with '.' was stuffed: drop one dot.
                    return body.replace(b"\n.", b"\n")
                start = max(0, len(self.buf) - 4)
            self._fill()

    def cmd(self, line: bytes | str) -> bytes:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.readline()

    def cmd_ok(self, line: bytes | str) -> bytes:
        r = self.cmd(line)
        if not r.startswith(b"+OK"):
            raise AssertionError(f"{line!r} -> {r!r}")
        return r

    def multi(self, line: bytes | str) -> tuple[bytes, bytes]:
        r = self.cmd(line)
        if not r.startswith(b"+OK"):
            return r, b""
        return r, self.read_multiline()

    def login(self, user: str, password: str) -> bytes:
        r = self.cmd(f"USER {user}")
        if not r.startswith(b"+OK"):
            return r
        return self.cmd(f"PASS {password}")

    def retr(self, n: int) -> bytes:
        r, body = self.multi(f"RETR {n}")
        if not r.startswith(b"+OK"):
            raise AssertionError(f"RETR {n} -> {r!r}")
        return body

    def read_until_closed(self, timeout: float) -> bytes:
        """Reads until EOF; raises AssertionError if still open at timeout."""
        deadline = time.monotonic() + timeout
        data = bytes(self.buf)
        self.buf = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout}s; got {data[-300:]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def is_closed(self, timeout: float) -> bool:
        try:
            self.read_until_closed(timeout)
            return True
        except AssertionError:
            return False


def pop_login(port: int, user: str, password: str, timeout: float = 10.0) -> poplib.POP3:
    p = poplib.POP3(LOOPBACK, port, timeout=timeout)
    try:
        p.user(user)
        p.pass_(password)
    except Exception:
        try:
            p.close()
        except Exception:
            pass
        raise
    return p


def poplib_retr_bytes(p: poplib.POP3, n: int) -> bytes:
    """poplib strips line ends; rebuild with CRLF (what a CRLF source has)."""
    _, lines, _ = p.retr(n)
    return b"".join(l + b"\r\n" for l in lines)


def parse_scan_listing(body: bytes) -> list[tuple[int, str]]:
    out = []
    for line in body.splitlines():
        if not line.strip():
            continue
        a, b = line.split(None, 1)
        out.append((int(a), b.strip().decode()))
    return out


def curl(port: int, user: str, password: str, path: str = "", extra: Sequence[str] = (),
         max_time: float = 30.0) -> subprocess.CompletedProcess:
    argv = ["curl", "-s", "-S", "--max-time", str(max_time), "-u", f"{user}:{password}",
            *extra, f"pop3://{LOOPBACK}:{port}/{path}"]
    return subprocess.run(argv, capture_output=True, timeout=max_time + 10)
