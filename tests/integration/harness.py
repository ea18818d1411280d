"""Integration-test harness for popgate.

Starts real processes on loopback only (127.0.0.1) and cleans every one of them
up, even when a test fails or the runner dies:

  * pop3-synth   -- the synthetic backend from bench/ (``SYNTH_BIN``)
  * Dovecot      -- a real dovecot-pop3d with its own config, passwd-file and
                    maildirs in a temporary directory
  * popgate      -- the proxy (``POPGATE_BIN``) with a generated TOML config

Processes are stopped by PID only (SIGTERM, then SIGKILL after a bound); the
children get PR_SET_PDEATHSIG=SIGKILL so that nothing outlives a killed test
runner.  Start processes from the main thread only (PDEATHSIG fires when the
*thread* that forked exits).

Maildir seed files are written with CRLF line endings so that Dovecot serves
exactly the bytes on disk: comparisons against Dovecot are byte-exact, with no
normalisation.  pop3-synth messages are compared byte-exactly with
``pop3-synth --dump``.

Python 3.11 standard library only.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import hashlib
import json
import os
import poplib
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from typing import Callable, Iterable, Sequence

LOOPBACK = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# ---------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------

_FALLBACK_BUILD_DIRS = ("/tmp/build-it", os.path.join(REPO, "build"),
                        os.path.join(REPO, "build", "release"))


def _find_bin(env: str, rel: str) -> str:
    path = os.environ.get(env)
    if path:
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{env}={path} is not an executable file")
        return path
    for d in _FALLBACK_BUILD_DIRS:
        cand = os.path.join(d, rel)
        if os.access(cand, os.X_OK):
            return cand
    raise unittest.SkipTest(f"{env} not set and {rel} not found in "
                            f"{', '.join(_FALLBACK_BUILD_DIRS)}")


def popgate_bin() -> str:
    return _find_bin("POPGATE_BIN", "server/popgate")


def synth_bin() -> str:
    return _find_bin("SYNTH_BIN", "testbed/pop3-synth")


DOVECOT_BIN = os.environ.get("DOVECOT_BIN", "/usr/sbin/dovecot")


def require_dovecot() -> None:
    if not os.access(DOVECOT_BIN, os.X_OK):
        raise unittest.SkipTest(f"{DOVECOT_BIN} not installed")


# ---------------------------------------------------------------------------
# Process bookkeeping
# ---------------------------------------------------------------------------

_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()
_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _child_setup() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: Sequence[str], *, stdout=None, stderr=None, stdin=subprocess.DEVNULL,
          env=None, cwd=None) -> subprocess.Popen:
    proc = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, stdin=stdin,
                            env=env, cwd=cwd, preexec_fn=_child_setup,
                            close_fds=True)
    with _live_lock:
        _live[proc.pid] = proc
    return proc


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 timeout: float = 10.0) -> int | None:
    """Sends `sig` to proc (by PID), waits up to `timeout`, then SIGKILLs."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    with _live_lock:
        _live.pop(proc.pid, None)
    return proc.returncode


@atexit.register
def _kill_all() -> None:
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except Exception:
            pass


def _remove_stale_tempdirs() -> None:
    """Removes temp dirs left by test runners that were killed (SIGKILL from
    a ctest timeout skips every cleanup); their processes died with them
    (PR_SET_PDEATHSIG).  Dirs of live runners are left alone."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        m = re.match(r"popgate-it-(\d+)-", name)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue  # owner alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)


_remove_stale_tempdirs()


def make_tempdir(prefix: str) -> str:
    d = tempfile.mkdtemp(prefix=f"popgate-it-{os.getpid()}-{prefix}-")
    # Dovecot's unprivileged processes must be able to traverse it.
    os.chmod(d, 0o755)
    return d


# ---------------------------------------------------------------------------
# Ports and waiting
# ---------------------------------------------------------------------------

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


def _tail(path: str | None, n: int = 4000) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        data = f.read()
    return "\n--- " + path + " ---\n" + data[-n:].decode("utf-8", "replace")


def _read_bytes(path: str) -> bytes:
    """A file's bytes, or b"" if it does not exist (yet)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


