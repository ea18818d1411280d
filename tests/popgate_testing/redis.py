"""A real redis-server (Debian's) for the tests of store = "redis": its own
config in a temp dir, on a free loopback port, nothing saved to disk,
stopped by PID; kill/pause/resume/restart on the same port for the outage
cases, and a tiny RESP client (`command`) to look at the keys."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

from .paths import LOOPBACK, make_tempdir, scaled
from .ports import free_port
from .processes import _ServerInDir, _tail, spawn, stop_process


def redis_server_bin() -> str | None:
    """The redis-server binary, or None when it is not installed."""
    return os.environ.get("REDIS_SERVER") or shutil.which("redis-server")


class RedisServer(_ServerInDir):
    """redis-server on 127.0.0.1:<free port>; `password`: requirepass."""

    def __init__(self, password: str | None = None, port: int | None = None):
        self.bin = redis_server_bin()
        if self.bin is None:
            raise RuntimeError("redis-server is not installed")
        self.dir = make_tempdir("redis")
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen | None = None
        self.conf_path = os.path.join(self.dir, "redis.conf")
        self.log_path = os.path.join(self.dir, "redis.log")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def output_paths(self) -> list[str]:
        return []

    def _write_config(self) -> None:
        lines = [
            f"port {self.port}",
            f"bind {LOOPBACK}",
            "protected-mode no",
            'save ""',
            "appendonly no",
            f"dir {self.dir}",
            f"logfile {self.log_path}",
            "daemonize no",
            "databases 4",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self._write_config()
        self.proc = spawn([self.bin, self.conf_path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}"
                                   + _tail(self.log_path))
            try:
                if self.command("PING") in (b"PONG", "PONG"):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING" + _tail(self.log_path))

    def stop(self) -> None:
        self.resume()
        stop_process(self.proc, signal.SIGTERM, timeout=scaled(5))

    def kill(self) -> None:
        """SIGKILL by PID (a crash: no clean close of client connections)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: accepted connections stay open, nothing is answered."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> "RedisServer":
        """A fresh server on the same port (its data is gone: save "")."""
        self.kill()
        return self.start()

    # --- A minimal RESP client: enough to read keys in assertions.

    def command(self, *args: str | bytes, timeout: float = 2.0):
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as s:
            f = s.makefile("rb")
            out = b""
            if self.password:
                out += _encode(["AUTH", self.password])
            out += _encode(list(args))
            s.sendall(out)
            if self.password:
                _read_reply(f)
            return _read_reply(f)


def _encode(args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read_reply(f) for _ in range(n)]
    raise OSError(f"bad RESP line {line!r}")
