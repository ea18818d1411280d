"""A fleet of real Dovecots behind one popgate pool.

DovecotFleet: N Dovecot instances (dovecot.Dovecot, each with its own
base_dir, port and log) sharing ONE maildir tree and the same users, as
backends on shared storage are.  A member can be killed the way a machine
dies (SIGKILL to its master and every process under it, by PID) and
restarted on the same port.  Their logs (microsecond timestamps) give every
POP3 session a user had on each member, so a test can check that no
maildrop was ever open on two backends at once.

The pool settings in front of a fleet (failover, [tenant.health_check],
each backend's state and max_connections) are popgate.Tenant's settings,
backend_settings and health_check.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
import signal
import subprocess
import time
from typing import Iterable, Sequence

from .dovecot import Dovecot, SeededMessage
from .paths import DOVECOT_BIN, make_tempdir
from .ports import wait_for_greeting
from .processes import _tail, spawn, stop_process, terminate_all

# Dovecot's log timestamps: local time with microseconds (Dovecot 2.3
# expands %{usecs} in log_timestamp), so sessions on different members can
# be ordered.  The log process stamps a line when it receives it: a few ms
# after the event on a busy machine.
_LOG_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%{usecs} "
_TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})"
# pop3-login: Info: Login: user=<u@d>, method=PLAIN, rip=..., mpid=N, ..., session=<S>
_LOGIN_RE = re.compile(_TS + r" pop3-login: Info: Login: user=<([^>]*)>.*?session=<([^>]+)>")
# pop3(u@d)<pid><S>: Info: Disconnected: Logged out ... (or: for inactivity,
# Connection closed, ...): the mail process ended the session.
_END_RE = re.compile(_TS + r" pop3\(([^)]*)\)<\d+><([^>]+)>: \w+: Disconnected")


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed child of the
    killed master is reaped by init, later)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _parse_ts(s: str) -> float:
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").timestamp()


@dataclasses.dataclass
class DovecotSession:
    member: int
    user: str
    session: str
    start: float           # wall clock (time.time()) of the Login line
    end: float | None      # of the Disconnected line; the kill for a killed member


class SharedDovecot(Dovecot):
    """A Dovecot whose mail_location (and home) is under `mail_root`, shared
    with the other members of its fleet; restarts on the same port."""

    def __init__(self, mail_root: str, **kw):
        super().__init__(**kw)
        self.mail_root = mail_root
        # Dovecot.add_user chowns its own mail dir: keep one (empty).
        os.makedirs(os.path.join(self.dir, "mail"), exist_ok=True)

    def maildir(self, user: str) -> str:
        local, _, domain = user.partition("@")
        return os.path.join(self.mail_root, domain, local)

    def _config(self) -> str:
        text = super()._config()
        own = f"{self.dir}/mail/"
        if f"mail_location = maildir:{own}" not in text:
            raise RuntimeError("Dovecot config changed: SharedDovecot must be updated")
        text = text.replace(own, f"{self.mail_root}/")
        return text + f'log_timestamp = "{_LOG_TIMESTAMP}"\n'

    def start(self, timeout: float = 20.0) -> "SharedDovecot":
        if self.port is None:
            return super().start(timeout)
        # A restart: the pool's config names this port.
        with open(self.conf_path, "w") as f:
            f.write(self._config())
        out = open(os.path.join(self.dir, "dovecot.stdout"), "ab")
        try:
            self.proc = spawn([DOVECOT_BIN, "-F", "-c", self.conf_path],
                              stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        try:
            wait_for_greeting(self.port, self.proc, timeout, "dovecot",
                              os.path.join(self.dir, "dovecot.stdout"))
        except RuntimeError as e:
            stop_process(self.proc, timeout=10)
            raise RuntimeError(f"dovecot did not restart on port {self.port}: {e}"
                               + _tail(self.log_path))
        return self

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(name))
        out, todo = [], [self.proc.pid]
        while todo:
            for c in children.get(todo.pop(), []):
                out.append(c)
                todo.append(c)
        return out

    def kill(self) -> tuple[float, float]:
        """Dies the way a machine does: SIGKILL to the master and every
        process under it (login and mail processes would otherwise serve on
        for a while), by PID.  Returns the wall-clock times of the master's
        SIGKILL and of the moment every process was gone (lines the log
        process wrote in between carry times after the first)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("dovecot is not running")
        # Stopped, the master forks no new process while we collect them.
        os.kill(self.proc.pid, signal.SIGSTOP)
        pids = sorted(set(self._descendants()) | set(self._descendants()))
        os.kill(self.proc.pid, signal.SIGKILL)
        t = time.time()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.005)
        return t, time.time()

    def pause(self) -> list[int]:
        """Hangs like a machine that stops answering: SIGSTOP to the master
        and every process under it (the kernel still completes TCP
        handshakes into the listen backlog, but nothing greets).  Returns
        the PIDs for resume()."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        pids = sorted(set(self._descendants()) | set(self._descendants()))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return [self.proc.pid] + pids

    def resume(self, pids: Sequence[int]) -> None:
        for pid in reversed(pids):  # the master last
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def sessions(self, member: int, kills: Sequence[float] = ()) -> list[DovecotSession]:
        """Every POP3 session this member's log shows; one still open at a
        kill of this member ends there (its mail process died). `kills`:
        when every process of the killed member was gone."""
        # The login and the mail process write through different pipes to
        # the log process: a short session's end can be logged before its
        # login line.
        by_id: dict[str, DovecotSession] = {}
        ends: dict[str, float] = {}
        for line in self.log().splitlines():
            m = _LOGIN_RE.match(line)
            if m:
                by_id[m.group(3)] = DovecotSession(member, m.group(2), m.group(3),
                                                   _parse_ts(m.group(1)), None)
                continue
            m = _END_RE.match(line)
            if m:
                ends[m.group(3)] = _parse_ts(m.group(1))
        for s in by_id.values():
            s.end = ends.get(s.session)
            if s.end is not None and s.end < s.start:
                s.start = s.end  # it began before its login line was stamped
            if s.end is None:
                after = [k for k in kills if k >= s.start]
                if after:
                    s.end = min(after)
        return list(by_id.values())


class DovecotFleet:
    """`n` SharedDovecots on one maildir tree, with the same users."""

    def __init__(self, n: int, **kw):
        self.mail_root = make_tempdir("fleet-mail")
        self.members = [SharedDovecot(self.mail_root, **kw) for _ in range(n)]
        self.kills: dict[int, list[float]] = {i: [] for i in range(n)}

    @property
    def addresses(self) -> list[str]:
        return [m.address for m in self.members]

    def index_of(self, address: str) -> int:
        return self.addresses.index(address)

    def add_user(self, user: str, password: str,
                 messages: Iterable[bytes] = ()) -> list[SeededMessage]:
        """The maildir once (in the shared tree), the user in every member's
        passwd-file."""
        seeded = self.members[0].add_user(user, password, messages)
        for m in self.members[1:]:
            m.add_user(user, password)
        self.members[0]._chown_tree(self.mail_root)
        return seeded

    def seeded(self, user: str) -> list[SeededMessage]:
        return self.members[0].seeded.get(user, [])

    def present_keys(self, user: str) -> set[str]:
        return self.members[0].present_keys(user)

    def start(self) -> "DovecotFleet":
        for m in self.members:
            m.start()
        return self

    def kill(self, i: int) -> float:
        """Kills member i (SharedDovecot.kill); returns the time of the kill."""
        t, gone = self.members[i].kill()
        self.kills[i].append(gone)
        return t

    def restart(self, i: int) -> None:
        self.members[i].start()

    def alive(self, i: int) -> bool:
        p = self.members[i].proc
        return p is not None and p.poll() is None

    def stop(self) -> None:
        terminate_all(self.members)  # in parallel: each takes ~1 s
        for m in self.members:
            m.stop()

    def cleanup(self) -> None:
        terminate_all(self.members)
        errs = []
        for m in self.members:
            try:
                m.cleanup()
            except Exception as e:  # keep cleaning
                errs.append(e)
        shutil.rmtree(self.mail_root, ignore_errors=True)
        if errs:
            raise errs[0]

    def sessions(self) -> list[DovecotSession]:
        out = []
        for i, m in enumerate(self.members):
            out += m.sessions(i, self.kills[i])
        return out

    def overlaps(self, slack: float = 0.05) -> list[tuple[DovecotSession, DovecotSession]]:
        """Pairs of sessions of one user on two different members that were
        open at the same time for longer than `slack` (Dovecot's log
        process stamps a line when it reads it: an end a few ms late).  A
        session with no end line (and no kill) is open forever."""
        inf = float("inf")
        by_user: dict[str, list[DovecotSession]] = {}
        for s in self.sessions():
            by_user.setdefault(s.user, []).append(s)
        found = []
        for ss in by_user.values():
            ss.sort(key=lambda s: s.start)
            for k, a in enumerate(ss):
                a_end = a.end if a.end is not None else inf
                for b in ss[k + 1:]:
                    if b.start >= a_end - slack:
                        break  # sorted by start: no later b overlaps a either
                    b_end = b.end if b.end is not None else inf
                    if b.member != a.member and min(a_end, b_end) - b.start > slack:
                        found.append((a, b))
        return found

    def describe(self, pairs: list[tuple[DovecotSession, DovecotSession]]) -> str:
        """For a failure message: each pair's log lines and the kills."""
        out = []
        for a, b in pairs[:4]:
            out.append(f"{a.user}: member {a.member} {a.start:.6f}-{a.end} and "
                       f"member {b.member} {b.start:.6f}-{b.end}")
            for s in (a, b):
                lines = [l for l in self.members[s.member].log().splitlines() if s.session in l]
                out += [f"    [{s.member}] {l}" for l in lines[:4]]
        out.append(f"kills (all gone): {self.kills}")
        return "\n".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def log_time(record: dict) -> float:
    """A popgate log line's "time" (UTC, ms) as time.time() seconds."""
    dt = datetime.datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()