class _ServerInDir:
    """A server process with its own temp dir `self.dir`: usable in a with
    block; cleanup() stops it and removes the dir."""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


# ---------------------------------------------------------------------------
# Message content
# ---------------------------------------------------------------------------

def make_message(seed: int, size: int, subject: str | None = None) -> bytes:
    """Deterministic RFC 5322 message of exactly `size` bytes (>= 200), CRLF.

    The body contains lines that need dot-stuffing: '.', '..', '.x', '. ',
    lines of dots, and a line that is just '.' followed by more text, so that
    a proxy or client getting dot-stuffing wrong is caught.
    """
    if size < 200:
        raise ValueError("size must be >= 200")
    rnd = random.Random(seed)
    subj = subject or f"popgate test message {seed}"
    head = (f"From: sender{seed}@example.net\r\n"
            f"To: rcpt{seed}@example.com\r\n"
            f"Subject: {subj}\r\n"
            f"Message-ID: <{seed}.popgate-it@example.net>\r\n"
            f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
            "\r\n").encode()
    specials = [b".", b"..", b".hidden", b". dot space", b"...", b".\t.",
                b"..double", b".end"]
    lines: list[bytes] = []
    total = len(head)
    i = 0
    while True:
        if i < len(specials):
            line = specials[i]
        elif rnd.random() < 0.1:
            line = b"." + bytes(rnd.choice(b"abcdefghij.") for _ in range(rnd.randrange(0, 40)))
        else:
            n = rnd.randrange(0, 77)
            line = bytes(rnd.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +-/=")
                         for _ in range(n))
        i += 1
        if total + len(line) + 2 > size - 8:
            break
        lines.append(line)
        total += len(line) + 2
    body = b"\r\n".join(lines) + b"\r\n" if lines else b""
    msg = head + body
    pad = size - len(msg)
    # Fill the rest with one last line of exactly the right length.
    if pad >= 2:
        msg += b"x" * (pad - 2) + b"\r\n"
    assert len(msg) == size, (len(msg), size)
    return msg


