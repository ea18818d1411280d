"""popgate under test: a generated TOML config (tenants with passwd files
and issue 9's pool settings, one plain listener; or, TlsPopgate, several
listeners with TLS settings),
start/stop/reload by PID, its stderr's JSON log records, and a sanitizer
check of its output at cleanup."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from typing import Sequence

from .paths import LOOPBACK, make_tempdir, popgate_bin, scaled
from .pki import CertKey
from .ports import free_port, wait_for_greeting, wait_until
from .processes import (_ServerInDir, _read_bytes, _tail, check_sanitizer_output, spawn,
                        stop_process)
from .tls import wait_for_tls_greeting


def _toml_str(s: str) -> str:
    return json.dumps(s)  # JSON string escapes are valid TOML basic strings


def toml_value(v) -> str:
    """`v` as a TOML value (a dict as an inline table, a CertKey as its
    { cert, key } pair)."""
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
class Tenant:
    name: str
    domains: list[str]
    backends: list[str]                  # "127.0.0.1:PORT"
    users: dict[str, str] = dataclasses.field(default_factory=dict)  # user -> plain password
    passwd_lines: list[str] = dataclasses.field(default_factory=list)  # extra raw lines
    auth: str = "file"
    username: str = "full"
    weights: list[int] | None = None
    # The pool settings of issue 9.  settings: more keys of the [[tenant]]
    # table, written in order after its own (failover, client_identity,
    # backend_login, master_*, capabilities, ...).
    settings: dict = dataclasses.field(default_factory=dict)
    # Per backend, in the order of `backends` (may be shorter): more keys
    # of its entry (state, max_connections).
    backend_settings: list[dict] = dataclasses.field(default_factory=list)
    # The [tenant.health_check] keys (None: no table, so no active checks).
    health_check: dict | None = None

    def set_backend(self, address: str, **settings) -> None:
        """Changes one backend's entry (e.g. state="drain"); write the
        config and SIGHUP popgate to apply it (Popgate.reload_and_wait)."""
        i = self.backends.index(address)
        while len(self.backend_settings) <= i:
            self.backend_settings.append({})
        self.backend_settings[i].update(settings)


class Popgate(_ServerInDir):
    """popgate with a generated config in a temp dir, on 127.0.0.1:<port>.

    server: [server] settings over the tests' defaults (TEST_SERVER_DEFAULTS;
    test_defaults=False starts from popgate's own defaults instead, as the
    benchmark does); bin: the binary (default POPGATE_BIN); prefix: argv
    before it (e.g. taskset, which execs: the PID stays popgate's); workdir:
    put config, passwd files and output there (kept at cleanup) instead of
    a temp dir of its own.
    """

    TEST_SERVER_DEFAULTS = {
        "workers": 2,
        "auth_threads": 2,
        "auth_failure_delay": "100ms",
        "preauth_idle_timeout": "60s",
        "backend_timeout": "2s",
        "max_auth_failures": 3,
        "shutdown_grace": "2s",
    }

    def __init__(self, tenants: Sequence[Tenant], server: dict | None = None,
                 default_tenant: str | None = None, extra_toml: str = "", *,
                 bin: str | None = None, prefix: Sequence[str] = (),
                 test_defaults: bool = True, workdir: str | None = None):
        self.bin = bin or popgate_bin()
        self.prefix = list(prefix)
        if workdir:
            os.makedirs(workdir, exist_ok=True)
            self.dir, self.own_dir = workdir, False
        else:
            self.dir = make_tempdir("popgate")
        self.tenants = list(tenants)
        self.server = dict(self.TEST_SERVER_DEFAULTS) if test_defaults else {}
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

    def output_paths(self) -> list[str]:
        return [self.stderr_path, self.stdout_path]

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
        """The config file: [server], the listeners, each [[tenant]] (its
        own keys, then its `settings`, then [tenant.health_check]), and
        `extra_toml` last."""
        out = ["[server]"] + [f"{k} = {toml_value(v)}" for k, v in self.server.items()]
        # CI runs as root: popgate refuses that without user or allow_root.
        if os.geteuid() == 0 and "user" not in self.server and "allow_root" not in self.server:
            out.append("allow_root = true")
        out += self._listener_lines()
        for t in self.tenants:
            out += ["", "[[tenant]]"] + self._tenant_keys(t)
            out += [f"{k} = {toml_value(v)}" for k, v in t.settings.items()]
            if t.health_check is not None:
                # A sub-table: TOML attaches it to the [[tenant]] above.
                out += ["", "[tenant.health_check]"]
                out += [f"{k} = {toml_value(v)}" for k, v in t.health_check.items()]
        if self.extra_toml:
            out += ["", self.extra_toml]
        return "\n".join(out) + "\n"

    def _listener_lines(self) -> list[str]:
        out = ["", "[[listener]]", f"address = {toml_value(f'{LOOPBACK}:{self.port}')}"]
        if self.default_tenant:
            out.append(f"default_tenant = {toml_value(self.default_tenant)}")
        return out

    def _tenant_keys(self, t: Tenant) -> list[str]:
        """The [[tenant]] keys every tenant has, backends last."""
        out = [f"name = {toml_value(t.name)}",
               f"domains = {toml_value(t.domains)}",
               f"username = {toml_value(t.username)}",
               f"auth = {toml_value(t.auth)}"]
        if t.auth == "file":
            out.append(f"passwd_file = {toml_value(self.passwd_path(t))}")
        ws = t.weights or [1] * len(t.backends)
        entries = []
        for i, (a, w) in enumerate(zip(t.backends, ws)):
            e = {"address": a, "weight": w}
            if i < len(t.backend_settings):
                e.update(t.backend_settings[i])
            entries.append(e)
        out.append(f"backends = {toml_value(entries)}")
        return out

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

    def _choose_ports(self) -> None:
        self.port = free_port()

    def _wait_ready(self, timeout: float) -> None:
        self.greeting = wait_for_greeting(self.port, self.proc, timeout, "popgate",
                                          self.stderr_path)

    def start(self, timeout: float = 10.0):
        """Picks free ports, writes the config, starts popgate and waits for
        its greeting on every listener (3 attempts: a port may get taken)."""
        timeout = scaled(timeout)
        last_err = None
        for _attempt in range(3):
            self._choose_ports()
            self.write_config()
            err = open(self.stderr_path, "ab")
            out = open(self.stdout_path, "ab")
            try:
                self.proc = spawn([*self.prefix, self.bin, "--config", self.config_path],
                                  stdout=out, stderr=err)
            finally:
                err.close()
                out.close()
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as e:
                last_err = e
                stop_process(self.proc, signal.SIGKILL, timeout=5)
                self.proc = None
        raise RuntimeError(f"popgate failed to start: {last_err}")

    def stop(self, timeout: float = 10.0) -> int | None:
        return stop_process(self.proc, signal.SIGTERM, timeout=scaled(timeout))

    def reload(self) -> None:
        os.kill(self.proc.pid, signal.SIGHUP)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        return self.stderr_bytes().decode("utf-8", "replace")

    def stderr_bytes(self) -> bytes:
        return _read_bytes(self.stderr_path)

    def output_bytes(self) -> bytes:
        """Everything popgate wrote so far, stderr then stdout."""
        return self.stderr_bytes() + _read_bytes(self.stdout_path)

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
        recs = wait_until(lambda: self.session_records(**match), scaled(timeout))
        return recs[-1] if recs else None

    def health_records(self, **match) -> list[dict]:
        """The backend_health lines (state changes) matching `match`."""
        return self.session_records(event="backend_health", **match)

    def reload_and_wait(self, timeout: float = 5.0) -> dict:
        """Writes the config, SIGHUPs, and returns the `reloaded` line (an
        AssertionError on `reload_failed` or none within `timeout`)."""
        mark = len(self.log_records())
        self.write_config()
        self.reload()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self.log_records()[mark:]:
                if r.get("event") == "reloaded":
                    return r
                if r.get("event") == "reload_failed":
                    raise AssertionError(f"reload failed: {r}")
            time.sleep(0.05)
        raise AssertionError(f"no reloaded line {timeout}s after SIGHUP"
                             + _tail(self.stderr_path))

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0



@dataclasses.dataclass
class Listener:
    name: str                       # key into TlsPopgate.ports
    tls: str = "none"               # none | starttls | implicit
    certificates: Sequence[CertKey] | None = None
    plaintext_auth: str | None = None
    default_tenant: str | None = None


@dataclasses.dataclass
class TlsTenant(Tenant):
    sni_names: list[str] | None = None
    certificates: Sequence[CertKey] | None = None
    backend_tls: dict | None = None


class TlsPopgate(Popgate):
    """popgate with several listeners (none given: one plain listener,
    "plain", whose default tenant is `default_tenant`) and a [tls] section;
    `ports[name]` is each one's port and `port` the first non-implicit one
    (or the first).  The config is Popgate's with these listeners and each
    TlsTenant's TLS keys."""

    def __init__(self, tenants: Sequence[Tenant], listeners: Sequence[Listener] | None = None,
                 tls: dict | None = None, server: dict | None = None, **kw):
        super().__init__(tenants, server=server, **kw)
        if listeners is None:
            listeners = [Listener("plain", "none", default_tenant=kw.get("default_tenant"))]
        self.listeners = list(listeners)
        self.tls = dict(tls or {})
        self.ports: dict[str, int] = {}

    def _listener_lines(self) -> list[str]:
        out = []
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
        return out

    def _tenant_keys(self, t: Tenant) -> list[str]:
        out = super()._tenant_keys(t)
        if isinstance(t, TlsTenant):
            if t.sni_names is not None:
                out.append(f"sni_names = {toml_value(t.sni_names)}")
            if t.certificates:
                out.append(f"certificates = {toml_value(list(t.certificates))}")
            if t.backend_tls is not None:
                out.append(f"backend_tls = {toml_value(t.backend_tls)}")
        return out

    def _choose_ports(self) -> None:
        used: set[int] = set()
        for l in self.listeners:
            p = free_port()
            while p in used:
                p = free_port()
            used.add(p)
            self.ports[l.name] = p
        plain = [l for l in self.listeners if l.tls != "implicit"]
        self.port = self.ports[(plain or self.listeners)[0].name]

    def _wait_ready(self, timeout: float) -> None:
        plain = [l for l in self.listeners if l.tls != "implicit"]
        for l in self.listeners:
            port = self.ports[l.name]
            if l.tls == "implicit":
                wait_for_tls_greeting(port, self.proc, timeout, self.stderr_path)
            else:
                g = wait_for_greeting(port, self.proc, timeout, "popgate",
                                      self.stderr_path)
                if l is (plain or [None])[0]:
                    self.greeting = g

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
        return wait_until(get, scaled(timeout))

    def records_for(self, user: str) -> list[dict]:
        return [r for r in self.session_records(event="session") if r.get("user") == user]

    def wait_for_user_record(self, user: str, timeout: float = 5.0, n: int = 1, **match) -> list[dict]:
        def get():
            recs = [r for r in self.records_for(user)
                    if all(r.get(k) == v for k, v in match.items())]
            return recs if len(recs) >= n else None
        return wait_until(get, scaled(timeout)) or \
            [r for r in self.records_for(user) if all(r.get(k) == v for k, v in match.items())]


def run_popgate(*args: str, timeout: float = 20.0, bin: str | None = None,
                **kw) -> subprocess.CompletedProcess:
    """Runs popgate with `args` to completion (e.g. --check-config FILE),
    text output captured; fails (AssertionError) on a sanitizer report."""
    r = subprocess.run([bin or popgate_bin(), *args], capture_output=True, text=True,
                       timeout=scaled(timeout), **kw)
    check_sanitizer_output(f"popgate {' '.join(args)}",
                           (r.stderr + r.stdout).encode("utf-8", "replace"), r.returncode)
    return r
