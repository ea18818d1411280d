"""A real HAProxy (Debian's `haproxy`) in front of popgate: its own config
in a temp dir, `mode tcp` frontends on free loopback ports, started in the
foreground (-db) and stopped by PID; its admin socket for the servers'
states (a health check that sends a PROXY LOCAL header and expects popgate's
greeting shows up as UP there).

    h = Haproxy([HaproxyFrontend("v2", target="127.0.0.1:1110",
                                 server_options="send-proxy-v2")])
    with h:
        socket.create_connection(("127.0.0.1", h.ports["v2"]))

Python 3.11 standard library only.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Sequence

from .paths import LOOPBACK, make_tempdir, scaled
from .ports import free_port
from .processes import _ServerInDir, _tail, spawn, stop_process

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def require_haproxy() -> None:
    """Raises unittest.SkipTest unless HAProxy is installed (it is a CI
    dependency: scripts/install-deps.sh; a skip is reported, not hidden)."""
    if not os.access(HAPROXY, os.X_OK):
        import unittest
        raise unittest.SkipTest(f"haproxy not installed ({HAPROXY}); "
                                "scripts/install-deps.sh installs it")


@dataclasses.dataclass
class HaproxyFrontend:
    """One `mode tcp` frontend and its backend with one server.

    target: the server's "host:port"; server_options: what follows it on
    the server line (send-proxy, send-proxy-v2, check ...); backend_lines:
    more lines of the backend section (option tcp-check, tcp-check ...).
    """
    name: str
    target: str
    server_options: str = ""
    backend_lines: Sequence[str] = ()


class Haproxy(_ServerInDir):
    """HAProxy with one frontend per HaproxyFrontend on 127.0.0.1; `ports`
    maps each frontend's name to its port."""

    def __init__(self, frontends: Sequence[HaproxyFrontend], *,
                 timeout_client: str = "30s", timeout_server: str = "30s"):
        self.frontends = list(frontends)
        self.timeout_client = timeout_client
        self.timeout_server = timeout_server
        self.dir = make_tempdir("haproxy")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.admin_path = os.path.join(self.dir, "admin.sock")
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None

    def output_paths(self) -> list[str]:
        return []  # HAProxy is not built with sanitizers: nothing to scan

    def config_text(self) -> str:
        out = [
            "# tests: HAProxy in front of popgate (popgate_testing/haproxy.py)",
            "global",
            "  maxconn 200",
            "  nbthread 1",
            f"  stats socket {self.admin_path} mode 600 level admin",
            "defaults",
            "  mode tcp",
            "  timeout connect 2s",
            f"  timeout client {self.timeout_client}",
            f"  timeout server {self.timeout_server}",
            "  timeout check 2s",
        ]
        for f in self.frontends:
            out += ["", f"frontend fe_{f.name}",
                    f"  bind {LOOPBACK}:{self.ports[f.name]}",
                    f"  default_backend be_{f.name}",
                    f"backend be_{f.name}"]
            out += [f"  {line}" for line in f.backend_lines]
            out.append(f"  server s_{f.name} {f.target} {f.server_options}".rstrip())
        return "\n".join(out) + "\n"

    def _choose_ports(self) -> None:
        used: set[int] = set()
        for f in self.frontends:
            p = free_port()
            while p in used:
                p = free_port()
            used.add(p)
            self.ports[f.name] = p

    def _listening(self, port: int) -> bool:
        """Whether something is bound to the port (a bind of ours fails):
        no connection is made, so popgate sees nothing of the probe."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((LOOPBACK, port))
            return False
        except OSError:
            return True
        finally:
            s.close()

    def start(self, timeout: float = 10.0) -> "Haproxy":
        """Writes the config, checks it (haproxy -c), starts HAProxy and
        waits until every frontend listens (3 attempts: a port may get
        taken)."""
        timeout = scaled(timeout)
        last = ""
        for _attempt in range(3):
            self._choose_ports()
            with open(self.config_path, "w") as f:
                f.write(self.config_text())
            check = subprocess.run([HAPROXY, "-c", "-q", "-f", self.config_path],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode != 0:
                raise RuntimeError(f"haproxy -c refused the config:\n{check.stdout}"
                                   f"{check.stderr}\n{self.config_text()}")
            log = open(self.log_path, "ab")
            try:
                self.proc = spawn([HAPROXY, "-db", "-f", self.config_path],
                                  stdout=log, stderr=log)
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if all(self._listening(p) for p in self.ports.values()) and \
                        os.path.exists(self.admin_path):
                    return self
                time.sleep(0.02)
            last = f"haproxy exited {self.proc.poll()} or did not listen" + _tail(self.log_path)
            stop_process(self.proc, signal.SIGKILL, timeout=5)
            self.proc = None
        raise RuntimeError(f"haproxy failed to start: {last}")

    def stop(self, timeout: float = 10.0) -> int | None:
        # SIGUSR1 would be a soft stop (waits for sessions); tests want it
        # gone now.
        return stop_process(self.proc, signal.SIGTERM, timeout=scaled(timeout))

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def admin(self, command: str, timeout: float = 5.0) -> str:
        """One command on the admin socket ("show stat", ...), its answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(self.admin_path)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            s.close()

    def server_stat(self, frontend: str, column: str) -> str:
        """One column of "show stat" for the frontend's server: "status"
        ("UP", "DOWN", "UP 1/2", ...), "check_status" ("L7OK" once a
        tcp-check passed, "L7TOUT", "L4CON", ...), "chkfail", ...; "" if
        not found."""
        lines = self.admin("show stat").splitlines()
        if not lines:
            return ""
        header = lines[0].lstrip("# ").split(",")
        try:
            px, sv, col = header.index("pxname"), header.index("svname"), header.index(column)
        except ValueError:
            return ""
        for line in lines[1:]:
            cols = line.split(",")
            if len(cols) > col and cols[px] == f"be_{frontend}" and cols[sv] == f"s_{frontend}":
                return cols[col]
        return ""

    def server_status(self, frontend: str) -> str:
        """The frontend's server as HAProxy's checks see it ("UP", "DOWN",
        "no check", ...)."""
        return self.server_stat(frontend, "status")