def make_big_message(seed: int, size: int) -> bytes:
    """Fast deterministic big message (CRLF, dot lines every 50 lines)."""
    head = (f"From: big{seed}@example.net\r\nTo: someone@example.com\r\n"
            f"Subject: big message {seed}\r\n\r\n").encode()
    block_lines = []
    for j in range(64):
        if j % 50 == 0:
            block_lines.append(b"." + b"d" * 70)
        elif j == 7:
            block_lines.append(b".")
        else:
            block_lines.append(bytes(f"{seed:04d}-{j:03d} ", "ascii") + b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWX")
    block = b"\r\n".join(block_lines) + b"\r\n"
    need = size - len(head)
    k = need // (len(block) + len(b"block 00000000\r\n"))
    parts = [head]
    for b in range(k):  # each block numbered so reordered chunks are caught
        parts.append(b"block %08d\r\n" % b)
        parts.append(block)
    msg = b"".join(parts)
    rest = size - len(msg)
    # Pad with lines of at most 78 octets (poplib refuses lines > 2048).
    pad = []
    while rest >= 80:
        pad.append(b"y" * 76 + b"\r\n")
        rest -= 78
    if rest >= 2:
        pad.append(b"y" * (rest - 2) + b"\r\n")
    elif rest == 1:
        pad.append(b"z\r\n" if not pad else b"")
        if len(pad) > 1:
            pad[0] = b"y" * 77 + b"\r\n"
        else:
            msg = msg[:-2] + b"z\r\n"
            pad = []
    msg += b"".join(pad)
    assert len(msg) == size, (len(msg), size)
    return msg


def expected_top(msg: bytes, nlines: int) -> bytes:
    """What TOP msg nlines must return (after dot-unstuffing), CRLF message."""
    sep = msg.find(b"\r\n\r\n")
    if sep < 0:
        return msg
    head = msg[:sep + 4]
    body = msg[sep + 4:]
    if nlines <= 0 or not body:
        return head
    parts = body.split(b"\r\n")
    # body ends with CRLF so the last element is b""
    lines = parts[:-1] if parts and parts[-1] == b"" else parts
    take = lines[:nlines]
    return head + b"".join(l + b"\r\n" for l in take)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


# ---------------------------------------------------------------------------
# A raw POP3 client (exact bytes)
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# pop3-synth
# ---------------------------------------------------------------------------

_SYNTH_LISTEN_RE = re.compile(rb"pop3-synth listening on 127\.0\.0\.1:(\d+)")


class Synth(_ServerInDir):
    """pop3-synth on 127.0.0.1:<ephemeral>.

    users: {"alice@example.com": "demo", ...}; messages/size or sizes.
    """

    def __init__(self, users: dict[str, str], messages: int = 3, size: int | str = 2048,
                 sizes: Sequence[int | str] | None = None, greeting: str | None = None,
                 extra_args: Sequence[str] = ()):
        self.users = dict(users)
        self.msg_args: list[str] = []
        self.dir = make_tempdir("synth")
        if len(self.users) > 20:
            path = os.path.join(self.dir, "users")
            with open(path, "w") as f:
                for u, p in self.users.items():
                    f.write(f"{u}:{p}\n")
            self.msg_args += ["--users-file", path]
        else:
            for u, p in self.users.items():
                self.msg_args += ["--user", f"{u}:{p}"]
        if sizes is not None:
            self.msg_args += ["--messages", str(len(sizes)),
                              "--sizes", ",".join(str(s) for s in sizes)]
            self.count = len(sizes)
        else:
            self.msg_args += ["--messages", str(messages), "--size", str(size)]
            self.count = messages
        self.greeting = greeting
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._dump_cache: dict[tuple[str, int], bytes] = {}
        self.bin = synth_bin()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> "Synth":
        argv = [self.bin, "--listen", f"{LOOPBACK}:0", *self.msg_args, *self.extra_args]
        if self.greeting is not None:
            argv += ["--greeting", self.greeting]
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        out = open(self.out_path, "wb")
        err = open(self.err_path, "wb")
        try:
            self.proc = spawn(argv, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path, "rb") as f:
                m = _SYNTH_LISTEN_RE.search(f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"pop3-synth exited with {self.proc.returncode}"
                                   + _tail(self.err_path) + _tail(self.out_path))
            time.sleep(0.02)
        raise RuntimeError("pop3-synth did not print its listening line" + _tail(self.err_path))

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, timeout=5)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def dump(self, user: str, n: int) -> bytes:
        key = (user, n)
        if key not in self._dump_cache:
            r = subprocess.run([self.bin, *self.msg_args, "--dump", user, str(n)],
                               capture_output=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"pop3-synth --dump {user} {n} failed: {r.returncode} "
                                   f"{r.stderr[-500:]!r}")
            self._dump_cache[key] = r.stdout
        return self._dump_cache[key]

    def dumps(self, user: str) -> list[bytes]:
        return [self.dump(user, i) for i in range(1, self.count + 1)]


# ---------------------------------------------------------------------------
# Dovecot
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class SeededMessage:
    key: str        # maildir base name (before ':')
    data: bytes


