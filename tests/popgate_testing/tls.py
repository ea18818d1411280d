"""TLS clients: a raw POP3 client over TLS (implicit, or STLS first), SSL
contexts, `openssl s_client`, curl over TLS, waiting for a TLS greeting,
kernel-TLS availability."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
from typing import Sequence

from .client import ConnectionClosed, RawClient
from .paths import CURL, LOOPBACK, OPENSSL
from .pki import cert_info
from .processes import _tail


def insecure_ctx(**kw) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def verifying_ctx(cafile: str, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def wait_for_tls_greeting(port: int, proc, timeout: float, log_path: str | None = None) -> bytes:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"popgate exited with {proc.returncode} before greeting"
                               + _tail(log_path))
        try:
            with TlsClient(port, timeout=1.0) as c:
                g = c.greeting
                try:
                    c.send(b"QUIT\r\n")
                    c.readline()
                except (OSError, ConnectionClosed):
                    pass
            if g.startswith(b"+OK"):
                return g
        except (OSError, ConnectionClosed) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"no TLS greeting on port {port} within {timeout}s: {last!r}"
                       + _tail(log_path))


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------

class TlsClient(RawClient):
    """RawClient over TLS.  mode "implicit": TLS from the first byte;
    "stls": read the greeting, send STLS, expect +OK, then the handshake.
    `raw_sock` is for TCP-level calls (getsockname, SO_LINGER); close() on
    it (or on `sock`) sends no close_notify (Python never does on close);
    `sock.unwrap()` does."""

    def __init__(self, port: int, mode: str = "implicit", ctx: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, timeout: float = 10.0,
                 session: ssl.SSLSession | None = None, read_greeting: bool = True):
        self.buf = bytearray()
        self.ctx = ctx or insecure_ctx()
        self.server_hostname = server_hostname
        raw = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.raw_sock = raw
        self.sock = raw
        self.plain_greeting = None
        self.stls_reply = None
        try:
            if mode == "implicit":
                self.sock = self.raw_sock = self.ctx.wrap_socket(
                    raw, server_hostname=server_hostname, session=session)
                self.greeting = self.readline() if read_greeting else None
            elif mode == "stls":
                self.plain_greeting = self.readline()
                self.stls_reply = self.cmd("STLS")
                if not self.stls_reply.startswith(b"+OK"):
                    raise AssertionError(f"STLS -> {self.stls_reply!r}")
                self.start_tls(session=session)
                self.greeting = self.plain_greeting
            else:
                raise ValueError(mode)
        except BaseException:
            raw.close()
            raise

    @classmethod
    def over_plain(cls, sock: socket.socket, ctx: ssl.SSLContext | None = None,
                   server_hostname: str | None = None) -> "TlsClient":
        """A client on an already connected plain socket (greeting, STLS
        and so on are up to the caller; then start_tls())."""
        c = cls.__new__(cls)
        c.buf = bytearray()
        c.ctx = ctx or insecure_ctx()
        c.server_hostname = server_hostname
        c.sock = c.raw_sock = sock
        c.plain_greeting = c.stls_reply = c.greeting = None
        return c

    def start_tls(self, session: ssl.SSLSession | None = None) -> None:
        """Handshake on the plain socket now (after +OK to STLS)."""
        if self.buf:
            raise AssertionError(f"bytes after the STLS reply before TLS: {bytes(self.buf)!r}")
        # wrap_socket detaches the plain socket: raw_sock is then the
        # SSLSocket (TCP-level calls still work on it).
        self.sock = self.raw_sock = self.ctx.wrap_socket(
            self.raw_sock, server_hostname=self.server_hostname, session=session)

    def peer_cert_der(self) -> bytes:
        return self.sock.getpeercert(binary_form=True)

    def read_until_closed(self, timeout: float) -> bytes:
        try:
            return super().read_until_closed(timeout)
        except (ssl.SSLError, ssl.SSLEOFError):
            return b""


def parse_pop3_stream(data: bytes) -> "BufferReader":
    return BufferReader(data)


class BufferReader(RawClient):
    """Reads POP3 replies out of captured bytes (e.g. s_client's stdout)."""

    def __init__(self, data: bytes):
        self.buf = bytearray(data)
        self.sock = None
        self.greeting = None

    def _fill(self) -> None:
        raise ConnectionClosed(f"end of data; pending {bytes(self.buf[:200])!r}")

    def close(self):
        pass

    def reply(self) -> bytes:
        return self.readline()

    def multi_reply(self) -> tuple[bytes, bytes]:
        r = self.readline()
        if not r.startswith(b"+OK"):
            return r, b""
        return r, self.read_multiline()


def s_client(port: int, args: Sequence[str] = (), stdin: bytes = b"",
             starttls: bool = False, timeout: float = 20.0, quiet: bool = False,
             servername: str | None = None) -> subprocess.CompletedProcess:
    """`openssl s_client -connect 127.0.0.1:port ...` feeding `stdin` as is
    (-nocommands: no interactive letters; -ign_eof: read until the server
    closes, so send QUIT last)."""
    argv = [OPENSSL, "s_client", "-connect", f"{LOOPBACK}:{port}", "-ign_eof",
            "-nocommands"]
    if starttls:
        argv += ["-starttls", "pop3"]
    if servername is not None:
        argv += ["-servername", servername]
    else:
        argv += ["-noservername"]
    if quiet:
        argv += ["-quiet"]
    argv += list(args)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.S)


def served_cert(port: int, servername: str | None = None, args: Sequence[str] = (),
                starttls: bool = False) -> dict:
    """The server certificate's cert_info() as `openssl s_client` sees it, plus
    the negotiated protocol and peer signature type."""
    r = s_client(port, args, stdin=b"QUIT\r\n", starttls=starttls, servername=servername)
    m = _PEM_RE.search(r.stdout)
    if not m:
        raise AssertionError(f"no certificate from s_client (rc {r.returncode}): "
                             f"{r.stdout[-1500:]!r} {r.stderr[-1500:]!r}")
    info = cert_info(m.group(0))
    out = r.stdout.decode("utf-8", "replace")
    pm = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M) or \
        re.search(r"New, (TLSv[\d.]+)", out)
    info["protocol"] = pm.group(1) if pm else ""
    sm = re.search(r"Peer signature type: (\S+)", out)
    info["sigtype"] = sm.group(1) if sm else ""
    info["stdout"] = out
    return info


def curl_tls(url: str, user: str, password: str, extra: Sequence[str] = (),
             max_time: float = 60.0) -> subprocess.CompletedProcess:
    argv = [CURL, "-s", "-S", "--max-time", str(max_time), "-u", f"{user}:{password}",
            *extra, url]
    return subprocess.run(argv, capture_output=True, timeout=max_time + 10)


def ktls_available() -> bool:
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False
