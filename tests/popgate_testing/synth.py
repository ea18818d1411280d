"""pop3-synth, the synthetic backend (testbed/synth): started on an
ephemeral loopback port, messages compared byte for byte with
``pop3-synth --dump``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from typing import Sequence

from .paths import LOOPBACK, make_tempdir, scaled, synth_bin
from .processes import _ServerInDir, _tail, spawn, stop_process

_SYNTH_LISTEN_RE = re.compile(rb"pop3-synth listening on 127\.0\.0\.1:(\d+)")


class Synth(_ServerInDir):
    """pop3-synth on 127.0.0.1:<ephemeral>.

    users: {"alice@example.com": "demo", ...}; messages/size or sizes.
    extra_args: more pop3-synth flags (e.g. --generated-users N);
    bin: the binary (default SYNTH_BIN); prefix: argv before it (e.g.
    ["taskset", "-c", "0"]: it execs, so the PID stays pop3-synth's).
    """

    def __init__(self, users: dict[str, str], messages: int = 3, size: int | str = 2048,
                 sizes: Sequence[int | str] | None = None, greeting: str | None = None,
                 extra_args: Sequence[str] = (), bin: str | None = None,
                 prefix: Sequence[str] = ()):
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
        self.bin = bin or synth_bin()
        self.prefix = list(prefix)
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def output_paths(self) -> list[str]:
        return [self.err_path, self.out_path]

    def start(self, timeout: float = 10.0) -> "Synth":
        timeout = scaled(timeout)
        argv = [*self.prefix, self.bin, "--listen", f"{LOOPBACK}:0", *self.msg_args,
                *self.extra_args]
        if self.greeting is not None:
            argv += ["--greeting", self.greeting]
        self.remember_findings()  # a restart truncates the output files
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
        stop_process(self.proc, signal.SIGTERM, timeout=scaled(5))

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