class Dovecot(_ServerInDir):
    """A real Dovecot serving POP3 only, on 127.0.0.1:<port>, in a temp dir.

    Users live in a passwd-file ({PLAIN}); mailboxes are maildirs under
    <dir>/mail/<domain>/<local>, owned by an unprivileged uid (``nobody`` when
    run as root, else the current user).  Users can be added while Dovecot runs
    (passwd-file is re-read on change).
    """

    def __init__(self, process_limit: int = 300):
        require_dovecot()
        self.dir = make_tempdir("dovecot")
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.passwd_path = os.path.join(self.dir, "passwd")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.process_limit = process_limit
        self.users: dict[str, str] = {}
        self.seeded: dict[str, list[SeededMessage]] = {}
        self._seq = 0
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        open(self.passwd_path, "w").close()
        os.chmod(self.passwd_path, 0o644)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def maildir(self, user: str) -> str:
        local, _, domain = user.partition("@")
        return os.path.join(self.dir, "mail", domain, local)

    def add_user(self, user: str, password: str, messages: Iterable[bytes] = ()) -> list[SeededMessage]:
        """Creates the maildir with the given messages (CRLF bytes, in order)."""
        md = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        seeded = []
        for data in messages:
            self._seq += 1
            key = f"{1700000000 + self._seq}.M{self._seq}P{os.getpid()}.popgate-it"
            path = os.path.join(md, "cur", key + ":2,")
            with open(path, "wb") as f:
                f.write(data)
            seeded.append(SeededMessage(key, data))
        self._chown_tree(os.path.join(self.dir, "mail"))
        self.users[user] = password
        self.seeded.setdefault(user, []).extend(seeded)
        self._write_passwd()
        if self.proc is not None and self.proc.poll() is None:
            # Dovecot stat()s the passwd-file at most once per second
            # (ioloop_time granularity): let the next second begin.
            now = time.time()
            time.sleep(int(now) + 1.05 - now)
        return seeded

    def _write_passwd(self) -> None:
        tmp = self.passwd_path + ".tmp"
        with open(tmp, "w") as f:
            for u, p in self.users.items():
                f.write(f"{u}:{{PLAIN}}{p}::::::\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.passwd_path)

    def _chown_tree(self, root: str) -> None:
        if os.geteuid() != 0:
            return
        os.chown(root, self.uid, self.gid)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                os.chown(os.path.join(dirpath, n), self.uid, self.gid)

    def present_keys(self, user: str) -> set[str]:
        md = self.maildir(user)
        keys = set()
        for sub in ("cur", "new"):
            d = os.path.join(md, sub)
            if os.path.isdir(d):
                for n in os.listdir(d):
                    keys.add(n.split(":", 1)[0])
        return keys

    def _config(self) -> str:
        user_name = pwd.getpwuid(self.uid).pw_name
        lines = [
            f"base_dir = {self.dir}/run",
            f"state_dir = {self.dir}/state",
            f"instance_name = popgate-it-{os.path.basename(self.dir)}",
            "protocols = pop3",
            f"listen = {LOOPBACK}",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",
            # No anvil auth penalty for repeated failures from loopback.
            f"login_trusted_networks = {LOOPBACK}/32",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            "auth_verbose = yes",
            "first_valid_uid = 1",
            f"mail_location = maildir:{self.dir}/mail/%d/%n",
            f"mail_uid = {self.uid}",
            f"mail_gid = {self.gid}",
            "mail_max_userip_connections = 1000",
            f"default_process_limit = {self.process_limit}",
            f"default_client_limit = {max(1000, self.process_limit * 4)}",
            "pop3_uidl_format = %08Xu%08Xv",
        ]
        if os.geteuid() != 0:
            lines += [f"default_login_user = {user_name}",
                      f"default_internal_user = {user_name}"]
        lines += [
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.passwd_path}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={self.uid} gid={self.gid} home={self.dir}/mail/%d/%n",
            "}",
            "service pop3-login {",
            "  inet_listener pop3 {",
            f"    address = {LOOPBACK}",
            f"    port = {self.port}",
            "  }",
            "  inet_listener pop3s {",
            "    port = 0",
            "  }",
            f"  process_min_avail = 1",
            "}",
            "service pop3 {",
            f"  process_limit = {self.process_limit}",
            "}",
            "service anvil {",
            "  chroot =",
            # mode 0 removes the socket: no auth penalty (growing delay after
            # failed logins from 127.0.0.1), which would make tests slow.
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
        ]
        if os.geteuid() != 0:
            lines += ["service pop3-login {", "  chroot =", "}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> "Dovecot":
        os.makedirs(os.path.join(self.dir, "mail"), exist_ok=True)
        self._chown_tree(os.path.join(self.dir, "mail"))
        last_err = None
        for _attempt in range(3):  # retry if the chosen port got taken
            self.port = free_port()
            with open(self.conf_path, "w") as f:
                f.write(self._config())
            out = open(os.path.join(self.dir, "dovecot.stdout"), "wb")
            try:
                self.proc = spawn([DOVECOT_BIN, "-F", "-c", self.conf_path],
                                  stdout=out, stderr=subprocess.STDOUT)
            finally:
                out.close()
            try:
                wait_for_greeting(self.port, self.proc, timeout, "dovecot",
                                  os.path.join(self.dir, "dovecot.stdout"))
                return self
            except RuntimeError as e:
                last_err = e
                stop_process(self.proc, timeout=10)
                self.proc = None
        raise RuntimeError(f"dovecot failed to start: {last_err}" + _tail(self.log_path))

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, timeout=15)

    def log(self) -> str:
        return _read_bytes(self.log_path).decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# popgate
