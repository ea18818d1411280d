"""TLS additions to the integration harness (harness.py stays the base).

  * Pki           -- a test CA and leaf certificates made with the `openssl`
                     CLI in a temp dir: CA-signed ECDSA/RSA leaves with SANs,
                     self-signed ones, and expired ones (`openssl ca` with
                     -startdate/-enddate in the past: OpenSSL 3.0's `x509`
                     has no -not_before).
  * TlsPopgate    -- harness.Popgate with several listeners (none / starttls /
                     implicit), a [tls] section and per-tenant TLS settings.
  * TlsDovecot    -- harness.Dovecot with TLS: STLS on its plain port and a
                     pop3s (implicit TLS) listener on `pop3s_port`.
  * TlsClient     -- harness.RawClient over TLS (implicit, or STLS first).
  * s_client(), served_cert(), curl_tls() -- the openssl CLI and curl.

Everything listens on 127.0.0.1 only; processes are stopped by PID through
harness.spawn/stop_process; temp dirs come from harness.make_tempdir (and are
removed by their owners' cleanup, or on import when their runner died).
Python 3.11 standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from typing import Sequence

import harness
from harness import LOOPBACK

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl") or "/usr/bin/curl"


def require_openssl() -> None:
    import unittest
    if not os.access(OPENSSL, os.X_OK):
        raise unittest.SkipTest("openssl CLI not installed")


def _run(argv: Sequence[str], timeout: float = 60.0, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): "
                           f"{r.stderr.decode('utf-8', 'replace')[-1500:]}")
    return r


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class CertKey:
    cert: str
    key: str
    subject_cn: str

    def pair(self) -> dict:
        return {"cert": self.cert, "key": self.key}


class Pki:
    """A test CA plus leaves, all files in one temp dir (cleanup() removes it)."""

    def __init__(self, ca_cn: str = "popgate-it test CA"):
        require_openssl()
        self.dir = harness.make_tempdir("pki")
        self._n = 0
        self.ca = self._make_ca(ca_cn)
        self.ca_file = self.ca.cert

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):  # for harness.ModuleResources.add
        return self

    def _path(self, stem: str) -> str:
        return os.path.join(self.dir, stem)

    @staticmethod
    def _newkey_args(key_type: str) -> list[str]:
        if key_type == "ec":
            return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if key_type == "rsa":
            return ["-newkey", "rsa:2048"]
        raise ValueError(key_type)

    def _make_ca(self, cn: str) -> CertKey:
        cert, key = self._path("ca.pem"), self._path("ca.key")
        _run([OPENSSL, "req", "-x509", *self._newkey_args("ec"), "-nodes",
              "-keyout", key, "-out", cert, "-days", "3650", "-subj", f"/CN={cn}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return CertKey(cert, key, cn)

    def _ext_file(self, stem: str, sans: Sequence[str]) -> str:
        path = self._path(stem + ".ext")
        with open(path, "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage = serverAuth,clientAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid\n")
            if sans:
                f.write("subjectAltName = " + ",".join(_san(s) for s in sans) + "\n")
        return path

    def leaf(self, cn: str, sans: Sequence[str], key_type: str = "ec",
             expired: bool = False) -> CertKey:
        """A leaf signed by this CA. sans: DNS names and IP addresses."""
        self._n += 1
        stem = f"leaf{self._n}-{re.sub(r'[^a-zA-Z0-9.-]', '_', cn)}"
        cert, key, csr = self._path(stem + ".pem"), self._path(stem + ".key"), \
            self._path(stem + ".csr")
        _run([OPENSSL, "req", "-new", *self._newkey_args(key_type), "-nodes",
              "-keyout", key, "-out", csr, "-subj", f"/CN={cn}"])
        ext = self._ext_file(stem, sans)
        if not expired:
            _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca.cert,
                  "-CAkey", self.ca.key, "-set_serial", str(1000 + self._n),
                  "-days", "825", "-sha256", "-extfile", ext, "-out", cert])
        else:
            _run([OPENSSL, "ca", "-batch", "-config", self._ca_config(),
                  "-startdate", "20000101000000Z", "-enddate", "20010101000000Z",
                  "-extfile", ext, "-notext", "-in", csr, "-out", cert])
        os.chmod(key, 0o644)  # Dovecot's config reader runs as root; fine either way
        return CertKey(cert, key, cn)

    def self_signed(self, cn: str, sans: Sequence[str], key_type: str = "ec") -> CertKey:
        """Signed by nobody (its own key): unknown to every verifier."""
        self._n += 1
        stem = f"self{self._n}-{re.sub(r'[^a-zA-Z0-9.-]', '_', cn)}"
        cert, key = self._path(stem + ".pem"), self._path(stem + ".key")
        args = [OPENSSL, "req", "-x509", *self._newkey_args(key_type), "-nodes",
                "-keyout", key, "-out", cert, "-days", "825", "-subj", f"/CN={cn}"]
        if sans:
            args += ["-addext", "subjectAltName=" + ",".join(_san(s) for s in sans)]
        _run(args)
        os.chmod(key, 0o644)
        return CertKey(cert, key, cn)

    def _ca_config(self) -> str:
        d = self._path("ca-db")
        if not os.path.isdir(d):
            os.makedirs(os.path.join(d, "new"))
            open(os.path.join(d, "index.txt"), "w").close()
            with open(os.path.join(d, "serial"), "w") as f:
                f.write("5000\n")
        conf = os.path.join(d, "ca.cnf")
        with open(conf, "w") as f:
            f.write(f"""[ ca ]
