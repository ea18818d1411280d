"""Processes the tests start: spawned with PR_SET_PDEATHSIG (nothing
outlives a killed runner), stopped by PID only (SIGTERM, then SIGKILL after
a bound), all killed at exit; servers in their own temp dir usable in a
with block; and sanitizer reports found in a process's output.

Start processes from the main thread only (PDEATHSIG fires when the *thread*
that forked exits).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import subprocess
import threading
from typing import Callable, Sequence

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


# ---------------------------------------------------------------------------
# Sanitizer reports
# ---------------------------------------------------------------------------

# What ASan, LSan and UBSan print.  Matched line by line, skipping popgate's
# JSON log lines (they start with "{" and carry client bytes, e.g. a user
# name, escaped onto the same line), so a client cannot fake a report.
_SANITIZER_LINE = re.compile(
    rb"ERROR: AddressSanitizer|ERROR: LeakSanitizer|LeakSanitizer|"
    rb"runtime error:|SUMMARY: UndefinedBehaviorSanitizer")

# The exit status the ASan integration run asks the sanitizers for
# (ASAN_OPTIONS/UBSAN_OPTIONS exitcode=86, tests/integration/CMakeLists.txt),
# so that a report is also seen where the output went elsewhere.
SANITIZER_EXIT_CODE = 86


def sanitizer_report(data: bytes) -> str | None:
    """The first sanitizer report in `data` (a process's stderr/stdout), or
    None.  Returns the text from the reporting line on (bounded)."""
    pos = 0
    for line in data.splitlines(keepends=True):
        if not line.lstrip().startswith(b"{") and _SANITIZER_LINE.search(line):
            return data[pos:pos + 6000].decode("utf-8", "replace")
        pos += len(line)
    return None


def sanitizer_exit(returncode: int | None) -> bool:
    """True if `returncode` is the sanitizers' exit status of this run."""
    opts = os.environ.get("ASAN_OPTIONS", "") + ":" + os.environ.get("UBSAN_OPTIONS", "")
    return (returncode == SANITIZER_EXIT_CODE
            and f"exitcode={SANITIZER_EXIT_CODE}" in opts)


def check_sanitizer_output(what: str, data: bytes, returncode: int | None = None) -> None:
    """Raises AssertionError if `data` holds a sanitizer report or the exit
    status is the sanitizers'."""
    report = sanitizer_report(data)
    if report:
        raise AssertionError(f"sanitizer report from {what}:\n{report}")
    if sanitizer_exit(returncode):
        raise AssertionError(f"{what} exited {returncode}, the sanitizers' exit status:\n"
                             + data[-4000:].decode("utf-8", "replace"))


class _ServerInDir:
    """A server process with its own temp dir `self.dir`: usable in a with
    block; cleanup() stops it, removes the dir, and then fails (raises
    AssertionError) if the process's output files hold a sanitizer report,
    so that an ASan/UBSan/LSan finding fails the test (or the module, for
    servers shared through ModuleResources)."""

    own_dir = True  # False: the caller gave the dir and keeps it

    def output_paths(self) -> list[str]:
        """Files the process wrote its stdout/stderr to (scanned at cleanup)."""
        return []

    def remember_findings(self) -> None:
        """Keeps a report found now (before a restart overwrites the files)."""
        f = self.sanitizer_findings()
        if f:
            self.__dict__.setdefault("_earlier_findings", []).append(f)

    def sanitizer_findings(self) -> str | None:
        earlier = self.__dict__.get("_earlier_findings")
        if earlier:
            return earlier[0]
        for path in self.output_paths():
            report = sanitizer_report(_read_bytes(path))
            if report:
                return f"sanitizer report in {path}:\n{report}"
        proc = getattr(self, "proc", None)
        if proc is not None and sanitizer_exit(proc.returncode):
            return (f"{type(self).__name__} exited {proc.returncode}, the sanitizers' "
                    "exit status" + "".join(_tail(p) for p in self.output_paths()))
        return None

    def cleanup(self) -> None:
        self.stop()
        findings = self.sanitizer_findings()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if findings:
            raise AssertionError(findings)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


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
