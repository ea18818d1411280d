"""Free loopback ports, waiting for a server's greeting, polling."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from typing import Callable

from .paths import LOOPBACK
from .processes import _tail


def free_port() -> int:
    """A currently free loopback TCP port outside the ephemeral range.

    Ports are chosen at random from 20000-32000 (below Linux's default
    ephemeral range 32768-60999, so client sockets do not collide with them)
    and checked by binding.  Bounded: at most 200 attempts.
    """
    rnd = random.SystemRandom()
    for _ in range(200):
        port = rnd.randrange(20000, 32000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            s.close()
        # Also make sure nothing listens there with SO_REUSEPORT.
        try:
            c = socket.create_connection((LOOPBACK, port), timeout=0.2)
            c.close()
            continue
        except OSError:
            return port
    raise RuntimeError("no free loopback port found")


def read_greeting(port: int, timeout: float = 2.0) -> bytes | None:
    """Connects, returns the first line (or None if not reachable)."""
    try:
        s = socket.create_connection((LOOPBACK, port), timeout=timeout)
    except OSError:
        return None
    try:
        s.settimeout(timeout)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        if b"\n" in buf:
            try:
                s.sendall(b"QUIT\r\n")
                s.recv(4096)
            except OSError:
                pass
        return buf.split(b"\n", 1)[0] + b"\n" if b"\n" in buf else None
    except OSError:
        return None
    finally:
        s.close()


def wait_for_greeting(port: int, proc: subprocess.Popen | None, timeout: float,
                      what: str, log_path: str | None = None) -> bytes:
    """Polls until port greets with +OK; fails early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before greeting"
                               + _tail(log_path))
        g = read_greeting(port, timeout=1.0)
        if g is not None and g.startswith(b"+OK"):
            return g
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not greet on port {port} within {timeout}s"
                       + _tail(log_path))


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.05):
    """Polls pred until truthy (returns its value) or timeout (returns last)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
