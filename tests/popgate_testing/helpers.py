"""Small helpers several integration-test modules share: which connections
popgate still holds (from /proc), how a test reads or ends its own client
connection, where loadgen is, a popgate config for a popgate the test runs
by hand, and setUpModule's cleanup on a failed start."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import unittest
from typing import Iterator

from .paths import popgate_bin
from .popgate import Popgate
from .ports import free_port
from .processes import ModuleResources


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


def reset_close(sock: socket.socket) -> None:
    """Closes `sock` with a reset (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_at_least(sock, n: int) -> int:
    """Reads from `sock` until `n` bytes or more have come; returns how many.
    An AssertionError if the peer closes first."""
    got = 0
    while got < n:
        b = sock.recv(65536)
        if not b:
            raise AssertionError(f"closed too early, after {got} of {n} bytes")
        got += len(b)
    return got


def drain_until_closed(c, timeout: float, errors: tuple = (ConnectionResetError,)) -> bytes:
    """c.read_until_closed(timeout), where an end by one of `errors` (a
    reset) counts as an end too: what was read before it is lost."""
    try:
        return c.read_until_closed(timeout)
    except errors:
        return b""


def loadgen_bin() -> str | None:
    """bench/loadgen's binary: LOADGEN_BIN, else next to popgate's build
    (POPGATE_BIN's build dir); None when neither is there (e.g. the asan
    preset builds no bench/)."""
    env = os.environ.get("LOADGEN_BIN")
    if env:
        return env
    build = os.path.dirname(os.path.dirname(os.path.abspath(popgate_bin())))
    cand = os.path.join(build, "bench", "loadgen", "loadgen")
    return cand if os.access(cand, os.X_OK) else None


def unstarted_popgate(test: unittest.TestCase, *args, **kw) -> Popgate:
    """A Popgate(*args, **kw) with its config and passwd files written, for a
    free port, but not started: for tests that run popgate by hand. Its
    directory goes at the test's cleanup."""
    p = Popgate(*args, **kw)
    test.addCleanup(shutil.rmtree, p.dir, True)
    p.port = free_port()
    p.write_config()
    return p


@contextlib.contextmanager
def closing_on_error(res: ModuleResources) -> Iterator[ModuleResources]:
    """For setUpModule: if starting the module's servers fails, stops the
    ones already started (tearDownModule does not run then)."""
    try:
        yield res
    except Exception:
        res.close()
        raise
