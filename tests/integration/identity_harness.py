"""Helpers for issue 9's identity, master-login and backend-state tests
(test_client_identity, test_master_login, test_backend_state):

  * PoolTenant / PoolPopgate -- other names of tlsharness's TlsTenant and
    TlsPopgate (whose tenants carry the pool settings)
  * SourceClient / tls_client_from -- POP3 clients whose socket is bound to
    a chosen loopback source address (127.0.0.5...: loopback has all of
    127/8), so the backend can be asked who the client was
  * RecordingRelay -- a TCP relay in front of a backend that keeps what
    popgate sent on each connection (PROXY headers, XCLIENT lines), and
    counts connections
  * parse_proxy_v2 -- a PROXY protocol v2 header taken apart

Loopback only; Python 3.11 standard library only.
"""

from __future__ import annotations

import dataclasses
import socket
import threading

import harness
import tlsharness as th
from popgate_testing.fakebackend import FakeBackend


# The names test_health_checks imports: popgate.Tenant carries the pool
# settings (settings, backend_settings, health_check) and TlsPopgate writes
# them, one plain listener ("plain") when it is given no listeners.
PoolTenant = th.TlsTenant
PoolPopgate = th.TlsPopgate


def _bound_socket(source: str, port: int, timeout: float) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((harness.LOOPBACK, port))
    except BaseException:
        s.close()
        raise
    return s


class SourceClient(harness.RawClient):
    """RawClient whose connection comes from `source` (a 127/8 address)."""

    def __init__(self, port: int, source: str, timeout: float = 10.0):
        self.sock = _bound_socket(source, port, timeout)
        self.buf = bytearray()
        self.greeting = self.readline()

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()


def tls_client_from(port: int, source: str, mode: str, timeout: float = 10.0) -> th.TlsClient:
    """A TlsClient from `source`: mode "implicit" (TLS first) or "stls"."""
    sock = _bound_socket(source, port, timeout)
    c = th.TlsClient.over_plain(sock)
    try:
        if mode == "implicit":
            c.start_tls()
            c.greeting = c.readline()
        elif mode == "stls":
            c.plain_greeting = c.greeting = c.readline()
            c.stls_reply = c.cmd("STLS")
            if not c.stls_reply.startswith(b"+OK"):
                raise AssertionError(f"STLS -> {c.stls_reply!r}")
            c.start_tls()
        else:
            raise ValueError(mode)
    except BaseException:
        sock.close()
        raise
    c.source = c.raw_sock.getsockname()
    return c


class RecordingRelay(FakeBackend):
    """A TCP relay to `target` that keeps the first bytes (up to 4 KiB)
    popgate sent on each connection, in order: `sent[i]`."""

    LIMIT = 4096

    def __init__(self, target: tuple[str, int]):
        self.sent: list[bytearray] = []
        self._lock = threading.Lock()
        super().__init__("proxy", target=target)

    def _pipe(self, src: socket.socket, dst: socket.socket):
        # Called as _pipe(popgate's connection, upstream) for what popgate
        # sends and _pipe(upstream, popgate's connection) for the answers.
        rec = None
        try:
            to_backend = dst.getpeername() == tuple(self.target)
        except OSError:
            to_backend = False
        if to_backend:
            with self._lock:
                rec = bytearray()
                self.sent.append(rec)
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if rec is not None and len(rec) < self.LIMIT:
                    with self._lock:
                        rec += b[:self.LIMIT - len(rec)]
                dst.sendall(b)
        except OSError:
            return

    def sent_since(self, n: int) -> list[bytes]:
        with self._lock:
            return [bytes(r) for r in self.sent[n:]]


PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


@dataclasses.dataclass
class ProxyV2:
    command: str                 # "LOCAL" or "PROXY"
    src: tuple[str, int] | None  # TCP over IPv4 only (what the tests use)
    dst: tuple[str, int] | None
    tlvs: dict[int, bytes]
    length: int                  # of the whole header


def parse_proxy_v2(data: bytes) -> ProxyV2 | None:
    """The PROXY v2 header at the start of `data`, or None if there is none."""
    if not data.startswith(PROXY_V2_SIG) or len(data) < 16:
        return None
    ver_cmd, fam = data[12], data[13]
    n = int.from_bytes(data[14:16], "big")
    body = data[16:16 + n]
    if len(body) < n or ver_cmd >> 4 != 2:
        return None
    cmd = {0: "LOCAL", 1: "PROXY"}.get(ver_cmd & 0x0F, f"cmd{ver_cmd & 0x0F}")
    src = dst = None
    rest = body
    if cmd == "PROXY" and fam == 0x11 and len(body) >= 12:
        src = (socket.inet_ntoa(body[0:4]), int.from_bytes(body[8:10], "big"))
        dst = (socket.inet_ntoa(body[4:8]), int.from_bytes(body[10:12], "big"))
        rest = body[12:]
    elif cmd == "LOCAL":
        rest = body[_addr_len(fam):] if len(body) >= _addr_len(fam) else b""
    tlvs: dict[int, bytes] = {}
    while len(rest) >= 3:
        t, ln = rest[0], int.from_bytes(rest[1:3], "big")
        tlvs[t] = rest[3:3 + ln]
        rest = rest[3 + ln:]
    return ProxyV2(cmd, src, dst, tlvs, 16 + n)


def _addr_len(fam: int) -> int:
    return {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}.get(fam, 0)


PP2_TYPE_SSL = 0x20
PP2_CLIENT_SSL = 0x01