# ---------------------------------------------------------------------------

def _toml_str(s: str) -> str:
    return json.dumps(s)  # JSON string escapes are valid TOML basic strings


@dataclasses.dataclass
class Tenant:
    name: str
    domains: list[str]
    backends: list[str]                  # "127.0.0.1:PORT"
    users: dict[str, str] = dataclasses.field(default_factory=dict)  # user -> plain password
    passwd_lines: list[str] = dataclasses.field(default_factory=list)  # extra raw lines
    auth: str = "file"
    username: str = "full"
    weights: list[int] | None = None


class Popgate(_ServerInDir):
    """popgate with a generated config in a temp dir, on 127.0.0.1:<port>."""

    def __init__(self, tenants: Sequence[Tenant], server: dict | None = None,
                 default_tenant: str | None = None, extra_toml: str = ""):
        self.bin = popgate_bin()
        self.dir = make_tempdir("popgate")
        self.tenants = list(tenants)
        self.server = {
            "workers": 2,
            "auth_threads": 2,
            "auth_failure_delay": "100ms",
            "preauth_idle_timeout": "60s",
            "backend_timeout": "2s",
            "max_auth_failures": 3,
            "shutdown_grace": "2s",
        }
        if server:
            self.server.update(server)
        self.default_tenant = default_tenant
        self.extra_toml = extra_toml
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.config_path = os.path.join(self.dir, "popgate.toml")
        self.stderr_path = os.path.join(self.dir, "popgate.stderr")
        self.stdout_path = os.path.join(self.dir, "popgate.stdout")
        self._stderr_offset = 0

    def passwd_path(self, tenant: Tenant) -> str:
        return os.path.join(self.dir, f"{tenant.name}.passwd")

    def write_passwd(self, tenant: Tenant) -> None:
        tmp = self.passwd_path(tenant) + ".tmp"
        with open(tmp, "w") as f:
            for u, p in tenant.users.items():
                f.write(f"{u}:{{PLAIN}}{p}\n")
            for l in tenant.passwd_lines:
                f.write(l + "\n")
        os.replace(tmp, self.passwd_path(tenant))

    def config_text(self) -> str:
        out = ["[server]"]
        for k, v in self.server.items():
            if isinstance(v, str):
                out.append(f"{k} = {_toml_str(v)}")
            elif isinstance(v, bool):
                out.append(f"{k} = {'true' if v else 'false'}")
            else:
                out.append(f"{k} = {v}")
        out += ["", "[[listener]]", f"address = {_toml_str(f'{LOOPBACK}:{self.port}')}"]
        if self.default_tenant:
            out.append(f"default_tenant = {_toml_str(self.default_tenant)}")
        for t in self.tenants:
            out += ["", "[[tenant]]",
                    f"name = {_toml_str(t.name)}",
                    "domains = [" + ", ".join(_toml_str(d) for d in t.domains) + "]",
                    f"username = {_toml_str(t.username)}",
                    f"auth = {_toml_str(t.auth)}"]
            if t.auth == "file":
                out.append(f"passwd_file = {_toml_str(self.passwd_path(t))}")
            ws = t.weights or [1] * len(t.backends)
            out.append("backends = [" + ", ".join(
                f"{{ address = {_toml_str(a)}, weight = {w} }}" for a, w in zip(t.backends, ws)) + "]")
        if self.extra_toml:
            out += ["", self.extra_toml]
        return "\n".join(out) + "\n"

    def write_config(self) -> None:
        for t in self.tenants:
            if t.auth == "file":
                self.write_passwd(t)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text())
        os.replace(tmp, self.config_path)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> "Popgate":
        last_err = None
        for _attempt in range(3):
            self.port = free_port()
            self.write_config()
            err = open(self.stderr_path, "ab")
            out = open(self.stdout_path, "ab")
            try:
                self.proc = spawn([self.bin, "--config", self.config_path],
                                  stdout=out, stderr=err)
            finally:
                err.close()
                out.close()
            try:
                self.greeting = wait_for_greeting(self.port, self.proc, timeout, "popgate",
                                                  self.stderr_path)
                return self
            except RuntimeError as e:
                last_err = e
                stop_process(self.proc, signal.SIGKILL, timeout=5)
                self.proc = None
        raise RuntimeError(f"popgate failed to start: {last_err}")

    def stop(self, timeout: float = 10.0) -> int | None:
        return stop_process(self.proc, signal.SIGTERM, timeout=timeout)

    def reload(self) -> None:
        os.kill(self.proc.pid, signal.SIGHUP)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        return self.stderr_bytes().decode("utf-8", "replace")

    def stderr_bytes(self) -> bytes:
        return _read_bytes(self.stderr_path)

    def log_records(self) -> list[dict]:
        """Every stderr line that parses as a JSON object."""
        recs = []
        for line in self.stderr_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                recs.append(v)
        return recs

    def session_records(self, **match) -> list[dict]:
        return [r for r in self.log_records()
                if all(r.get(k) == v for k, v in match.items())]

    def wait_for_record(self, timeout: float = 5.0, **match) -> dict | None:
        recs = wait_until(lambda: self.session_records(**match), timeout)
        return recs[-1] if recs else None

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