default_ca = test_ca
[ test_ca ]
database = {d}/index.txt
new_certs_dir = {d}/new
serial = {d}/serial
certificate = {self.ca.cert}
private_key = {self.ca.key}
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
""")
        return conf


def _san(s: str) -> str:
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*", s):
        return f"IP:{s}"
    return f"DNS:{s}"


def demo_certs(dest: str) -> tuple[CertKey, CertKey]:
    """scripts/make-demo-certs.sh into dest: (ECDSA, RSA), self-signed."""
    _run(["bash", os.path.join(harness.REPO, "scripts", "make-demo-certs.sh"), dest])
    return (CertKey(os.path.join(dest, "ecdsa.pem"), os.path.join(dest, "ecdsa.key"),
                    "popgate demo (ECDSA)"),
            CertKey(os.path.join(dest, "rsa.pem"), os.path.join(dest, "rsa.key"),
                    "popgate demo (RSA)"))


def cert_info(pem: bytes) -> dict:
    """subject (one line), CN, SANs and key type of a PEM/DER certificate."""
    inform = "PEM" if pem.lstrip().startswith(b"-----BEGIN") else "DER"
    r = _run([OPENSSL, "x509", "-inform", inform, "-noout", "-subject",
              "-ext", "subjectAltName", "-text"], input=pem)
    text = r.stdout.decode("utf-8", "replace")
    subject = text.splitlines()[0]
    m = re.search(r"CN\s*=\s*([^,/\n]+)", subject)
    sans = re.findall(r"(?:DNS|IP Address):([^,\s]+)", text.split("Certificate:")[0])
    key = "ec" if "id-ecPublicKey" in text else "rsa" if "rsaEncryption" in text else "?"
    return {"subject": subject, "cn": m.group(1).strip() if m else "",
            "sans": sans, "key": key}


# ---------------------------------------------------------------------------
# popgate with TLS
# ---------------------------------------------------------------------------

def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, CertKey):
        return toml_value(v.pair())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


@dataclasses.dataclass
class Listener:
    name: str                       # key into TlsPopgate.ports
    tls: str = "none"               # none | starttls | implicit
    certificates: Sequence[CertKey] | None = None
    plaintext_auth: str | None = None
    default_tenant: str | None = None


@dataclasses.dataclass
class TlsTenant(harness.Tenant):
    sni_names: list[str] | None = None
    certificates: Sequence[CertKey] | None = None
    backend_tls: dict | None = None


class TlsPopgate(harness.Popgate):
    """popgate with several listeners; `ports[name]` is each one's port and
    `port` the first non-implicit one (or the first)."""

    def __init__(self, tenants: Sequence[harness.Tenant], listeners: Sequence[Listener],
                 tls: dict | None = None, server: dict | None = None):
        super().__init__(tenants, server=server)
        self.listeners = list(listeners)
        self.tls = dict(tls or {})
        self.ports: dict[str, int] = {}

    def config_text(self) -> str:
        out = ["[server]"]
        out += [f"{k} = {toml_value(v)}" for k, v in self.server.items()]
        if self.tls:
            out += ["", "[tls]"] + [f"{k} = {toml_value(v)}" for k, v in self.tls.items()]
        for l in self.listeners:
            out += ["", "[[listener]]",
                    f"address = {toml_value(f'{LOOPBACK}:{self.ports[l.name]}')}",
                    f"tls = {toml_value(l.tls)}"]
            if l.default_tenant:
                out.append(f"default_tenant = {toml_value(l.default_tenant)}")
            if l.certificates:
                out.append(f"certificates = {toml_value(list(l.certificates))}")
            if l.plaintext_auth:
                out.append(f"plaintext_auth = {toml_value(l.plaintext_auth)}")
        for t in self.tenants:
            out += ["", "[[tenant]]",
                    f"name = {toml_value(t.name)}",
                    f"domains = {toml_value(t.domains)}",
                    f"username = {toml_value(t.username)}",
                    f"auth = {toml_value(t.auth)}"]
            if t.auth == "file":
                out.append(f"passwd_file = {toml_value(self.passwd_path(t))}")
            ws = t.weights or [1] * len(t.backends)
            out.append("backends = " + toml_value(
                [{"address": a, "weight": w} for a, w in zip(t.backends, ws)]))
            if isinstance(t, TlsTenant):
                if t.sni_names is not None:
                    out.append(f"sni_names = {toml_value(t.sni_names)}")
                if t.certificates:
                    out.append(f"certificates = {toml_value(list(t.certificates))}")
                if t.backend_tls is not None:
                    out.append(f"backend_tls = {toml_value(t.backend_tls)}")
        return "\n".join(out) + "\n"

    def start(self, timeout: float = 10.0) -> "TlsPopgate":
        last_err = None
        for _attempt in range(3):
            used: set[int] = set()
            for l in self.listeners:
                p = harness.free_port()
                while p in used:
                    p = harness.free_port()
                used.add(p)
                self.ports[l.name] = p
            plain = [l for l in self.listeners if l.tls != "implicit"]
            self.port = self.ports[(plain or self.listeners)[0].name]
            self.write_config()
            err = open(self.stderr_path, "ab")
            out = open(self.stdout_path, "ab")
            try:
                self.proc = harness.spawn([self.bin, "--config", self.config_path],
                                          stdout=out, stderr=err)
            finally:
                err.close()
                out.close()
            try:
                for l in self.listeners:
                    port = self.ports[l.name]
                    if l.tls == "implicit":
                        wait_for_tls_greeting(port, self.proc, timeout, self.stderr_path)
                    else:
                        g = harness.wait_for_greeting(port, self.proc, timeout, "popgate",
                                                      self.stderr_path)
                        if l is (plain or [None])[0]:
                            self.greeting = g
                return self
            except RuntimeError as e:
                last_err = e
                harness.stop_process(self.proc, signal.SIGKILL, timeout=5)
                self.proc = None
        raise RuntimeError(f"popgate failed to start: {last_err}")

    def log_mark(self) -> int:
        """How many JSON lines popgate has logged so far (see record_after)."""
        return len(self.log_records())

    def record_after(self, mark: int, timeout: float = 5.0, **match) -> dict | None:
        """The first JSON line after `mark` matching `match` (client ports
        are reused, so a client address alone may match an older session)."""
        def get():
            for r in self.log_records()[mark:]:
                if all(r.get(k) == v for k, v in match.items()):
                    return r
            return None
        return harness.wait_until(get, timeout)

    def records_for(self, user: str) -> list[dict]:
        return [r for r in self.session_records(event="session") if r.get("user") == user]

    def wait_for_user_record(self, user: str, timeout: float = 5.0, n: int = 1, **match) -> list[dict]:
        def get():
            recs = [r for r in self.records_for(user)
                    if all(r.get(k) == v for k, v in match.items())]
            return recs if len(recs) >= n else None
        return harness.wait_until(get, timeout) or \
            [r for r in self.records_for(user) if all(r.get(k) == v for k, v in match.items())]


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
                               + harness._tail(log_path))
        try:
            with TlsClient(port, timeout=1.0) as c:
                g = c.greeting
                try:
                    c.send(b"QUIT\r\n")
                    c.readline()
                except (OSError, harness.ConnectionClosed):
                    pass
            if g.startswith(b"+OK"):
                return g
        except (OSError, harness.ConnectionClosed) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"no TLS greeting on port {port} within {timeout}s: {last!r}"
                       + harness._tail(log_path))


# ---------------------------------------------------------------------------
# Dovecot with TLS
# ---------------------------------------------------------------------------

class TlsDovecot(harness.Dovecot):
    """Dovecot with `ssl = yes|required` and the given certificate: STLS on
    `port`, implicit TLS on `pop3s_port`."""

    def __init__(self, cert: CertKey, ssl_mode: str = "required", extra: str = "", **kw):
        super().__init__(**kw)
        self.cert = cert
        self.ssl_mode = ssl_mode
        self.extra = extra  # more top-level settings, e.g. client-cert checks
        self.pop3s_port: int | None = None

    def _config(self) -> str:
        text = super()._config()
        p = harness.free_port()
        while p == self.port:
            p = harness.free_port()
        self.pop3s_port = p
        ssl_block = (f"ssl = {self.ssl_mode}\n"
                     f"ssl_cert = <{self.cert.cert}\n"
                     f"ssl_key = <{self.cert.key}\n"
                     "ssl_min_protocol = TLSv1.2\n" + self.extra
                     + ("\n" if self.extra and not self.extra.endswith("\n") else ""))
        old_ssl = "ssl = no\n"
        old_pop3s = "  inet_listener pop3s {\n    port = 0\n  }\n"
        new_pop3s = ("  inet_listener pop3s {\n"
                     f"    address = {LOOPBACK}\n"
                     f"    port = {self.pop3s_port}\n"
                     "    ssl = yes\n  }\n")
        if old_ssl not in text or old_pop3s not in text:
            raise RuntimeError("harness.Dovecot config changed: TlsDovecot must be updated")
        return text.replace(old_ssl, ssl_block).replace(old_pop3s, new_pop3s)

    @property
    def pop3s_address(self) -> str:
        return f"{LOOPBACK}:{self.pop3s_port}"


def terminate_all(objs) -> None:
    """SIGTERM to every object's `proc` (by PID) at once, so that their
    cleanup()s then wait in parallel (a Dovecot takes about 1 s to stop)."""
    for o in objs:
        p = getattr(o, "proc", None)
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------

class TlsClient(harness.RawClient):
    """harness.RawClient over TLS.  mode "implicit": TLS from the first byte;
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


class BufferReader(harness.RawClient):
    """Reads POP3 replies out of captured bytes (e.g. s_client's stdout)."""

    def __init__(self, data: bytes):
        self.buf = bytearray(data)
        self.sock = None
        self.greeting = None

    def _fill(self) -> None:
        raise harness.ConnectionClosed(f"end of data; pending {bytes(self.buf[:200])!r}")

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
