"""A scripted or misbehaving backend (Python threads, loopback only)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Union

from .paths import LOOPBACK

# What a "pop3" FakeBackend does with a command line: send these bytes (b"":
# send nothing) and read on, or call an action(conn, args) that returns True
# when it has closed the connection.
Action = Callable[[socket.socket, list[bytes]], bool]
Reply = Union[bytes, Action]


def close_after(data: bytes) -> Action:
    """An action: send `data`, then close."""

    def action(conn: socket.socket, _args: list[bytes]) -> bool:
        conn.sendall(data)
        conn.close()
        return True

    return action


def reset(conn: socket.socket, _args: list[bytes]) -> bool:
    """An action: reset the connection (SO_LINGER 0 close)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    return True


def big_then_close(conn: socket.socket, args: list[bytes]) -> bool:
    """An action for "BIG n": "+OK here", n bytes or more of body lines,
    close (without the final ".")."""
    n = int(args[0])
    conn.sendall(b"+OK here\r\n")
    chunk = b"x" * 1022 + b"\r\n"
    sent = 0
    while sent < n:
        conn.sendall(chunk)
        sent += len(chunk)
    conn.close()
    return True


# The scripts of FakeBackend.ending() and FakeBackend.refusing().
ENDING_SCRIPT: dict[bytes, Reply] = {
    b"BYE": close_after(b"+OK bye\r\n"),
    b"RST": reset,
    b"BIG": big_then_close,
    b"CAPA": b"+OK\r\nUSER\r\n.\r\n",
    b"QUIT": close_after(b"+OK bye\r\n"),
}


def refusing_script(pass_reply: bytes) -> dict[bytes, Reply]:
    return {
        b"USER": b"+OK\r\n",
        b"PASS": pass_reply,
        b"AUTH": pass_reply,
        b"QUIT": close_after(b"+OK bye\r\n"),
    }


class FakeBackend:
    """A TCP server on 127.0.0.1 that behaves in one of these ways:

      silent        accept, never send anything
      close         accept and close at once
      greet-err     greet with "-ERR ..." and wait
      stall-login   greet "+OK", then read commands and never answer
      delay-proxy   wait `delay` seconds, then relay bytes to/from `target`
                    (a real backend), i.e. a slow but working backend
      proxy         delay-proxy without the delay: a plain TCP relay, whose
                    `target` may be set after the start (before a client
                    connects)
      pop3          greet "+OK scripted ready", then answer each command
                    line by its verb from `script` (bytes to send, or an
                    action such as close_after, reset, big_then_close), and
                    lines whose verb is not in `script` with `other`; see
                    ending() and refusing() for the two scripts tests use
    `accepted` counts connections; `closed` is set whenever a pop3 action
    closed a connection. Every connection is closed on cleanup; threads are
    daemons and bounded by the sockets' timeouts.
    """

    def __init__(self, mode: str, delay: float = 0.0, target: tuple[str, int] | None = None,
                 script: dict[bytes, Reply] | None = None, other: bytes = b"-ERR unknown\r\n"):
        self.mode, self.delay, self.target = mode, delay, target
        self.script, self.other = script or {}, other
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @classmethod
    def ending(cls) -> FakeBackend:
        """Logs anyone in (CAPA lists USER, all else "+OK"), then per line:
           BYE    -> "+OK bye", close
           RST    -> reset
           BIG n  -> "+OK here", n bytes of body, close (without the ".")
           QUIT   -> "+OK bye", close"""
        return cls("pop3", script=ENDING_SCRIPT, other=b"+OK\r\n")

    @classmethod
    def refusing(cls, pass_reply: bytes) -> FakeBackend:
        """Takes USER, answers PASS (and AUTH) with `pass_reply`, e.g. a
        temporary refusal (b"": never answers), anything else but QUIT
        with -ERR."""
        return cls("pop3", script=refusing_script(pass_reply))

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> FakeBackend:  # for harness.ModuleResources.add
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(60)
        try:
            if self.mode == "close":
                conn.close()
            elif self.mode == "silent":
                self._stop.wait(60)
            elif self.mode == "greet-err":
                conn.sendall(b"-ERR [SYS/PERM] go away\r\n")
                self._stop.wait(60)
            elif self.mode == "stall-login":
                conn.sendall(b"+OK fake ready\r\n")
                deadline = time.monotonic() + 60
                while not self._stop.is_set() and time.monotonic() < deadline:
                    conn.settimeout(0.2)
                    try:
                        if not conn.recv(4096):
                            return
                    except socket.timeout:
                        pass
            elif self.mode in ("delay-proxy", "proxy"):
                if self._stop.wait(self.delay):
                    return
                up = socket.create_connection(self.target, timeout=60)
                self.conns.append(up)
                t = threading.Thread(target=self._pipe, args=(up, conn), daemon=True)
                t.start()
                self._pipe(conn, up)
                t.join(60)
            elif self.mode == "pop3":
                conn.settimeout(30)
                try:
                    self._serve_script(conn)
                finally:
                    conn.close()
        except OSError:
            pass

    def _serve_script(self, conn: socket.socket):
        conn.sendall(b"+OK scripted ready\r\n")
        buf = b""
        while not self._stop.is_set():
            while b"\n" not in buf:
                b = conn.recv(4096)
                if not b:
                    return
                buf += b
            line, buf = buf.split(b"\n", 1)
            words = line.strip().split()
            verb = words[0].upper() if words else b""
            reply = self.script.get(verb, self.other)
            if callable(reply):
                if reply(conn, words[1:]):
                    self.closed.set()
                    return
            elif reply:
                conn.sendall(reply)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(b)
        except OSError:
            return

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