# ---------------------------------------------------------------------------
# unittest helpers
# ---------------------------------------------------------------------------

class IntegrationTestCase(unittest.TestCase):
    """TestCase with helpers that register cleanups for every process."""

    maxDiff = 2000

    def start_synth(self, *a, **kw) -> Synth:
        s = Synth(*a, **kw)
        self.addCleanup(s.cleanup)
        return s.start()

    def start_dovecot(self, **kw) -> Dovecot:
        d = Dovecot(**kw)
        self.addCleanup(d.cleanup)
        return d.start()

    def start_popgate(self, *a, **kw) -> Popgate:
        p = Popgate(*a, **kw)
        self.addCleanup(p.cleanup)
        p.start()
        self.addCleanup(self._check_popgate_alive, p)
        return p

    def _check_popgate_alive(self, p: Popgate) -> None:
        # Cleanups run LIFO: this runs before p.cleanup.  A crash is a bug.
        if p.proc is not None and p.proc.poll() is not None and p.proc.returncode not in (0,):
            if not getattr(p, "expected_exit", False):
                self.fail(f"popgate died with {p.proc.returncode}" + _tail(p.stderr_path))

    def raw(self, port: int, **kw) -> RawClient:
        c = RawClient(port, **kw)
        self.addCleanup(c.close)
        return c

    def assertBytesEqual(self, got: bytes, want: bytes, what: str = "") -> None:
        if got == want:
            return
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                 min(len(got), len(want)))
        self.fail(f"{what}: bytes differ: len got={len(got)} want={len(want)}, "
                  f"first difference at offset {i}: got {got[max(0, i - 40):i + 40]!r} "
                  f"want {want[max(0, i - 40):i + 40]!r}")


class ModuleResources:
    """Processes shared by the tests of one module (setUpModule/tearDownModule)."""

    def __init__(self):
        self._cleanups: list[Callable[[], None]] = []

    def add(self, obj, start: bool = True):
        self._cleanups.append(obj.cleanup)
        if start:
            obj.start()
        return obj

    def close(self):
        errs = []
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning
                errs.append(e)
        if errs:
            raise errs[0]


# ---------------------------------------------------------------------------
# A misbehaving backend (Python threads, loopback only)
# ---------------------------------------------------------------------------

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
