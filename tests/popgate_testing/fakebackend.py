"""A misbehaving backend (Python threads, loopback only)."""

from __future__ import annotations

import socket
import threading
import time

from .paths import LOOPBACK


class FakeBackend:
    """A TCP server on 127.0.0.1 that misbehaves in one of these ways:

      silent        accept, never send anything
      close         accept and close at once
      greet-err     greet with "-ERR ..." and wait
      stall-login   greet "+OK", then read commands and never answer
      delay-proxy   wait `delay` seconds, then relay bytes to/from `target`
                    (a real backend), i.e. a slow but working backend
    Every connection is closed on cleanup; threads are daemons and bounded by
    the sockets' timeouts.
    """

    def __init__(self, mode: str, delay: float = 0.0, target: tuple[str, int] | None = None):
        self.mode, self.delay, self.target = mode, delay, target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

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
            elif self.mode == "delay-proxy":
                if self._stop.wait(self.delay):
                    return
                up = socket.create_connection(self.target, timeout=60)
                self.conns.append(up)
                t = threading.Thread(target=self._pipe, args=(up, conn), daemon=True)
                t.start()
                self._pipe(conn, up)
                t.join(60)
        except OSError:
            pass

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
