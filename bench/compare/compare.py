#!/usr/bin/env python3
"""bench/compare: popgate side by side with the POP3 proxies operators run
today, on loopback, in front of pop3-synth, on the same workloads.

Targets: direct (no proxy), popgate, nginx (mail module, auth_http answered by
an nginx http block), dovecot-proxy (Dovecot 2.3 login proxy, static passdb
proxy=y nopassword=y), perdition (perdition.pop3, forking), haproxy (mode tcp).
Plain for all; implicit TLS (port-995 style) for every proxy that has it.

See BENCHMARKS.md at the top of the repository for what each workload does.
Every workload is driven by bench/loadgen (C++, io_uring, BoringSSL), pinned
with pop3-synth to one core, so that a TLS handshake rate is the proxy's and
not the client's; bench/compare/pop3client.py stands in when loadgen is not
built (or with --pyclient). Each run records which client ran it.
Python 3 stdlib only (plots: Debian's python3-matplotlib, see report.py).
"""
import argparse
import datetime
import re
import socket
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
# The server starters the integration tests use (tests/popgate_testing):
# pop3-synth and popgate are started the same way in both.
sys.path.append(os.path.join(REPO, "tests"))
import report  # noqa: E402
from segments import SegmentSampler  # noqa: E402
from popgate_testing.pki import CertKey  # noqa: E402
from popgate_testing.popgate import (Listener, TlsPopgate, TlsTenant,  # noqa: E402
                                     toml_value)
from popgate_testing.ports import free_port, wait_for_greeting  # noqa: E402
from popgate_testing.synth import Synth  # noqa: E402
from popgate_testing.tls import wait_for_tls_greeting  # noqa: E402
from popgate_testing.popgate import toml_value  # noqa: E402

PEER_PACKAGES = ["nginx", "libnginx-mod-mail", "haproxy", "perdition",
                 "dovecot-core", "dovecot-pop3d", "python3-matplotlib",
                 "openssl"]
VERSION_PACKAGES = PEER_PACKAGES + ["android-libboringssl", "liburing2",
                                    "linux-image-amd64"]
TLS_TARGETS = ["popgate", "nginx", "dovecot-proxy", "perdition", "haproxy"]
ALL_TARGETS = ["direct"] + TLS_TARGETS
WORKLOADS = ["sessions", "throughput", "handshake", "hold", "rates",
             "concurrency", "auth-file"]
# Opt-in (--workloads attack): not part of "all", so the default and --quick
# runs (CI's compare.smoke) stay as they were.
EXTRA_WORKLOADS = ["attack"]
# auth-file (issue 12): plain sessions where the proxy itself checks the
# password against a passwd-file, one restart per hash scheme. Only popgate
# (auth = "file") and Dovecot (passdb passwd-file) verify passwords
# themselves; nginx asks its auth_http script, Perdition and HAProxy do not
# check at all.
AUTH_FILE_TARGETS = ["popgate", "dovecot-proxy"]
AUTH_FILE_SCHEMES = ["sha512-crypt", "argon2id"]
# Dovecot's ARGON2ID default cost (doveadm pw -s ARGON2ID, libsodium's
# "interactive" limits): the fallback when doveadm is not installed.
ARGON2ID_DEFAULT = (3, 65536, 1)  # t (passes), m (KiB), p (lanes)
# The proxies that check passwords themselves (or through their auth
# script), the only ones an attack on passwords means anything for.
ATTACK_TARGETS = ["popgate", "nginx", "dovecot-proxy"]
ATTACK_PATTERNS = ["spray", "stuff"]
# Good users' source addresses in the attack workload: 1,016 clients, none
# of them attacking, so per-address limits see a normal crowd (at 5,000
# sessions/s about 5 new connections per second per address).
GOOD_SOURCES = "127.0.1.1-127.0.4.254"
# The idle-sessions curve (hold workload, --hold-counts): clients bind to
# these 1,020 loopback addresses (Linux routes all of 127/8 to lo), so
# 100,000 sessions never run out of ephemeral ports towards one proxy port
# (about 100 per address).
HOLD_SOURCES = "127.3.0.1-127.3.3.254"
HOLD_COUNTS = [1000, 10000, 100000]
HOLD_COUNTS_QUICK = [200, 1000]
# Counts above this run in repetition 1 only (a 10,000 or 100,000 fill per
# target and variant is enough once, and Perdition's 10,000 forks take a
# minute; the small counts repeat like every workload).
HOLD_REPEAT_MAX = 1000
# Logins in flight while a curve point fills up.
HOLD_CURVE_CONCURRENCY = 64
# Targets held to fewer sessions than asked, and why (the report says so).
HOLD_CAPS = {
    "perdition": (10000, "forks one process per session: 100,000 processes "
                  "exceed the default kernel.pid_max (32,768), and at its "
                  "~140 KiB (plain) / ~380 KiB (TLS) PSS per session they "
                  "would need 13 / 36 GiB; capped at 10,000"),
}
# loadgen's attacker defaults: spray from 127.0.0.2, stuff from
# 127.0.2.1-127.0.2.254. The sprayed and stuffed users exist (so a wrong
# password costs a real hash) but are never the good users.
SPRAY_USERS = ("victim{i}@example.com", 1000)
STUFF_USERS = ("stuffed{i}@example.com", 1)
# nginx's documented auth_http answer to a failure: "Auth-Wait: 3".
NGINX_AUTH_WAIT = 3
PASSWORD = "bench-pass"
USER_FORMAT = "user{i}@example.com"
# Cost curves (issue 12): plain sessions at fixed offered rates (loadgen
# --rate, open loop, at most RATE_CONCURRENCY in flight) and closed loop at
# several concurrency levels; repetition 1 only (CURVE_REPS), so that a full
# run grows by about two minutes.
RATES = [500, 2000, 5000]
RATE_CONCURRENCY = 256
CONCURRENCY_LEVELS = [32, 1000, 10000]
CONCURRENCY_LEVELS_QUICK = [32, 200]
CURVE_REPS = 1
# RLIMIT_NOFILE the harness asks for (soft and hard, inherited by every
# process it starts): 10,000 proxied sessions are 20,000+ descriptors.
NOFILE_WANT = 262144
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(*a):
    print("[compare]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# /proc: process trees, CPU and memory


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(roots):
    kids = children_map()
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_s(roots):
    """utime+stime of every live process in the trees, plus cutime+cstime
    (children that already exited and were reaped inside the tree, e.g.
    Perdition's per-connection processes)."""
    total = 0
    for p in tree(roots):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def tree_mem(roots):
    """(RSS, anonymous+shmem PSS) in bytes summed over the trees'
    processes."""
    rss = pss = 0
    n = 0
    for p in tree(roots):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                        # Proportional anonymous + shared memory: pages a
                        # forked child shares with its parent count half
                        # each; shared libraries (whose PSS moves whenever
                        # any other process maps them) are left out.
                        pss += int(line.split()[1]) * 1024
            n += 1
        except OSError:
            continue
    return rss, pss, n


# --------------------------------------------------------------------------
# processes we start (stopped by PID / own process group at the end)


class Procs:
    def __init__(self):
        self.started = []  # (name, Popen)

    def start(self, name, argv, cpus=None, log_path=None, nofile=None,
              **kw):
        argv = taskset(cpus) + argv
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        pre = None
        if nofile:
            def pre():
                import resource
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", out),
                             stderr=kw.pop("stderr", out),
                             stdin=subprocess.DEVNULL, preexec_fn=pre,
                             start_new_session=True, **kw)
        self.started.append((name, p))
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            members = tree([p.pid])
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of its tree (e.g. a forked child that
            # outlived its daemon), by PID, then its own process group.
            for pid in members + [p.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.started = [(n, q) for n, q in self.started if q is not p]

    def stop_all(self):
        for _, p in reversed(list(self.started)):
            self.stop(p, grace=3.0)


def taskset(cpus):
    """argv prefix pinning a process to cpus (taskset execs: same PID)."""
    return ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []


# A PROXY protocol v2 LOCAL header (no addresses), what popgate's health
# checks send: lets the harness itself talk to pop3-synth --proxy-protocol.
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def wait_greeting_after_local(port, timeout=15.0, proc=None):
    """wait_greeting for a backend that wants a PROXY header first."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"127.0.0.1:{port}: exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(PROXY_V2_LOCAL)
                if s.recv(512).startswith(b"+OK"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"127.0.0.1:{port}: no greeting after a LOCAL "
                       f"header ({last})")


def wait_greeting(port, tls=False, timeout=15.0, proc=None):
    """Waits for +OK on 127.0.0.1:port (implicit TLS if tls)."""
    if tls:
        wait_for_tls_greeting(port, proc, timeout)
    else:
        wait_for_greeting(port, proc, timeout, f"127.0.0.1:{port}")


# --------------------------------------------------------------------------
# targets


def hold_backend_ports(ctx, count):
    """The pop3-synth ports a proxy spreads a hold of `count` sessions over,
    or None (its usual backend). One destination port takes at most about
    half the ephemeral range (ip_local_port_range) of connections from one
    source address, and a proxy connects from 127.0.0.1: 100,000 backend
    connections need several ports."""
    if (count <= getattr(ctx, "hold_per_backend", count) or
            not getattr(ctx, "hold_synth_ports", None)):
        return None
    n = -(-count // ctx.hold_per_backend)
    return ctx.hold_synth_ports[:n]


class Target:
    """One proxy instance: start(cert) -> ports; roots are its PIDs."""
    name = "?"
    tls = True
    # Set before start() for a hold of this many sessions (the curve): the
    # configuration then allows them (limits, backend ports).
    hold_count = 0

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc = None
        self.plain_port = None
        self.tls_port = None

    @property
    def roots(self):
        return [self.proc.pid] if self.proc else []

    def session_results(self):
        """The results of the sessions the proxy logged since the last call
        other than a clean end ({result: count}), where the proxy says;
        None where it does not (only popgate logs a result per session)."""
        return None

    def dir(self):
        d = os.path.join(self.ctx.tmp, self.name)
        os.makedirs(d, exist_ok=True)
        return d

    def start(self, cert):
        self.plain_port = free_port()
        self.tls_port = free_port() if self.tls else None
        self.proc = self.launch(cert)
        try:
            wait_greeting(self.plain_port)
            if self.tls_port:
                wait_greeting(self.tls_port, tls=True)
        except Exception:
            self.stop()
            raise
        time.sleep(0.3)

    def stop(self):
        if self.proc:
            self.ctx.procs.stop(self.proc)
            self.proc = None

    def cert(self, kind):
        return (os.path.join(self.ctx.certs, f"{kind}.pem"),
                os.path.join(self.ctx.certs, f"{kind}.key"))


class Direct(Target):
    name = "direct"
    tls = False

    @property
    def roots(self):
        return []

    def start(self, cert):
        self.plain_port = self.ctx.synth_port

    def stop(self):
        pass


class Popgate(Target):
    """popgate with backend auth (the backend's answer is the verdict), a
    plain and an implicit-TLS listener: started by the integration tests'
    TlsPopgate, with popgate's own defaults (not the tests') and its files
    in this target's dir."""
    name = "popgate"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.pg = None
        self.log_offset = 0

    def session_results(self):
        # popgate's session log lines ({"event":"session",...,"result":..})
        # since the previous call: why a run had errors stays in the JSON.
        if not self.pg:
            return None
        counts = {}
        try:
            with open(self.pg.stderr_path, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            return None
        end = data.rfind(b"\n") + 1  # a line being written waits
        self.log_offset += end
        for line in data[:end].splitlines():
            if b'"event":"session"' not in line:
                continue
            m = re.search(rb'"result":"([a-z_]+)"', line)
            if m and m.group(1) not in (b"ok", b"quit"):
                k = m.group(1).decode()
                counts[k] = counts.get(k, 0) + 1
        return counts

    # attack: the attack workload's set-up (see attack_popgate_kw).
    attack = False
    redis_address = None  # attack: [limits] store = "redis" at this address
    # auth-file: the passwd-file's lines (auth = "file", see auth_file_kw).
    auth_file = None

    def start(self, cert):
        crt, key = self.cert(cert)
        kw = dict(auth="backend")
        server = {"auth_failure_delay": "0s"}
        extra_toml = ""
        if self.auth_file:
            kw, server = auth_file_kw(self.ctx, self.auth_file)
        if self.attack:
            kw, server, extra_toml = attack_popgate_kw(self.ctx,
                                                       self.redis_address)
        ports = self.ctx.synth_ports
        if self.hold_count:
            ports = hold_backend_ports(self.ctx, self.hold_count) or ports
            # [limits] max_connections (default 20,000) is the one popgate
            # default a 100,000-session hold runs into.
            if self.hold_count + 1000 > 20000:
                extra_toml = ("[limits]\nmax_connections = "
                              f"{self.hold_count + 1000}")
        self.pg = BenchPopgate(
            [TlsTenant("bench", ["example.com"],
                       [f"127.0.0.1:{p}" for p in ports],
                       **kw)],
            [Listener("plain", default_tenant="bench", plaintext_auth="always"),
             Listener("tls", tls="implicit", default_tenant="bench",
                      certificates=[CertKey(crt, key, cert)])],
            tls={"session_tickets": True},
            server={"workers": self.ctx.proxy_workers,
                    "shutdown_grace": "1s", **server,
                    **self.ctx.popgate_settings},
            test_defaults=False, bin=self.ctx.bins["popgate"],
            prefix=taskset(self.ctx.proxy_cpus), workdir=self.dir(),
            tenant_settings=self.ctx.tenant_settings, extra_toml=extra_toml)
        self.pg.start(timeout=15.0)
        self.log_offset = 0
        self.proc = self.pg.proc
        self.plain_port = self.pg.ports["plain"]
        self.tls_port = self.pg.ports["tls"]
        time.sleep(0.3)

    def stop(self):
        if self.pg:
            self.pg.cleanup()
            self.pg = None
            self.proc = None


def attack_popgate_kw(ctx, redis_address=None):
    """popgate as a public endpoint for the attack workload: auth = "file"
    against the attack passwd-file (SHA512-CRYPT, the scheme whose hash
    time the report compares with), popgate's own auth_failure_delay and
    [limits] defaults, except exempt_networks = [] so loopback clients
    count (the default exempts 127.0.0.0/8)."""
    kw = dict(auth="file", passwd_lines=list(ctx.attack_passwd_lines))
    limits = ["[limits]", "exempt_networks = []"]
    if redis_address:
        limits += ['store = "redis"', f'redis_address = "{redis_address}"']
    limits += [f"{k} = {toml_value(v)}"
               for k, v in getattr(ctx, "limits_settings", {}).items()]
    return kw, {}, "\n".join(limits)


def auth_file_kw(ctx, lines):
    """popgate for the auth-file workload: auth = "file" against `lines`,
    the hashing pool sized to the proxy's cores ([server] auth_threads =
    the proxy CPUs) and the auth cache off (auth_cache_size = 0), so that
    every login costs one hash, as in Dovecot (its auth_cache_size
    defaults to 0)."""
    kw = dict(auth="file", passwd_lines=list(lines),
              settings={"auth_cache_size": 0})
    server = {"auth_failure_delay": "0s",
              "auth_threads": len(ctx.proxy_cpus) if ctx.proxy_cpus
              else ctx.proxy_workers}
    return kw, server


def with_tenant_settings(text, settings):
    """popgate's config text with `settings` ({key: value}) added to every
    [[tenant]] table: a plain key after the tenant's own keys, a dotted one
    (health_check.interval) into the tenant's sub-table ([tenant.health_
    check]), which TOML attaches to the [[tenant]] just above it."""
    if not settings:
        return text
    plain = {k: v for k, v in settings.items() if "." not in k}
    tables = {}
    for k, v in settings.items():
        if "." in k:
            table, key = k.rsplit(".", 1)
            tables.setdefault(table, {})[key] = v

    def block():
        out = [f"{k} = {toml_value(v)}" for k, v in plain.items()]
        for table, kv in tables.items():
            out += ["", f"[tenant.{table}]"]
            out += [f"{k} = {toml_value(v)}" for k, v in kv.items()]
        return out

    out, in_tenant = [], False
    for line in text.splitlines():
        if line.startswith("["):
            if in_tenant:
                while out and not out[-1]:
                    out.pop()
                out += block() + [""]
            in_tenant = line.strip() == "[[tenant]]"
        out.append(line)
    if in_tenant:
        out += block()
    return "\n".join(out) + "\n"


class BenchPopgate(TlsPopgate):
    """TlsPopgate with --popgate-tenant-set settings in its [[tenant]]."""

    def __init__(self, *a, tenant_settings=None, **kw):
        super().__init__(*a, **kw)
        self.tenant_settings = dict(tenant_settings or {})

    def config_text(self):
        return with_tenant_settings(super().config_text(),
                                    self.tenant_settings)


class Nginx(Target):
    name = "nginx"
    attack = False

    def auth_check(self):
        """The attack workload's auth script: the password is checked (a
        string compare: the cheapest possible auth script, no hash) and a
        failure answered as nginx's documentation shows, with Auth-Wait,
        so nginx waits that long before it answers the client."""
        if not self.attack:
            return ""
        return f"""
      if ($http_auth_pass != "{PASSWORD}") {{
        add_header Auth-Status "Invalid login or password";
        add_header Auth-Wait {NGINX_AUTH_WAIT};
        return 204;
      }}"""

    def worker_connections(self):
        """Each proxied session is two connections (client, backend): a
        hold of N sessions gets 2N + 2,000, up to the descriptor limit;
        otherwise min(30,000, half the limit) as always."""
        base = min(30000, self.ctx.nofile // 2)
        if not self.hold_count:
            return base
        return max(base, min(2 * self.hold_count + 2000, self.ctx.nofile))

    def port_map(self):
        """A big hold: the auth answer spreads users over several backend
        ports (split_clients on the user name)."""
        ports = hold_backend_ports(self.ctx, self.hold_count)
        if not ports:
            return ""
        # nginx takes at most two decimals; the rest goes to "*".
        share = int(10000 / len(ports)) / 100
        lines = [f"    {share:.2f}% {p};" for p in ports[:-1]]
        lines.append(f"    * {ports[-1]};")
        return ('\n  split_clients "${http_auth_user}" $synth_port {\n' +
                "\n".join(lines) + "\n  }")

    def auth_port(self):
        return ("$synth_port" if hold_backend_ports(self.ctx, self.hold_count)
                else self.ctx.synth_port)

    def launch(self, cert):
        d = self.dir()
        crt, key = self.cert(cert)
        auth_port = free_port()
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        t = os.path.join(d, "tmp")
        with open(conf, "w") as f:
            f.write(f"""# bench/compare: nginx mail proxy; auth_http answered by this nginx
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes {self.ctx.proxy_workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile {self.ctx.nofile};
events {{ worker_connections {self.worker_connections()}; }}
http {{{self.port_map()}
  access_log off;
  client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t};
  uwsgi_temp_path {t}; scgi_temp_path {t};
  server {{
    listen 127.0.0.1:{auth_port};
    location = /auth {{{self.auth_check()}
      add_header Auth-Status OK;
      add_header Auth-Server 127.0.0.1;
      add_header Auth-Port {self.auth_port()};
      return 204;
    }}
  }}
}}
mail {{
  auth_http 127.0.0.1:{auth_port}/auth;
  proxy_pass_error_message on;
  pop3_auth plain;
  server {{ listen 127.0.0.1:{self.plain_port}; protocol pop3; proxy on; }}
  server {{
    listen 127.0.0.1:{self.tls_port} ssl; protocol pop3; proxy on;
    ssl_certificate {crt}; ssl_certificate_key {key};
    # nginx before 1.23.4 leaves TLS 1.3 off unless asked: every target
    # must offer the same versions.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    ssl_session_cache shared:MAILSSL:10m;
  }}
}}
""")
        return self.ctx.procs.start(
            "nginx", ["nginx", "-e", os.path.join(d, "error.log"), "-p", d,
                      "-c", conf, "-g", "daemon off;"],
            cpus=self.ctx.proxy_cpus, log_path=os.path.join(d, "stderr.log"))


class Haproxy(Target):
    name = "haproxy"

    def servers(self):
        ports = (hold_backend_ports(self.ctx, self.hold_count)
                 or [self.ctx.synth_port])
        return ("  balance roundrobin\n" * (len(ports) > 1) + "\n".join(
            f"  server s{i + 1} 127.0.0.1:{p}" for i, p in enumerate(ports)))

    def launch(self, cert):
        d = self.dir()
        crt, key = self.cert(cert)
        pem = os.path.join(d, f"{cert}.pem")
        with open(pem, "w") as f:
            f.write(open(crt).read() + open(key).read())
        os.chmod(pem, 0o600)
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""# bench/compare: haproxy, TCP mode (L4; the backend does POP3 and auth)
global
  maxconn {self.ctx.nofile // 2 - 500}
  nbthread {self.ctx.proxy_workers}
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend plain
  bind 127.0.0.1:{self.plain_port}
  default_backend synth
frontend tls
  bind 127.0.0.1:{self.tls_port} ssl crt {pem}
  default_backend synth
backend synth
{self.servers()}
""")
        return self.ctx.procs.start(
            "haproxy", ["haproxy", "-db", "-f", conf],
            cpus=self.ctx.proxy_cpus, log_path=os.path.join(d, "haproxy.log"))


class Perdition(Target):
    """perdition.pop3 has one listener per daemon: two daemons (plain and
    POP3S); both are its roots. Started with the soft descriptor limit a
    systemd unit gives it (1024): each forked child closes every descriptor
    up to the limit (about 9,000 close() calls per session at 20,000)."""
    NOFILE = 1024
    name = "perdition"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.proc2 = None

    @property
    def roots(self):
        return [p.pid for p in (self.proc, self.proc2) if p]

    def launch(self, cert):
        d = self.dir()
        crt, key = self.cert(cert)
        # A big hold: a list of servers, which perdition takes in turn.
        ports = (hold_backend_ports(self.ctx, self.hold_count)
                 or [self.ctx.synth_port])
        common = ["perdition.pop3", "--no_daemon", "-n",
                  "-s", ",".join(f"127.0.0.1:{p}" for p in ports),
                  "--server_resp_line"]
        self.proc2 = self.ctx.procs.start(
            "perdition-pop3s",
            common + ["-b", f"127.0.0.1:{self.tls_port}", "-P", "POP3S",
                      "--ssl_mode", "ssl_listen", "--ssl_cert_file", crt,
                      "--ssl_key_file", key,
                      "--pid_file", os.path.join(d, "pop3s.pid")],
            cpus=self.ctx.proxy_cpus, log_path=os.path.join(d, "pop3s.log"),
            nofile=self.NOFILE)
        return self.ctx.procs.start(
            "perdition-pop3",
            common + ["-b", f"127.0.0.1:{self.plain_port}",
                      "--pid_file", os.path.join(d, "pop3.pid")],
            cpus=self.ctx.proxy_cpus, log_path=os.path.join(d, "pop3.log"),
            nofile=self.NOFILE)

    def stop(self):
        super().stop()
        if self.proc2:
            self.ctx.procs.stop(self.proc2)
            self.proc2 = None


class Dovecot(Target):
    name = "dovecot-proxy"
    attack = False
    # auth-file: the passwd-file's lines; Dovecot checks each login against
    # them (its auth cache off, the default) and proxies with the password.
    auth_file = None

    def passdb(self):
        """Normally the backend checks the password (nopassword=y). In the
        attack workload Dovecot checks it itself against the attack
        passwd-file (SHA512-CRYPT, like popgate's), so its auth failure
        delay and anvil's auth penalty (on by default, per remote IP)
        apply, then proxies with the client's password."""
        port = self.ctx.synth_port
        ports = hold_backend_ports(self.ctx, self.hold_count)
        if ports and not (self.attack or self.auth_file):
            # A big hold: a passwd-file spreads the users over several
            # backend ports (static passdb has one).
            users = os.path.join(self.dir(), "hold.passwd")
            with open(users, "w") as f:
                for i in range(max(self.hold_count, self.ctx.users)):
                    f.write(f"{USER_FORMAT.format(i=i)}:::::::proxy=y "
                            f"host=127.0.0.1 port={ports[i % len(ports)]} "
                            "nopassword=y\n")
            os.chmod(users, 0o644)
            return f"""passdb {{
  driver = passwd-file
  args = {users}
}}"""
        if not (self.attack or self.auth_file):
            return f"""passdb {{
  driver = static
  args = proxy=y host=127.0.0.1 port={port} nopassword=y
}}"""
        users = os.path.join(self.dir(), "users.passwd")
        with open(users, "w") as f:
            f.write("\n".join(self.auth_file or
                              self.ctx.attack_passwd_lines) + "\n")
        os.chmod(users, 0o644)
        return f"""passdb {{
  driver = passwd-file
  args = {users}
  default_fields = proxy=y host=127.0.0.1 port={port}
}}"""

    def launch(self, cert):
        d = self.dir()
        crt, key = self.cert(cert)
        for sub in ("run", "state"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        n = self.ctx.proxy_workers
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""# bench/compare: Dovecot 2.3 as a POP3 proxy. Login processes in
# "high-performance mode" (service_count = 0, one per proxy core), as
# Dovecot's documentation recommends for busy proxies.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = popgate-bench-dovecot
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{crt}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = dovenull
default_internal_user = dovecot
default_client_limit = {self.ctx.nofile // 2}
default_vsz_limit = {"2G" if self.hold_count <= 20000 else "16G"}
shutdown_clients = yes
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.plain_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {n}
  process_limit = {n}
  client_limit = {self.ctx.nofile // 2 - 500}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{self.passdb()}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
""")
        return self.ctx.procs.start(
            "dovecot", ["dovecot", "-F", "-c", conf],
            cpus=self.ctx.proxy_cpus, log_path=os.path.join(d, "stderr.log"))


TARGET_CLASSES = {c.name: c for c in (Direct, Popgate, Nginx, Dovecot,
                                      Perdition, Haproxy)}


# --------------------------------------------------------------------------
# workloads


def _toml_value(text):
    """A --popgate-set value as the config writer wants it: an integer,
    a boolean, a list of strings ([TOP, UIDL] or ["TOP", "UIDL"]) or a
    string (quotes optional)."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        return [x.strip().strip('"') for x in t[1:-1].split(",") if x.strip()]
    return text.strip('"')


_KEY_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def parse_settings(pairs, flag):
    """KEY=VALUE pairs -> {key: value}; exits on a malformed one."""
    out = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.fullmatch(key):
            sys.exit(f"{flag} wants KEY=VALUE (KEY: letters, digits, _, -, "
                     f"dots for a sub-table), not {kv!r}")
        out[key] = _toml_value(value)
    return out


class Ctx:
    pass


def run_client(ctx, argv, timeout):
    argv = pinned(ctx, argv)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    text = r.stdout.decode(errors="replace").strip()
    try:
        raw = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"client printed no JSON (rc {r.returncode}): "
                           f"{r.stderr.decode(errors='replace')[-400:]}")
    raw.setdefault("client", client_name(argv))
    return raw


def pinned(ctx, argv):
    """The load generator shares CPU 0 with pop3-synth; the proxy has the
    others."""
    return (["taskset", "-c", ",".join(map(str, ctx.load_cpus))]
            if ctx.load_cpus else []) + argv


def client_name(argv):
    return "pop3client.py" if any(a.endswith("pop3client.py") for a in argv) \
        else "loadgen"


def pyclient(ctx, mode, port, *extra):
    return [ctx.py, os.path.join(HERE, "pop3client.py"), mode,
            "--port", str(port), "--password", PASSWORD,
            "--user-format", USER_FORMAT, "--users", str(ctx.users),
            *map(str, extra)]


def loadgen(ctx, mode, port, tls=None, users=None, *extra):
    """loadgen argv. tls: None (plain) or the certificate kind the target
    serves ("ecdsa"/"rsa"): implicit TLS that accepts only that signature,
    so a handshake surely measured the certificate the variant names."""
    argv = [ctx.bins["loadgen"], "--mode", mode,
            "--target", f"127.0.0.1:{port}",
            "--users", str(users or ctx.users), "--user-format", USER_FORMAT,
            "--password", PASSWORD]
    if tls:
        argv += ["--tls", "implicit", "--tls-sigalgs", tls]
    return argv + [str(a) for a in extra]


def cpu_times():
    """{cpu index: (busy jiffies, total jiffies)} from /proc/stat."""
    out = {}
    for line in open("/proc/stat"):
        if line.startswith("cpu") and line[3].isdigit():
            f = line.split()
            v = list(map(int, f[1:9]))
            total = sum(v)
            out[int(f[0][3:])] = (total - v[3] - v[4], total)
    return out


def busy_share(t0, t1, cpus):
    if not cpus:
        cpus = list(t1)
    busy = sum(t1[c][0] - t0[c][0] for c in cpus if c in t0 and c in t1)
    total = sum(t1[c][1] - t0[c][1] for c in cpus if c in t0 and c in t1)
    return round(busy / total, 3) if total else None


def quiet_wait(ctx):
    """Waits (bounded) until the machine's CPUs are nearly idle, so a
    neighbour's burst (a compile on a shared machine) does not land in a
    measurement. Returns (cores busy in the last sample, seconds waited)."""
    t0 = time.monotonic()
    while True:
        k0 = cpu_times()
        time.sleep(0.5)
        k1 = cpu_times()
        busy = sum(k1[c][0] - k0[c][0] for c in k1 if c in k0)
        total = sum(k1[c][1] - k0[c][1] for c in k1 if c in k0)
        cores = busy / total * len(k1) if total else 0.0
        waited = time.monotonic() - t0
        if cores <= ctx.quiet_cores or waited >= ctx.max_quiet_wait:
            return round(cores, 3), round(waited, 1)


def measured(ctx, target, fn):
    """Runs fn (a client run) and returns its JSON, the proxy's CPU seconds,
    the wall time, the load average before, and how busy the load-generator
    CPU and the proxy CPU were (which side was the limit)."""
    roots = target.roots
    idle_cores, waited = quiet_wait(ctx)
    c0 = tree_cpu_s(roots)
    s0 = tree_cpu_s([ctx.synth_pid])
    k0 = cpu_times()
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    raw = fn()
    wall = time.monotonic() - t0
    c1 = tree_cpu_s(roots)
    s1 = tree_cpu_s([ctx.synth_pid])
    k1 = cpu_times()
    raw["_synth_cpu_s"] = s1 - s0
    raw["_busy_load_cpus"] = busy_share(k0, k1, ctx.load_cpus)
    # CPU seconds on the load generator's and backend's CPUs (all of them,
    # kernel work included): on loopback, TCP work for the proxy's packets
    # can land there (see BENCHMARKS.md, "RETR: where the CPU goes").
    raw["_load_cpu_s"] = (sum(k1[c][0] - k0[c][0] for c in ctx.load_cpus
                              if c in k0 and c in k1) / CLK_TCK
                          if ctx.load_cpus else None)
    raw["_busy_proxy_cpus"] = busy_share(k0, k1, ctx.proxy_cpus)
    # CPU time of everything that is neither the proxy, the backend nor the
    # client (other users of a shared machine), in cores.
    all_busy = sum(k1[c][0] - k0[c][0] for c in k1 if c in k0) / CLK_TCK
    ours = (c1 - c0) + (s1 - s0) + float(
        raw.get("loadgen_cpu_s", raw.get("client_cpu_s", 0.0)) or 0.0)
    raw["_background_cores"] = round(max(0.0, all_busy - ours) / wall, 3) \
        if wall > 0 else None
    raw["_busy_before"] = idle_cores
    raw["_quiet_wait_s"] = waited
    return raw, c1 - c0, wall, load0


def session_figures(target, raw, cpu, load):
    """The figures of a sessions run (w_sessions, w_rate, w_concurrency)
    from the client's JSON and the proxy's CPU seconds. CPU per session
    only where the proxy's processes were measured (target.roots)."""
    n = raw.get("sessions", 0)
    return {
        "sessions_per_s": raw.get("sessions_per_s", 0.0),
        "sessions": n,
        "latency_p99_ms": raw.get("latency_ms", {}).get("p99"),
        "proxy_cpu_s": cpu,
        "cpu_s_per_1k_sessions": (cpu / n * 1000) if n and target.roots
        else None,
        "errors": raw.get("errors_total", 0),
        "loadavg": load,
        "busy_load_cpu": raw.get("_busy_load_cpus"),
        "busy_proxy_cpu": raw.get("_busy_proxy_cpus"),
        "background_cores": raw.get("_background_cores"),
    }


def w_sessions(ctx, target, extra=()):
    """extra: more loadgen arguments."""
    port = target.plain_port
    if ctx.use_loadgen:
        argv = loadgen(ctx, "sessions", port, None, None,
                       "--concurrency", ctx.sessions_concurrency,
                       "--duration", ctx.duration, *extra)
    else:
        argv = pyclient(ctx, "sessions", port, "--procs", 4, "--threads",
                        ctx.sessions_concurrency // 4, "--duration",
                        ctx.duration)
    raw, cpu, wall, load = measured(
        ctx, target, lambda: run_client(ctx, argv, ctx.duration + 60))
    return raw, session_figures(target, raw, cpu, load)


def w_rate(ctx, target, rate):
    """Plain sessions started at a fixed offered rate (loadgen --rate: open
    loop, at most ctx.rate_concurrency in flight, latency from the
    scheduled start): what a session costs the proxy at that load."""
    argv = loadgen(ctx, "sessions", target.plain_port, None, None,
                   "--rate", rate, "--concurrency", ctx.rate_concurrency,
                   "--duration", ctx.curve_duration)
    raw, cpu, wall, load = measured(
        ctx, target, lambda: run_client(ctx, argv, ctx.curve_duration + 60))
    m = session_figures(target, raw, cpu, load)
    # At a fixed rate the cost reads better per session than per 1,000
    # (the same number).
    m["cpu_ms_per_session"] = m.pop("cpu_s_per_1k_sessions")
    m.update(offered_rate=raw.get("offered_rate", rate),
             late=raw.get("late", 0))
    return raw, m


def concurrency_cap(ctx, target):
    """The most sessions in flight `target` can hold within RLIMIT_NOFILE
    (ctx.nofile, inherited), and why; (None, "") if no cap applies. A
    proxied session is two descriptors in one process (client and backend);
    perdition forks, one process (its own table) per session."""
    margin = 500
    if target.name == "direct":
        return ctx.nofile - margin, (
            f"RLIMIT_NOFILE {ctx.nofile}: pop3-synth holds one descriptor "
            "per session")
    if target.name == "perdition":
        return None, ""
    cap = (ctx.nofile - 2 * margin) // 2
    why = (f"RLIMIT_NOFILE {ctx.nofile} (the hard limit here): two "
           "descriptors per proxied session in one process")
    if target.name == "nginx":
        wc = target.worker_connections() // 2 - margin
        if wc < cap:
            cap = wc
            why = (f"nginx worker_connections {target.worker_connections()} "
                   f"(half of RLIMIT_NOFILE {ctx.nofile}), two per session")
    return cap, why


def w_concurrency(ctx, target, level):
    """Plain sessions, closed loop (loadgen sessions mode) with `level`
    connections looping at once."""
    cap, why = concurrency_cap(ctx, target)
    c = level
    if cap is not None and level > cap:
        c = cap
        ctx.concurrency_capped.setdefault(target.name, {})[level] = {
            "ran": cap, "why": why}
    argv = loadgen(ctx, "sessions", target.plain_port, None,
                   max(c, ctx.users), "--concurrency", c,
                   "--duration", ctx.curve_duration)
    raw, cpu, wall, load = measured(
        ctx, target, lambda: run_client(ctx, argv, ctx.curve_duration + 90))
    m = session_figures(target, raw, cpu, load)
    m["concurrency"] = c
    return raw, m


def cost_curves(ctx, t, r):
    """The rates and concurrency workloads against a started target, in
    repetition 1 only (a full run stays a few minutes longer, not three
    times that); loadgen only (pop3client.py has neither mode)."""
    if r > CURVE_REPS or not ctx.use_loadgen:
        return
    if "rates" in ctx.workloads:
        for rate in ctx.rates:
            record(ctx, t, "plain", f"rate-{rate:g}", r,
                   lambda: w_rate(ctx, t, rate))
    if "concurrency" in ctx.workloads:
        for level in ctx.concurrency_levels:
            record(ctx, t, "plain", f"concurrency-{level}", r,
                   lambda: w_concurrency(ctx, t, level))


def w_throughput(ctx, target, tls=None):
    """tls: None (plain) or the certificate kind the target serves."""
    port = target.tls_port if tls else target.plain_port
    if ctx.use_loadgen:
        argv = loadgen(ctx, "throughput", port, tls,
                       ctx.throughput_concurrency,
                       "--concurrency", ctx.throughput_concurrency,
                       "--duration", ctx.duration, "--message", 2)
    else:
        argv = pyclient(ctx, "throughput", port, "--procs",
                        ctx.throughput_concurrency, "--duration",
                        ctx.duration, "--message", 2,
                        *(["--tls"] if tls else []))
    # Segments per MB on each leg: the client's (sent from the port the
    # client connected to) and, through a proxy, the backend's.
    legs = {"to_client": {port}}
    if target.name != "direct":
        legs["from_backend"] = set(ctx.synth_ports)
    with SegmentSampler(legs) as seg:
        raw, cpu, wall, load = measured(
            ctx, target, lambda: run_client(ctx, argv, ctx.duration + 90))
    segs = seg.result()
    b = raw.get("bytes", 0)
    return raw, {
        "mb_per_s": raw.get("mb_per_s", 0.0),
        "bytes": b,
        "proxy_cpu_s": cpu,
        "cpu_s_per_gb": (cpu / (b / 1e9)) if b and target.roots else None,
        "load_cpu_s_per_gb": (raw["_load_cpu_s"] / (b / 1e9))
        if b and raw.get("_load_cpu_s") is not None else None,
        "segs_per_mb_to_client":
            segs.get("to_client", {}).get("segs_per_mb"),
        "segs_per_mb_from_backend":
            segs.get("from_backend", {}).get("segs_per_mb"),
        # Samples of `ss` that saw the load's connections: with fewer than
        # two (a short run on a busy machine) there is no difference to
        # take and the segment figures are missing.
        "segs_samples": seg.samples,
        "errors": raw.get("errors_total", 0),
        "loadavg": load,
        "busy_load_cpu": raw.get("_busy_load_cpus"),
        "busy_proxy_cpu": raw.get("_busy_proxy_cpus"),
        "background_cores": raw.get("_background_cores"),
    }


def handshake_argv(ctx, target, cert, resume, tls12):
    if not ctx.use_loadgen:
        return pyclient(ctx, "handshake", target.tls_port, "--procs",
                        ctx.hs_procs, "--threads", ctx.hs_threads,
                        "--duration", ctx.hs_duration,
                        *(["--resume"] if resume else []),
                        *(["--tls12"] if tls12 else []))
    # The version is pinned either way: the "TLS 1.3" workloads must not
    # quietly fall back to 1.2 against a peer that lacks 1.3.
    return loadgen(ctx, "handshakes", target.tls_port, cert, None,
                   "--concurrency", ctx.hs_connections,
                   "--duration", ctx.hs_duration,
                   "--tls-version", "1.2" if tls12 else "1.3",
                   *(["--tls-resume"] if resume else []))


def hs_connections(ctx):
    return (ctx.hs_connections if ctx.use_loadgen else
            ctx.hs_procs * ctx.hs_threads)


def resumed_share(raw, resume, concurrency):
    """Of the handshakes that offered a ticket, the share the proxy resumed.
    pop3client.py counts the offers; loadgen's slots offer on every
    handshake but their first (each slot keeps the newest ticket)."""
    if "resumed_share" in raw:
        return raw["resumed_share"]
    if not resume:
        return 0.0
    resumed = raw.get("tls_resumed", 0)
    offered = raw.get("tls_full", 0) + resumed - concurrency
    return min(1.0, resumed / offered) if offered > 0 else 0.0


def w_handshake(ctx, target, cert, resume, tls12=False):
    argv = handshake_argv(ctx, target, cert, resume, tls12)
    raw, cpu, wall, load = measured(
        ctx, target, lambda: run_client(ctx, argv, ctx.hs_duration + 60))
    n = raw.get("handshakes", 0)
    return raw, {
        "handshakes_per_s": raw.get("handshakes_per_s", 0.0),
        "handshakes": n,
        "resumed_share": resumed_share(raw, resume, hs_connections(ctx)),
        "proxy_cpu_s": cpu,
        "cpu_s_per_1k_handshakes": (cpu / n * 1000) if n else None,
        # What one proxy core would sustain if the client were not the limit.
        "handshakes_per_proxy_cpu_s": (n / cpu) if cpu > 0 else None,
        "errors": raw.get("errors_total", 0),
        "loadavg": load,
        "busy_load_cpu": raw.get("_busy_load_cpus"),
        "busy_proxy_cpu": raw.get("_busy_proxy_cpus"),
        "background_cores": raw.get("_background_cores"),
    }


def warm_up(ctx, port, tls):
    """One short session run (tls: None or the certificate kind), so lazy
    set-up in the proxy (workers, TLS contexts) is not measured."""
    if ctx.use_loadgen:
        argv = loadgen(ctx, "sessions", port, tls, None, "--concurrency", 1,
                       "--duration", 0.2)
    else:
        argv = pyclient(ctx, "sessions", port, "--procs", 1, "--duration",
                        0.2, *(["--tls"] if tls else []))
    try:
        run_client(ctx, argv, 30)
    except Exception as e:  # noqa: BLE001
        log("warm-up failed:", e)


class HoldClient:
    """A client holding N idle logged-in sessions until release().
    loadgen says "loadgen: holding N sessions" on stderr once all are in,
    ends the hold on SIGINT and then prints its JSON; pop3client.py prints
    its JSON once all are in and ends when its stdin closes."""

    def __init__(self, ctx, port, tls, count, curve=False):
        self.loadgen = ctx.use_loadgen
        self.t0 = time.monotonic()
        if self.loadgen:
            # The duration is only a bound: SIGINT ends the hold. The curve
            # binds to many source addresses (100,000 connections to one
            # port exceed the ephemeral range) and has a user per session.
            extra = (["--source", HOLD_SOURCES, "--io-timeout", 30]
                     if curve else [])
            argv = loadgen(ctx, "hold", port, tls,
                           max(count, ctx.users) if curve else None,
                           "--sessions", count,
                           "--concurrency", HOLD_CURVE_CONCURRENCY if curve
                           else ctx.hold_concurrency,
                           "--duration", 600, *extra)
        else:
            argv = pyclient(ctx, "hold", port, "--count", count,
                            "--duration", 120, "--timeout", 120,
                            *(["--tls"] if tls else []))
        self.p = subprocess.Popen(pinned(ctx, argv), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  start_new_session=True)
        self.out, self.err = [], []
        self.ready = threading.Event()
        self.readers = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.out,
                                                      not self.loadgen)),
            threading.Thread(target=self._read, args=(self.p.stderr, self.err,
                                                      self.loadgen))]
        for t in self.readers:
            t.daemon = True
            t.start()

    def _read(self, stream, lines, cue_stream):
        for line in iter(stream.readline, b""):
            text = line.decode(errors="replace")
            lines.append(text)
            if cue_stream and (not self.loadgen or
                               text.startswith("loadgen: holding")):
                self.cue_s = time.monotonic() - self.t0
                self.ready.set()
        if cue_stream:
            self.ready.set()  # exited: nothing more will come

    def started(self, timeout):
        """Waits until every session is in; pop3client.py's JSON or None."""
        if not self.ready.wait(timeout) or (self.loadgen and
                                            self.p.poll() is not None):
            raise RuntimeError("hold: sessions not logged in: " +
                               "".join(self.err)[-400:])
        if self.loadgen:
            return None
        return json.loads(self.out[0]) if self.out else {"held": 0,
                                                         "errors_total": -1}

    def held_at_cue(self):
        for line in self.err:
            if line.startswith("loadgen: holding"):
                return int(line.split()[2])
        return 0

    def release(self):
        """Ends the hold; returns loadgen's JSON (None for pop3client.py)."""
        try:
            if self.loadgen:
                self.p.send_signal(signal.SIGINT)
            else:
                self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for t in self.readers:
            t.join(timeout=5)
        if not self.loadgen or not self.out:
            return None
        return json.loads(self.out[-1])


def backend_conns(ports):
    """{port: established connections pop3-synth holds on it} (ss)."""
    out = {p: 0 for p in ports}
    try:
        text = subprocess.run(["ss", "-Htn", "state", "established"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=30, check=False).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 4:
            port = int(f[2].rsplit(":", 1)[1])
            if port in out:
                out[port] += 1
    return out


def w_hold(ctx, target, tls, count=None):
    """Fresh proxy (started by the caller), one warm-up session, then N
    sessions log in and stay idle; the tree's RSS/PSS delta / N. tls: None
    or the certificate kind. count: a point of the curve (--hold-counts),
    else the classic hold (ctx.hold / ctx.hold_tls)."""
    port = target.tls_port if tls else target.plain_port
    curve = count is not None
    if not curve:
        count = ctx.hold_tls if tls else ctx.hold
    warm_up(ctx, port, tls)
    time.sleep(0.3)
    rss0, pss0, n0 = tree_mem(target.roots)
    client = HoldClient(ctx, port, tls, count, curve=curve)
    try:
        # loadgen bounds its login phase to 300 s itself.
        raw = client.started(timeout=max(180, 330 if count > 20000 else 0))
        fill_wall = getattr(client, "cue_s", None)
        # Let the proxy settle (lazy frees, buffer returns).
        time.sleep(1.0 if count <= 20000 else 3.0)
        rss1, pss1, n1 = tree_mem(target.roots)
        # A big hold's backend connections, per pop3-synth port.
        spread = (backend_conns(hold_backend_ports(ctx, count))
                  if curve and hold_backend_ports(ctx, count) else None)
    finally:
        final = client.release()
    if raw is None:
        raw = final or {"held": 0, "errors_total": -1}
        raw["client"] = "loadgen"
        # Divide by the sessions held when memory was sampled (loadgen's own
        # "held" counts those that also QUIT cleanly at the end).
        raw["held_at_sample"] = client.held_at_cue()
        held = raw["held_at_sample"]
    else:
        raw["client"] = "pop3client.py"
        held = raw.get("held", 0)
    raw.update({"rss_before": rss0, "rss_during": rss1, "pss_before": pss0,
                "pss_during": pss1, "processes_before": n0,
                "processes_during": n1, "fill_wall_s": fill_wall,
                "backend_conns_per_port": spread})
    # Time to fill: loadgen's first connect to its last login (the harness's
    # own clock, process start to the cue, for pop3client.py).
    fill = raw.get("hold_fill_s") or fill_wall
    metrics = {
        "held": held,
        "rss_kib_per_session": (rss1 - rss0) / held / 1024 if held else None,
        "pss_kib_per_session": (pss1 - pss0) / held / 1024 if held else None,
        "processes_during": n1,
        "errors": raw.get("errors_total", 0),
    }
    if curve:
        metrics.update({
            "count": count,
            # Sessions asked for that were not logged in when memory was
            # sampled (refused, timed out): counted as errors too.
            "missing": max(0, count - held),
            "fill_s": fill,
            "fill_sessions_per_s": held / fill if fill else None,
            "rss_mib": rss1 / 2**20, "pss_mib": pss1 / 2**20,
        })
        metrics["errors"] = (metrics["errors"] or 0) + metrics["missing"]
    return raw, metrics


# --------------------------------------------------------------------------
# attack: good users' sessions with and without attackers


def make_attack_passwd(ctx):
    """The attack passwd-file's lines (Dovecot's format, which popgate
    reads too): every good user, the sprayed users and the stuffed user,
    all with PASSWORD hashed by SHA512-CRYPT (5000 rounds, the crypt(3)
    default). One hash for all (same salt): the cost per check is the
    same, and making 6,000 hashes would take a while."""
    r = sh(["openssl", "passwd", "-6", "-salt", "popgatebench", PASSWORD])
    h = r.stdout.decode().strip()
    if r.returncode or not h.startswith("$6$"):
        raise RuntimeError(f"openssl passwd -6 failed: {h[-200:]}")
    ctx.attack_hash = h
    users = [USER_FORMAT.format(i=i) for i in range(ctx.users)]
    users += [SPRAY_USERS[0].format(i=i) for i in range(SPRAY_USERS[1])]
    users += [STUFF_USERS[0].format(i=i) for i in range(STUFF_USERS[1])]
    ctx.attack_passwd_lines = [f"{u}:{{SHA512-CRYPT}}{h}" for u in users]


HASH_PROBE = r"""
import ctypes, ctypes.util, sys, time
lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
pw, setting, n = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
assert lib.crypt(pw, setting) == setting
t0 = time.process_time()
for _ in range(n):
    lib.crypt(b"wrong-guess", setting)
print((time.process_time() - t0) / n)
"""


def measure_hash(ctx, n=200):
    """CPU seconds of one SHA512-CRYPT verification (libxcrypt's crypt(3),
    what popgate's hash pool and Dovecot's auth process call), on a proxy
    CPU: the yardstick for the cost of a rejected attempt."""
    r = sh(taskset(ctx.proxy_cpus) + [ctx.py, "-c", HASH_PROBE, PASSWORD,
                                      ctx.attack_hash, str(n)])
    try:
        return float(r.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        log("hash probe failed:", r.stdout.decode()[-300:])
        return None


def attack_argv(ctx, target, pattern):
    """Good sessions (from GOOD_SOURCES) and, unless pattern is None,
    attackers beside them; --attackers 0 for the baseline, so both runs
    report the same keys."""
    extra = ["--concurrency", ctx.sessions_concurrency,
             "--duration", ctx.attack_duration, "--source", GOOD_SOURCES,
             # popgate's delay grows to max_failure_delay (30 s) and
             # Dovecot's penalty to 15 s: attackers wait that long rather
             # than count a timeout.
             "--io-timeout", 40,
             "--attackers", 0 if pattern is None else ctx.attackers]
    if pattern is not None:
        fmt, count = SPRAY_USERS if pattern == "spray" else STUFF_USERS
        extra += ["--attack", pattern, "--attack-user-format", fmt,
                  "--attack-user-count", count]
        if ctx.attack_rate:
            extra += ["--attack-rate", ctx.attack_rate]
    return loadgen(ctx, "sessions", target.plain_port, None, None, *extra)


def w_attack_only(ctx, target, pattern):
    """The attackers without good sessions: proxy CPU over the attempts it
    rejected is the CPU per rejected attempt with nothing to subtract."""
    fmt, count = SPRAY_USERS if pattern == "spray" else STUFF_USERS
    argv = loadgen(ctx, "sessions", target.plain_port, None, None,
                   "--concurrency", 0, "--duration", ctx.attack_duration,
                   "--io-timeout", 40, "--attackers", ctx.attackers,
                   "--attack", pattern, "--attack-user-format", fmt,
                   "--attack-user-count", count,
                   *(["--attack-rate", ctx.attack_rate]
                     if ctx.attack_rate else []))
    raw, cpu, wall, load = measured(
        ctx, target,
        lambda: run_client(ctx, argv, ctx.attack_duration + 120))
    a = raw.get("attack") or {}
    rejected = a.get("rejected", 0)
    outcomes = a.get("outcomes", {})
    per = cpu / rejected if rejected else None
    return raw, {
        "attempts": a.get("attempts", 0),
        "attempts_per_s": a.get("attempts_per_s"),
        "rejected": rejected,
        "attack_connections": a.get("connections"),
        "attempt_p50_ms": a.get("attempt_latency_ms", {}).get("p50"),
        "proxy_cpu_s": cpu,
        "cpu_us_per_rejected": per * 1e6 if per is not None else None,
        "rejected_per_hash": (per / ctx.hash_s
                              if per is not None and ctx.hash_s else None),
        "accepted": outcomes.get("accepted", 0),
        **{f"out_{k}": v for k, v in outcomes.items()},
        "errors": 0,  # no good sessions here
        "loadavg": load,
        "busy_load_cpu": raw.get("_busy_load_cpus"),
        "busy_proxy_cpu": raw.get("_busy_proxy_cpus"),
        "background_cores": raw.get("_background_cores"),
    }


def w_attack(ctx, target, pattern, variant="plain"):
    """One run: the good sessions alone (pattern None) or under attack.
    Under attack, the proxy's CPU is split: the good sessions' share is
    the baseline's CPU per session times the sessions done now; the rest,
    over the attempts the proxy rejected, is the CPU per rejected attempt."""
    argv = attack_argv(ctx, target, pattern)
    # store = "redis": redis-server's own CPU is part of the store's cost.
    redis_pid = ctx.attack_redis_pid if variant == "redis" else None
    r0 = tree_cpu_s([redis_pid]) if redis_pid else None
    raw, cpu, wall, load = measured(
        ctx, target,
        lambda: run_client(ctx, argv, ctx.attack_duration + 120))
    redis_cpu = tree_cpu_s([redis_pid]) - r0 if redis_pid else None
    n = raw.get("sessions", 0)
    lat = raw.get("latency_ms", {})
    login = raw.get("login_latency_ms", {})
    a = raw.get("attack") or {}
    m = {
        "sessions_per_s": raw.get("sessions_per_s", 0.0),
        "sessions": n,
        "latency_p50_ms": lat.get("p50"),
        "latency_p99_ms": lat.get("p99"),
        "login_p50_ms": login.get("p50"),
        "login_p99_ms": login.get("p99"),
        "proxy_cpu_s": cpu,
        "cpu_s_per_1k_sessions": (cpu / n * 1000) if n else None,
        "errors": raw.get("errors_total", 0),
        "loadavg": load,
        "busy_load_cpu": raw.get("_busy_load_cpus"),
        "busy_proxy_cpu": raw.get("_busy_proxy_cpus"),
        "background_cores": raw.get("_background_cores"),
    }
    if redis_cpu is not None:
        m["redis_cpu_s"] = redis_cpu
        m["redis_cpu_s_per_1k_sessions"] = redis_cpu / n * 1000 if n else None
    key = (target.name, variant)
    if pattern is None:
        ctx.attack_base[key] = m
        return raw, m
    base = ctx.attack_base.get(key) or {}
    rejected = a.get("rejected", 0)
    per_session = (base["proxy_cpu_s"] / base["sessions"]
                   if base.get("sessions") else None)
    attack_cpu = (cpu - per_session * n) if per_session is not None else None
    per_rejected = (max(0.0, attack_cpu) / rejected
                    if attack_cpu is not None and rejected else None)

    def rel(k):
        b, v = base.get(k), m.get(k)
        return v / b if isinstance(b, (int, float)) and b and \
            isinstance(v, (int, float)) else None

    outcomes = a.get("outcomes", {})
    m.update({
        "sessions_ratio": rel("sessions_per_s"),
        "p99_ratio": rel("latency_p99_ms"),
        "login_p99_ratio": rel("login_p99_ms"),
        "attempts": a.get("attempts", 0),
        "attempts_per_s": a.get("attempts_per_s"),
        "rejected": rejected,
        "rejected_per_s": a.get("rejected_per_s"),
        "attack_connections": a.get("connections"),
        "attempt_p50_ms": a.get("attempt_latency_ms", {}).get("p50"),
        "attack_cpu_s": attack_cpu,
        "cpu_us_per_rejected": (per_rejected * 1e6
                                if per_rejected is not None else None),
        "hash_us": ctx.hash_s * 1e6 if ctx.hash_s else None,
        "rejected_per_hash": (per_rejected / ctx.hash_s
                              if per_rejected is not None and ctx.hash_s
                              else None),
        "accepted": outcomes.get("accepted", 0),
        **{f"out_{k}": v for k, v in outcomes.items()},
    })
    return raw, m


def start_redis(ctx):
    """A redis-server of our own on loopback (no persistence), for popgate's
    [limits] store = "redis"; None if there is none."""
    exe = shutil.which("redis-server")
    if not exe:
        return None, "redis-server not installed"
    d = os.path.join(ctx.tmp, "redis")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    p = ctx.procs.start("redis", [exe, "--port", str(port),
                                  "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", d,
                                  "--protected-mode", "yes"],
                        cpus=ctx.load_cpus,
                        log_path=os.path.join(d, "redis.log"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                if c.recv(64).startswith(b"+PONG"):
                    return (p, f"127.0.0.1:{port}"), None
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.05)
    ctx.procs.stop(p)
    return None, "redis-server did not answer PING"


def bench_attack(ctx, name, r):
    """Repetition r of the attack workload against one target: the good
    sessions alone, then under each attack pattern, on one freshly started
    proxy (spraying and stuffing use different sources and users, so the
    first leaves nothing the second meets). popgate also runs once with
    [limits] store = "redis" (the cost of the shared store per login)."""
    if name not in ATTACK_TARGETS:
        return
    variants = [("plain", None)]
    if name == "popgate" and ctx.attack_redis:
        variants.append(("redis", ctx.attack_redis))
    for variant, redis in variants:
        t = TARGET_CLASSES[name](ctx)
        t.attack = True
        if redis:
            t.redis_address = redis
        try:
            t.start("ecdsa")
        except Exception as e:  # noqa: BLE001
            if variant == "plain":
                ctx.unavailable[name] = f"did not start: {e}"
            log(name, variant, "attack set-up did not start:", e)
            continue
        try:
            # Full runs log every good user in once first, so an auth
            # cache is as warm in the baseline as in the attacked runs
            # (users polling every few minutes); quick runs only wake the
            # proxy up.
            warm = (["--duration", 0.2] if ctx.quick else
                    ["--sessions", ctx.users, "--duration", 60])
            try:
                run_client(ctx, loadgen(ctx, "sessions", t.plain_port, None,
                                        None, "--concurrency",
                                        ctx.sessions_concurrency, *warm,
                                        "--source", GOOD_SOURCES), 120)
            except Exception as e:  # noqa: BLE001
                log("warm-up failed:", e)
            record(ctx, t, variant, "attack-baseline", r,
                   lambda: w_attack(ctx, t, None, variant))
            # The redis variant is about the store's cost per login: its
            # baseline, and the first pattern to see the shared counters
            # at work.
            patterns = (ctx.attack_patterns if variant == "plain"
                        else ctx.attack_patterns[:1])
            for pattern in patterns:
                record(ctx, t, variant, f"attack-{pattern}", r,
                       lambda: w_attack(ctx, t, pattern, variant))
                # The same attack alone, right after (the proxy's state
                # carried over: blocks and penalties in force): all the
                # proxy's CPU is the attack's.
                record(ctx, t, variant, f"attack-only-{pattern}", r,
                       lambda: w_attack_only(ctx, t, pattern))
        finally:
            t.stop()


# --------------------------------------------------------------------------
# auth-file: sessions whose password the proxy checks against a passwd-file

# One ARGON2ID verification: libargon2's argon2id_verify or, with a 4th
# argument "sodium", libsodium's crypto_pwhash_str_verify (what Dovecot's
# auth process calls, and popgate for version 1.3 hashes, "v=19": the
# ones doveadm writes; popgate takes libargon2 for older ones only).
ARGON2_PROBE = r"""
import ctypes, ctypes.util, sys, time
pw, enc, n = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
if sys.argv[4:] == ["sodium"]:
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or
                      "libsodium.so.23")
    assert lib.sodium_init() >= 0
    f = lib.crypto_pwhash_str_verify
    f.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong]
else:
    lib = ctypes.CDLL(ctypes.util.find_library("argon2") or
                      "libargon2.so.1")
    f = lib.argon2id_verify
    f.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
f.restype = ctypes.c_int
assert f(enc, pw, len(pw)) == 0
t0 = time.process_time()
for _ in range(n):
    f(enc, pw, len(pw))
print((time.process_time() - t0) / n)
"""

ARGON2_HASH = r"""
import base64, ctypes, ctypes.util, os, sys
lib = ctypes.CDLL(ctypes.util.find_library("argon2") or "libargon2.so.1")
t, m, p = map(int, sys.argv[2:5])
pw, salt = sys.argv[1].encode(), os.urandom(16)
buf = ctypes.create_string_buffer(256)
rc = lib.argon2id_hash_encoded(t, m, p, pw, len(pw), salt, len(salt), 32,
                               buf, len(buf))
assert rc == 0, rc
print(buf.value.decode())
"""


def argon2id_hash(ctx):
    """PASSWORD hashed as an operator gets it: `doveadm pw -s ARGON2ID`
    (Dovecot's default cost); without doveadm, libargon2 with the same
    parameters (ARGON2ID_DEFAULT)."""
    if shutil.which("doveadm"):
        r = sh(["doveadm", "pw", "-s", "ARGON2ID", "-p", PASSWORD])
        h = r.stdout.decode().strip().splitlines()[-1:] or [""]
        if r.returncode == 0 and h[0].startswith("{ARGON2ID}$argon2id$"):
            return h[0][len("{ARGON2ID}"):], "doveadm pw -s ARGON2ID"
        log("doveadm pw -s ARGON2ID failed:", r.stdout.decode()[-200:])
    t, m, p = ARGON2ID_DEFAULT
    r = sh([ctx.py, "-c", ARGON2_HASH, PASSWORD, str(t), str(m), str(p)])
    h = r.stdout.decode().strip()
    if r.returncode or not h.startswith("$argon2id$"):
        raise RuntimeError(f"argon2id hash failed: {h[-200:]}")
    return h, f"libargon2 t={t} m={m} p={p}"


def make_auth_file(ctx):
    """The auth-file workload's passwd-files, one per scheme: every user
    with PASSWORD (what pop3-synth's generated users accept, so the proxy
    passes the same password on), all with one hash per scheme (the same
    salt for all users: the cost per check is the same, and 5,000 ARGON2ID
    hashes would take minutes). ctx.auth_file = {scheme: {lines, hash,
    made_by, hash_cpu_s}}."""
    users = [USER_FORMAT.format(i=i) for i in range(ctx.users)]
    out = {}
    for scheme in ctx.auth_file_schemes:
        if scheme == "sha512-crypt":
            r = sh(["openssl", "passwd", "-6", "-salt", "popgatebench",
                    PASSWORD])
            h = r.stdout.decode().strip()
            if r.returncode or not h.startswith("$6$"):
                raise RuntimeError(f"openssl passwd -6 failed: {h[-200:]}")
            tag, made_by, probe = "SHA512-CRYPT", "openssl passwd -6", HASH_PROBE
        else:
            h, made_by = argon2id_hash(ctx)
            tag, probe = "ARGON2ID", ARGON2_PROBE
        def probe_s(*lib):
            r = sh(taskset(ctx.proxy_cpus) + [
                ctx.py, "-c", probe, PASSWORD, h,
                "200" if scheme == "sha512-crypt" else "10", *lib])
            try:
                return float(r.stdout.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                log(f"{tag} hash probe {lib} failed:",
                    r.stdout.decode()[-300:])
                return None
        portable = probe_s()
        # ARGON2ID: Dovecot verifies with libsodium (SIMD code chosen at
        # run time), and so does popgate for a version 1.3 hash (libargon2,
        # Debian's portable build, for older ones); crypt(3) for both
        # otherwise.
        sodium = probe_s("sodium") if scheme == "argon2id" else portable
        cost = (sodium if scheme == "argon2id" and "$v=19$" in h
                else portable)
        log(f"auth-file {tag}: {made_by}; one verification "
            + (f"{cost * 1e3:.2f} ms of CPU" if cost else "not measured")
            + (f" (libsodium; libargon2: {portable * 1e3:.2f} ms)"
               if scheme == "argon2id" and portable else ""))
        out[scheme] = {"lines": [f"{u}:{{{tag}}}{h}" for u in users],
                       "hash": h, "made_by": made_by, "hash_cpu_s": cost,
                       "hash_cpu_s_libargon2": portable,
                       "hash_cpu_s_by_target": {"popgate": cost,
                                                "dovecot-proxy": sodium}}
    ctx.auth_file = out


def w_auth_file(ctx, target, scheme):
    """Plain sessions (the sessions workload's loadgen run) against a
    target that checks every password itself. 32 logins queued for one
    core's ARGON2ID hashes wait several seconds: a 30 s I/O timeout (loadgen's
    default is 10 s) so that a slow proxy is measured, not counted as
    failing."""
    raw, m = w_sessions(ctx, target, ("--io-timeout", 30))
    cost = ctx.auth_file[scheme]["hash_cpu_s_by_target"].get(target.name)
    n = m.get("sessions") or 0
    per = m["proxy_cpu_s"] / n if n and target.roots else None
    m["hash_ms"] = cost * 1e3 if cost else None
    # The proxy's CPU per session in units of one hash: 1 + what the rest
    # of a session (accept, backend login, relaying) costs.
    m["cpu_per_session_in_hashes"] = per / cost if per and cost else None
    return raw, m


def bench_auth_file(ctx, name, r):
    """Repetition r of the auth-file workload against one target: one
    fresh start per scheme (its passwd-file), a warm-up, one sessions
    run."""
    if name not in AUTH_FILE_TARGETS:
        return
    for scheme in ctx.auth_file_schemes:
        t = TARGET_CLASSES[name](ctx)
        t.auth_file = ctx.auth_file[scheme]["lines"]
        try:
            t.start("ecdsa")
        except Exception as e:  # noqa: BLE001
            why = f"auth-file set-up did not start: {e}"

            def fail():
                raise RuntimeError(why)
            record(ctx, t, scheme, "auth-file", r, fail)
            continue
        try:
            warm_up(ctx, t.plain_port, None)
            record(ctx, t, scheme, "auth-file", r,
                   lambda: w_auth_file(ctx, t, scheme))
        finally:
            t.stop()


# --------------------------------------------------------------------------
# orchestration


def record(ctx, target, variant, workload, rep, fn):
    """Runs one measurement. A run during which other processes used more
    than --max-background cores is kept in the JSON but marked discarded and
    run again (at most --retries times)."""
    for attempt in range(ctx.retries + 1):
        t0 = time.monotonic()
        target.session_results()  # from here on
        try:
            raw, m = fn()
            err = None
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            raw, m, err = {}, {}, f"{type(e).__name__}: {e}"
        bg = m.get("background_cores")
        discard = (err is None and isinstance(bg, (int, float)) and
                   bg > ctx.max_background and attempt < ctx.retries)
        run = {"target": target.name, "variant": variant,
               "workload": workload, "rep": rep, "attempt": attempt + 1,
               "discarded": discard, "client": raw.get("client"),
               "metrics": m, "raw": raw, "error": err,
               "proxy_session_results": target.session_results(),
               "seconds": round(time.monotonic() - t0, 2)}
        ctx.runs.append(run)
        brief = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in m.items()
            if k not in ("loadavg", "bytes", "sessions", "handshakes")
            and v is not None)
        results = run["proxy_session_results"]
        log(f"{target.name:13s} {variant:9s} {workload:16s} #{rep}: "
            f"{err or brief}"
            + (f"  [proxy session results: {results}]" if results else "")
            + (f"  [DISCARDED: background load {bg:.2f} cores; again]"
               if discard else ""))
        if not discard:
            return run
    return run


def bench_target(ctx, name, r):
    """Repetition r of every workload against one target. Repetitions are
    interleaved across targets (rep 1 of all, then rep 2 of all, ...), so a
    burst of background load does not hit all runs of one target."""
    if "attack" in ctx.workloads:
        bench_attack(ctx, name, r)
    if "auth-file" in ctx.workloads:
        bench_auth_file(ctx, name, r)
    if not ctx.workloads & (set(WORKLOADS) - {"auth-file"}):
        return
    t = TARGET_CLASSES[name](ctx)
    tls = t.tls and not ctx.no_tls
    try:
        t.start("ecdsa")
    except Exception as e:  # noqa: BLE001
        ctx.unavailable[name] = f"did not start: {e}"
        log(name, "did not start:", e)
        return
    wl = ctx.workloads
    try:
        warm_up(ctx, t.plain_port, None)
        if "sessions" in wl:
            record(ctx, t, "plain", "sessions", r, lambda: w_sessions(ctx, t))
        cost_curves(ctx, t, r)
        if "throughput" in wl:
            record(ctx, t, "plain", "throughput", r,
                   lambda: w_throughput(ctx, t))
        if tls and "handshake" in wl:
            handshakes(ctx, t, "ecdsa", r)
            record(ctx, t, "tls-ecdsa", "handshake-resumed-tls12", r,
                   lambda: w_handshake(ctx, t, "ecdsa", True, tls12=True))
        if tls and "throughput" in wl:
            record(ctx, t, "tls-ecdsa", "throughput", r,
                   lambda: w_throughput(ctx, t, tls="ecdsa"))
    finally:
        t.stop()
    if name == "direct":
        return  # the backend's own memory is not a proxy's
    holds = [("plain", None)] + ([("tls-ecdsa", "ecdsa")] if tls else [])
    if "hold" not in wl:
        holds = []
    for variant, tls_hold in holds:
        for count in hold_counts_for(ctx, name, r):
            def one():
                t.hold_count = count
                t.start("ecdsa")
                try:
                    return w_hold(ctx, t, tls_hold, count)
                finally:
                    t.stop()
                    t.hold_count = 0
            record(ctx, t, variant, f"hold-{count}", r, one)
    if tls and "handshake" in wl:
        try:
            t.start("rsa")
        except Exception as e:  # noqa: BLE001
            log(name, "RSA variant did not start:", e)
            return
        try:
            handshakes(ctx, t, "rsa", r)
        finally:
            t.stop()


def hold_counts_for(ctx, name, r):
    """The curve's counts for target `name` in repetition r: counts above
    HOLD_REPEAT_MAX in repetition 1 only; a count above the target's cap
    (HOLD_CAPS) or, with pop3client.py, above 2,000 becomes the cap (once)."""
    cap, why = HOLD_CAPS.get(name, (None, ""))
    if not ctx.use_loadgen and (cap is None or cap > 2000):
        cap, why = 2000, "pop3client.py holds at most 2,000 sessions"
    out = []
    for c in ctx.hold_counts:
        if cap and c > cap:
            ctx.hold_capped[name] = (cap, why)
            c = cap
        if r > 1 and c > HOLD_REPEAT_MAX:
            continue
        if c not in out:
            out.append(c)
    return out


def alias_hold(med):
    """The classic "hold" figures (the RSS/PSS columns and the issue-4
    checks) from the curve: each target's point at its largest count."""
    for tgt, by_var in med.items():
        for var, by_wl in by_var.items():
            pts = [(int(wl[5:]), m) for wl, m in by_wl.items()
                   if wl.startswith("hold-") and wl[5:].isdigit()]
            if pts and "hold" not in by_wl:
                by_wl["hold"] = dict(max(pts, key=lambda p: p[0])[1])
    return med


def handshakes(ctx, t, cert, r):
    """Full and resumed TLS 1.3 handshakes against the certificate kind the
    target was started with."""
    warm_up(ctx, t.tls_port, cert)
    for resume in (False, True):
        wl = "handshake-resumed" if resume else "handshake-full"
        record(ctx, t, f"tls-{cert}", wl, r,
               lambda: w_handshake(ctx, t, cert, resume))


def medians(runs):
    groups = {}
    for run in runs:
        if run["error"] or run.get("discarded"):
            continue
        key = (run["target"], run["variant"], run["workload"])
        groups.setdefault(key, []).append(run["metrics"])
    out = {}
    for (tgt, var, wl), ms in groups.items():
        agg = {}
        for k in ms[0]:
            vals = [m[k] for m in ms if isinstance(m.get(k), (int, float))]
            if k == "errors":
                agg[k] = sum(vals)
            elif vals:
                agg[k] = statistics.median(vals)
            else:
                agg[k] = None
        agg["reps"] = len(ms)
        out.setdefault(tgt, {}).setdefault(var, {})[wl] = agg
    return out


# --------------------------------------------------------------------------
# set-up: packages, build, machine info


def sh(argv, **kw):
    return subprocess.run(argv, check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kw)


def running_pids(names):
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                comm = open(f"/proc/{d}/comm").read().strip()
            except OSError:
                continue
            if comm in names:
                out[int(d)] = comm
    return out


def install(args):
    if args.no_install:
        return
    deps = os.path.join(REPO, "scripts", "install-deps.sh")
    if os.path.exists(deps):
        log("build dependencies: scripts/install-deps.sh")
        r = sh(["bash", deps])
        if r.returncode:
            sys.exit(r.stdout.decode()[-2000:])
    missing = [p for p in PEER_PACKAGES
               if b"install ok installed" not in sh(
                   ["dpkg-query", "-W", "-f=${Status}", p]).stdout]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing packages {missing}: run as root or install them")
    daemons = {"nginx", "haproxy", "perdition", "perdition.pop3", "dovecot"}
    before = running_pids(daemons)
    # Keep the packages' init scripts from starting system services.
    prc = "/usr/sbin/policy-rc.d"
    made_prc = False
    if not os.path.exists(prc):
        with open(prc, "w") as f:
            f.write("#!/bin/sh\n# bench/compare: no service starts during install\nexit 101\n")
        os.chmod(prc, 0o755)
        made_prc = True
    try:
        log("apt-get install", " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = sh(["apt-get", "update", "-qq"], env=env)
        r = sh(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                *missing], env=env)
        if r.returncode:
            sys.exit("apt-get install failed:\n" + r.stdout.decode()[-3000:])
    finally:
        if made_prc:
            os.unlink(prc)
    # If a package started its system service anyway, stop it.
    for pid, comm in running_pids(daemons).items():
        if pid not in before:
            svc = "perdition" if comm.startswith("perdition") else comm
            log(f"package started the system {svc} service (pid {pid}); stopping it")
            if shutil.which("systemctl") and sh(["systemctl", "is-active", svc]).returncode == 0:
                sh(["systemctl", "stop", svc])
            else:
                sh(["service", svc, "stop"])


def build(args):
    if args.bin_dir or (args.popgate_bin and args.synth_bin):
        b = args.bin_dir or ""
    else:
        b = args.build_dir
        if not args.no_build:
            log("building popgate, pop3-synth, loadgen in", b)
            r = sh(["cmake", "-S", REPO, "-B", b, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DPOPGATE_BUILD_TESTS=OFF"])
            if r.returncode:
                sys.exit(r.stdout.decode()[-3000:])
            r = sh(["ninja", "-C", b, "popgate", "pop3-synth", "loadgen"])
            if r.returncode:
                # loadgen is optional (pop3client.py stands in).
                r = sh(["ninja", "-C", b, "popgate", "pop3-synth"])
                if r.returncode:
                    sys.exit(r.stdout.decode()[-3000:])
    bins = {}
    for name, rel in (("popgate", "server/popgate"),
                      ("pop3-synth", "testbed/pop3-synth"),
                      ("loadgen", "bench/loadgen/loadgen")):
        path = os.path.join(b, rel)
        if os.access(path, os.X_OK):
            bins[name] = path
    for name, path in (("popgate", args.popgate_bin),
                       ("pop3-synth", args.synth_bin),
                       ("loadgen", args.loadgen_bin)):
        if path:
            bins[name] = path
    for need in ("popgate", "pop3-synth"):
        if need not in bins:
            sys.exit(f"{need} not found under {b}")
    return bins


def pkg_versions():
    out = {}
    for p in VERSION_PACKAGES:
        r = sh(["dpkg-query", "-W", "-f=${Version}", p])
        if r.returncode == 0 and r.stdout:
            out[p] = r.stdout.decode()
    return out


def machine_info():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    try:
        osr = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release")
                   if "=" in l)
        distro = osr.get("PRETTY_NAME", "").strip('"')
    except OSError:
        distro = "?"
    git = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.decode().strip()
    dirty = bool(sh(["git", "-C", REPO, "status", "--porcelain", "--",
                     "proxy", "auth", "routing", "bench"]).stdout.strip())
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "kernel": platform.release(), "distro": distro,
            "mem_bytes": mem,
            "virtualization": sh(["systemd-detect-virt"]).stdout.decode().strip()
            if shutil.which("systemd-detect-virt") else None,
            "popgate_commit": git + ("+dirty" if dirty else ""),
            "loadavg_at_start": os.getloadavg()}


def synth_ports(synth, n):
    """The ports of pop3-synth's first n "listening on" lines."""
    deadline = time.monotonic() + 10
    while True:
        with open(synth.out_path, "rb") as f:
            ports = [int(p) for p in re.findall(
                rb"pop3-synth listening on 127\.0\.0\.1:(\d+)", f.read())]
        if len(ports) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if len(ports) < n:
        sys.exit(f"pop3-synth printed {len(ports)} listening lines, "
                 f"wanted {n}")
    return ports[:n]


def loadgen_ok(ctx):
    if "loadgen" not in ctx.bins or ctx.force_pyclient:
        return False
    try:
        r = run_client(ctx, [ctx.bins["loadgen"], "--mode", "sessions",
                             "--target", f"127.0.0.1:{ctx.synth_port}",
                             "--concurrency", "4", "--duration", "0.5",
                             "--users", "100", "--password", PASSWORD], 20)
        return r.get("sessions", 0) > 0 and r.get("errors_total", 1) == 0
    except Exception as e:  # noqa: BLE001
        log("loadgen self-test failed:", e)
        return False


CLIENT_DESCRIPTIONS = {
    "loadgen": "bench/loadgen (C++, io_uring, BoringSSL)",
    "pop3client.py": "bench/compare/pop3client.py (Python ssl/OpenSSL)",
}
TLS_NOTE = ("implicit TLS; handshakes pinned to TLS 1.3 (and 1.2 for "
            "TLS 1.2 resumption), the client accepting only the variant's "
            "signature (ECDSA or RSA); throughput and holds negotiate the "
            "highest version; self-signed ECDSA P-256 and RSA-2048")
TLS_NOTE_PY = "TLS 1.3 (client default), self-signed ECDSA P-256 and RSA-2048"


def client_note(ctx):
    """Which client ran which workloads (from the runs themselves), e.g.
    'every workload: bench/loadgen (...)'."""
    by_client = {}
    for run in ctx.runs:
        name = run.get("client")
        if not name or run["error"]:
            continue
        wl = f"{run['variant']} {run['workload']}"
        by_client.setdefault(name, [])
        if wl not in by_client[name]:
            by_client[name].append(wl)
    why = ("" if ctx.use_loadgen else
           " (--pyclient)" if ctx.force_pyclient else " (loadgen unavailable)")
    if not by_client:
        return "no client ran" + why
    if len(by_client) == 1:
        name = next(iter(by_client))
        return f"every workload: {CLIENT_DESCRIPTIONS[name]}{why}"
    return "; ".join(f"{', '.join(wls)}: {CLIENT_DESCRIPTIONS[name]}"
                     for name, wls in by_client.items())


def main():
    ap = argparse.ArgumentParser(
        description="popgate vs nginx/dovecot/perdition/haproxy on loopback")
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 1 s runs, small holds (~2-3 min)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma list of " + ",".join(ALL_TARGETS))
    ap.add_argument("--no-tls", action="store_true", help="plain only")
    ap.add_argument("--no-install", action="store_true",
                    help="do not run apt-get (packages already there)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "compare"))
    ap.add_argument("--bin-dir", help="use binaries from this build dir")
    ap.add_argument("--popgate-bin")
    ap.add_argument("--synth-bin")
    ap.add_argument("--loadgen-bin")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--tag", help="result file name (default: date-time)")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--duration", type=float, help="seconds per run")
    ap.add_argument("--pin", choices=["auto", "none"], default="auto",
                    help="auto: load generator + backend on CPU 0, proxies "
                         "on the other CPUs (when there are 2+)")
    ap.add_argument("--pyclient", action="store_true",
                    help="use pop3client.py even where loadgen works")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--popgate-set", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="a popgate [server] setting for this run, e.g. "
                         "forward_socket_buffer=0 (VALUE is TOML: 0, true, "
                         '\'"10s"\'); repeatable')
    ap.add_argument("--popgate-limits-set", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="a popgate [limits] setting for the attack "
                         "workload, e.g. refusal_delay='\"100ms\"'; "
                         "repeatable")
    ap.add_argument("--popgate-tenant-set", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="a setting in popgate's [[tenant]] for this run, "
                         "e.g. failover=next or health_check.interval=1s "
                         "(a dotted key goes into [tenant.health_check]); "
                         "client_identity=proxy-v2 also starts pop3-synth "
                         "with --proxy-protocol; repeatable")
    ap.add_argument("--synth-backends", type=int, default=1, metavar="N",
                    help="pop3-synth listens on N ports and popgate's "
                         "tenant gets N backends (the other targets use "
                         "the first)")
    ap.add_argument("--rates", metavar="R,R,...",
                    help="rates workload: offered session rates per second "
                         "(default " + ",".join(map(str, RATES)) + ")")
    ap.add_argument("--concurrency-levels", metavar="C,C,...",
                    help="concurrency workload: sessions in flight, closed "
                         "loop (default "
                         + ",".join(map(str, CONCURRENCY_LEVELS)) + "; quick "
                         + ",".join(map(str, CONCURRENCY_LEVELS_QUICK)) + ")")
    ap.add_argument("--hold-counts", metavar="N,N,...",
                    help="hold workload: the idle-session counts of the "
                         "curve, plain and TLS (default "
                         + ",".join(map(str, HOLD_COUNTS)) + "; quick "
                         + ",".join(map(str, HOLD_COUNTS_QUICK)) + ")")
    ap.add_argument("--hold-per-backend", type=int, metavar="N",
                    help="hold workload: a hold of more than N sessions "
                         "spreads the proxy's backend connections over "
                         "several pop3-synth ports (default: half the "
                         "ephemeral port range; small values test that "
                         "set-up at small counts)")
    ap.add_argument("--workloads", default="all",
                    help="comma list of sessions,throughput,handshake,hold,"
                         "rates,concurrency,auth-file "
                         "(default all) and attack (never in all: good "
                         "users' sessions with and without attackers, "
                         "popgate, nginx and dovecot-proxy only). "
                         "auth-file: plain sessions whose password the "
                         "proxy checks against a passwd-file (popgate "
                         "auth = file with auth_threads = proxy cores, "
                         "dovecot-proxy passdb passwd-file; the other "
                         "targets do not verify passwords), one restart "
                         "per scheme: SHA512-CRYPT and ARGON2ID at "
                         "Dovecot's default cost (--auth-file-schemes)")
    ap.add_argument("--auth-file-schemes",
                    default=",".join(AUTH_FILE_SCHEMES),
                    help="auth-file workload: comma list of "
                         + ",".join(AUTH_FILE_SCHEMES))
    ap.add_argument("--attackers", type=int, metavar="N",
                    help="attack workload: attacker connections (default "
                         "64; quick 32)")
    ap.add_argument("--attack-patterns", default=",".join(ATTACK_PATTERNS),
                    help="attack workload: comma list of spray,stuff")
    ap.add_argument("--attack-rate", type=float, default=0,
                    help="attack workload: cap on attempts/s over all "
                         "attackers (default 0: as fast as the proxy "
                         "answers)")
    ap.add_argument("--no-redis", action="store_true",
                    help="attack workload: skip popgate's store = redis "
                         "variant")
    ap.add_argument("--update-md", metavar="FILE",
                    help="also refresh the tables between <!-- compare:begin "
                         "--> and <!-- compare:end --> in FILE (e.g. "
                         "BENCHMARKS.md)")
    ap.add_argument("--quiet-cores", type=float, default=0.3,
                    help="before each run wait until the machine uses at "
                         "most this many cores (shared machines)")
    ap.add_argument("--max-background", type=float, default=0.25,
                    help="a run during which other processes used more than "
                         "this many cores is discarded and run again")
    ap.add_argument("--retries", type=int, default=2,
                    help="... at most this many times (then it is kept)")
    ap.add_argument("--max-quiet-wait", type=float, default=8.0,
                    help="... but at most this many seconds")
    args = ap.parse_args()

    ctx = Ctx()
    ctx.quick = args.quick
    ctx.popgate_settings = parse_settings(args.popgate_set, "--popgate-set")
    ctx.tenant_settings = parse_settings(args.popgate_tenant_set,
                                         "--popgate-tenant-set")
    ctx.limits_settings = parse_settings(args.popgate_limits_set,
                                         "--popgate-limits-set")
    # popgate sends a PROXY v2 header first on every backend connection:
    # pop3-synth must skip it, and then only popgate can talk to it.
    ctx.synth_proxy = ctx.tenant_settings.get("client_identity") == "proxy-v2"
    if args.synth_backends < 1:
        sys.exit("--synth-backends wants 1 or more")
    ctx.workloads = set(WORKLOADS if args.workloads == "all"
                        else [w for w in args.workloads.split(",") if w])
    known = set(WORKLOADS) | set(EXTRA_WORKLOADS)
    if ctx.workloads - known:
        sys.exit(f"unknown workload(s) {sorted(ctx.workloads - known)}"
                 f"; known: {','.join(WORKLOADS + EXTRA_WORKLOADS)}")
    ctx.auth_file_schemes = [x for x in args.auth_file_schemes.split(",")
                             if x]
    if not ctx.auth_file_schemes or \
            set(ctx.auth_file_schemes) - set(AUTH_FILE_SCHEMES):
        sys.exit(f"--auth-file-schemes: {','.join(AUTH_FILE_SCHEMES)}")
    ctx.auth_file = {}
    ctx.attack_patterns = [p for p in args.attack_patterns.split(",") if p]
    if set(ctx.attack_patterns) - set(ATTACK_PATTERNS):
        sys.exit(f"--attack-patterns: {','.join(ATTACK_PATTERNS)}")
    ctx.attackers = args.attackers or (32 if args.quick else 64)
    ctx.attack_rate = args.attack_rate
    ctx.attack_base = {}
    ctx.attack_redis = None
    ctx.attack_redis_pid = None
    ctx.hash_s = None
    ctx.reps = args.reps or (1 if args.quick else 3)
    ctx.duration = args.duration or (1.0 if args.quick else 4.0)
    ctx.hs_duration = args.duration or (1.0 if args.quick else 3.0)
    # Long enough for the defences to reach their steady state (a block
    # after 20 failures, delays that double up to 30 s).
    ctx.attack_duration = args.duration or (2.0 if args.quick else 10.0)
    ctx.users = 5000
    ctx.sessions_concurrency = 32
    ctx.throughput_concurrency = 4
    # Handshake connections: pop3client.py 4 processes x 16 threads; loadgen
    # 256 on one ring, so that a proxy whose greeting waits for the client's
    # delayed ACK (nginx: Nagle after its TLS 1.3 tickets, ~40 ms per
    # handshake) is still kept busy: 64 would cap it near 1,300/s.
    ctx.hs_procs, ctx.hs_threads = 4, 16
    ctx.hs_connections = 256
    ctx.hold_concurrency = 16  # logins in flight while a hold fills up
    ctx.hold = 300 if args.quick else 2000
    ctx.hold_tls = 200 if args.quick else 1000
    try:
        ctx.hold_counts = sorted({int(c) for c in args.hold_counts.split(",")
                                  if c.strip()}) if args.hold_counts else (
            HOLD_COUNTS_QUICK if args.quick else HOLD_COUNTS)
    except ValueError:
        sys.exit("--hold-counts wants a comma list of numbers")
    if not ctx.hold_counts or min(ctx.hold_counts) < 1 or \
            max(ctx.hold_counts) > 200000:
        sys.exit("--hold-counts: 1 .. 200000 each")
    ctx.hold_capped = {}
    try:
        ctx.rates = sorted({float(x) for x in args.rates.split(",")
                            if x.strip()}) if args.rates else list(RATES)
        ctx.concurrency_levels = sorted(
            {int(x) for x in args.concurrency_levels.split(",")
             if x.strip()}) if args.concurrency_levels else (
            CONCURRENCY_LEVELS_QUICK if args.quick else CONCURRENCY_LEVELS)
    except ValueError:
        sys.exit("--rates / --concurrency-levels want comma lists of numbers")
    if not ctx.rates or min(ctx.rates) <= 0 or not ctx.concurrency_levels \
            or min(ctx.concurrency_levels) < 1 or \
            max(ctx.concurrency_levels) > 100000:
        sys.exit("--rates: > 0 each; --concurrency-levels: 1 .. 100000 each")
    ctx.rate_concurrency = RATE_CONCURRENCY
    ctx.curve_duration = args.duration or (1.0 if args.quick else 3.0)
    ctx.concurrency_capped = {}
    # pop3-synth needs a user per session in flight.
    curve_users = (max(ctx.concurrency_levels)
                   if "concurrency" in ctx.workloads else 0)
    hold_max = max(ctx.hold_counts) if "hold" in ctx.workloads else 0
    # Connections per pop3-synth port from one proxy (127.0.0.1): half the
    # ephemeral range, a margin for the rendezvous hash's unevenness.
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range")
                 .read().split())
    ctx.hold_per_backend = args.hold_per_backend or max(1000,
                                                        (hi - lo + 1) // 2)
    ctx.big = "8m" if args.quick else "32m"
    ctx.no_tls = args.no_tls
    ctx.quiet_cores = args.quiet_cores
    ctx.max_background = args.max_background
    ctx.retries = args.retries
    ctx.max_quiet_wait = min(3.0, args.max_quiet_wait) if args.quick else args.max_quiet_wait
    ctx.force_pyclient = args.pyclient
    ctx.py = sys.executable
    ctx.runs = []
    ctx.unavailable = {}
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in TARGET_CLASSES:
            sys.exit(f"unknown target {t}")
    if ctx.synth_proxy and set(targets) - {"popgate"}:
        sys.exit("client_identity=proxy-v2 makes pop3-synth expect a PROXY "
                 "header: only --targets popgate can run against it")

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A hold of N sessions: a proxy holds 2N descriptors (client and
    # backend), nginx's worker_connections is half the limit. As root raise
    # the hard limit too (up to fs.nr_open); children inherit it.
    want = 4 * hold_max + 20000
    if want > hard and os.geteuid() == 0:
        nr_open = int(open("/proc/sys/fs/nr_open").read())
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (min(want, nr_open), min(want, nr_open)))
        except (ValueError, OSError) as e:
            log("could not raise RLIMIT_NOFILE:", e)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Children inherit it. The concurrency workload's 10,000 sessions are
    # 20,000+ descriptors in one proxy process: raise the hard limit too
    # where we may (root, up to fs.nr_open), else take what there is.
    want = NOFILE_WANT
    try:
        want = min(want, int(open("/proc/sys/fs/nr_open").read()))
    except (OSError, ValueError):
        pass
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            hard = want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx.nofile = hard
    # A proxy process holds two descriptors per session (client, backend):
    # counts the limit does not allow are clamped to what it does (the
    # report says so) rather than measured as a pile of EMFILE errors.
    # (2,000 spare: nginx counts its auth_http connections and listeners
    # against worker_connections too.)
    ctx.hold_fd_cap = max(100, (hard - 2000) // 2 // 100 * 100)
    ctx.hold_clamped = {c: ctx.hold_fd_cap for c in ctx.hold_counts
                        if c > ctx.hold_fd_cap}
    if ctx.hold_clamped and "hold" in ctx.workloads:
        log(f"RLIMIT_NOFILE hard limit {hard} (raising it needs "
            f"CAP_SYS_RESOURCE): a proxy holding N sessions needs 2N "
            f"descriptors; hold counts "
            f"{','.join(map(str, ctx.hold_clamped))} clamped to "
            f"{ctx.hold_fd_cap}")
    ctx.hold_counts_asked = list(ctx.hold_counts)
    ctx.hold_counts = sorted({min(c, ctx.hold_fd_cap)
                              for c in ctx.hold_counts})
    hold_max = max(ctx.hold_counts) if "hold" in ctx.workloads else 0
    n_hold_ports = (-(-hold_max // ctx.hold_per_backend)
                    if hold_max > ctx.hold_per_backend else 0)

    cpus = sorted(os.sched_getaffinity(0))
    if args.pin == "auto" and len(cpus) >= 2:
        ctx.load_cpus, ctx.proxy_cpus = cpus[:1], cpus[1:]
        pin_note = (f"load generator and pop3-synth pinned to CPU {cpus[0]}, "
                    f"every proxy (all its processes/threads) to CPU(s) "
                    f"{','.join(map(str, cpus[1:]))} with taskset")
    else:
        ctx.load_cpus = ctx.proxy_cpus = None
        pin_note = "no CPU pinning"
    ctx.proxy_workers = len(ctx.proxy_cpus) if ctx.proxy_cpus else len(cpus)

    install(args)
    ctx.bins = build(args)
    for need, pkgcmd in (("nginx", "nginx"), ("haproxy", "haproxy"),
                         ("perdition", "perdition.pop3"),
                         ("dovecot-proxy", "dovecot")):
        if need in targets and not shutil.which(pkgcmd):
            ctx.unavailable[need] = f"{pkgcmd} not installed"
    if "nginx" in targets and not os.path.exists(
            "/usr/lib/nginx/modules/ngx_mail_module.so"):
        ctx.unavailable["nginx"] = "libnginx-mod-mail not installed"

    ctx.procs = Procs()
    # The tree's commit when the run starts (commits may land meanwhile).
    machine = machine_info()
    ctx.tmp = tempfile.mkdtemp(prefix="popgate-compare-")
    started = datetime.datetime.now()
    tag = args.tag or started.strftime("%Y-%m-%d-%H%M")
    try:
        ctx.certs = os.path.join(ctx.tmp, "certs")
        r = sh(["bash", os.path.join(REPO, "scripts", "make-demo-certs.sh"),
                ctx.certs])
        if r.returncode:
            sys.exit(r.stdout.decode())
        os.chmod(ctx.tmp, 0o755)  # dovecot/perdition drop privileges
        synth_args = ["--generated-users", str(max(ctx.users, hold_max,
                                                    curve_users)),
                      "--generated-password", PASSWORD]
        # Synth adds the first --listen itself.
        synth_args += ["--listen", "127.0.0.1:0"] * (args.synth_backends - 1)
        # Ports of their own for a big hold's backend connections.
        synth_args += ["--listen", "127.0.0.1:0"] * n_hold_ports
        if ctx.synth_proxy:
            synth_args.append("--proxy-protocol")
        synth = Synth({}, sizes=["1k", ctx.big], extra_args=synth_args,
                      bin=ctx.bins["pop3-synth"], prefix=taskset(ctx.load_cpus))
        try:
            synth.start()
        except RuntimeError as e:
            sys.exit(f"pop3-synth did not start: {e}")
        ctx.synth_cleanup = synth.cleanup
        ctx.synth_port = synth.port
        ctx.synth_pid = synth.proc.pid
        all_ports = synth_ports(synth, args.synth_backends + n_hold_ports)
        ctx.synth_ports = all_ports[:args.synth_backends]
        ctx.hold_synth_ports = all_ports[args.synth_backends:]
        if ctx.synth_proxy:
            for port in ctx.synth_ports:
                wait_greeting_after_local(port, proc=synth.proc)
            # loadgen's self-test talks to pop3-synth directly, which now
            # wants a PROXY header: every run's own error count stands in.
            ctx.use_loadgen = ("loadgen" in ctx.bins and
                               not ctx.force_pyclient)
        else:
            for port in all_ports:
                wait_greeting(port, proc=synth.proc)
            ctx.use_loadgen = loadgen_ok(ctx)
        log(pin_note)
        log("client:", "bench/loadgen" if ctx.use_loadgen else
            "bench/compare/pop3client.py" +
            (" (--pyclient)" if ctx.force_pyclient else
             " (loadgen unavailable)"))
        if "auth-file" in ctx.workloads and (
                set(targets) & set(AUTH_FILE_TARGETS)):
            make_auth_file(ctx)
        if "attack" in ctx.workloads:
            if not ctx.use_loadgen:
                sys.exit("the attack workload needs bench/loadgen")
            make_attack_passwd(ctx)
            ctx.hash_s = measure_hash(ctx)
            log(f"SHA512-CRYPT verification: "
                f"{ctx.hash_s * 1e6:.0f} µs of CPU" if ctx.hash_s else
                "SHA512-CRYPT verification: not measured")
            if "popgate" in targets and not args.no_redis:
                got, why = start_redis(ctx)
                if got:
                    ctx.attack_redis = got[1]
                    ctx.attack_redis_pid = got[0].pid
                else:
                    ctx.attack_redis_missing = why
                    log("redis variant skipped:", why)
        for name in targets:
            if name in ctx.unavailable:
                log(name, "unavailable:", ctx.unavailable[name])
        for r in range(1, ctx.reps + 1):
            for name in targets:
                if name in ctx.unavailable:
                    continue
                log(f"=== {name} (repetition {r} of {ctx.reps})")
                bench_target(ctx, name, r)
    finally:
        ctx.procs.stop_all()
        if getattr(ctx, "synth_cleanup", None):
            ctx.synth_cleanup()
        if not args.keep_tmp:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
        else:
            log("kept", ctx.tmp)

    result = {
        "tag": tag,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "bench/compare/run " + " ".join(sys.argv[1:]),
        "quick": ctx.quick,
        "machine": machine,
        "packages": pkg_versions(),
        "settings": {
            "pinning": pin_note, "clients": client_note(ctx),
            "proxy_workers": ctx.proxy_workers, "reps": ctx.reps,
            "duration_s": ctx.duration, "handshake_duration_s": ctx.hs_duration,
            "users": ctx.users, "sessions_concurrency": ctx.sessions_concurrency,
            "throughput_concurrency": ctx.throughput_concurrency,
            "big_message": ctx.big, "small_message": "1k",
            "handshake_connections": hs_connections(ctx),
            "hold_plain": max(ctx.hold_counts), "hold_tls": max(ctx.hold_counts),
            "hold_counts": ctx.hold_counts,
            "hold_counts_asked": ctx.hold_counts_asked,
            "hold_fd_cap": ctx.hold_fd_cap,
            "hold_concurrency": HOLD_CURVE_CONCURRENCY,
            "hold_sources": HOLD_SOURCES,
            "hold_repeat_max": HOLD_REPEAT_MAX,
            "hold_per_backend_port": ctx.hold_per_backend,
            "hold_backend_ports": len(ctx.hold_synth_ports),
            "rates": ctx.rates, "rate_concurrency": ctx.rate_concurrency,
            "concurrency_levels": ctx.concurrency_levels,
            "concurrency_caps": ctx.concurrency_capped,
            "curve_duration_s": ctx.curve_duration,
            "curve_reps": CURVE_REPS,
            "hold_caps": {t: {"count": c, "why": w}
                          for t, (c, w) in ctx.hold_capped.items()},
            "nofile": ctx.nofile,
            "tls": TLS_NOTE if ctx.use_loadgen else TLS_NOTE_PY,
            "quiet_cores": ctx.quiet_cores,
            "max_background_cores": ctx.max_background,
            "retries": ctx.retries,
            "max_quiet_wait_s": ctx.max_quiet_wait,
            "popgate_settings": ctx.popgate_settings,
            "popgate_limits_settings": ctx.limits_settings,
            "popgate_tenant_settings": ctx.tenant_settings,
            "synth_backends": args.synth_backends,
            "synth_proxy_protocol": ctx.synth_proxy,
            "workloads": sorted(ctx.workloads),
            **({"auth_file": {
                "targets": AUTH_FILE_TARGETS,
                "schemes": {k: {"hash": v["hash"], "made_by": v["made_by"],
                                "hash_cpu_s": v["hash_cpu_s"],
                                "hash_cpu_s_libargon2":
                                    v.get("hash_cpu_s_libargon2"),
                                "hash_cpu_s_by_target":
                                    v["hash_cpu_s_by_target"]}
                            for k, v in ctx.auth_file.items()},
                "one_hash_for_all_users": True,
                "popgate_auth_threads": (len(ctx.proxy_cpus)
                                         if ctx.proxy_cpus
                                         else ctx.proxy_workers),
                "auth_cache": "off (popgate auth_cache_size = 0; "
                              "Dovecot's auth_cache_size default 0)",
            }} if ctx.auth_file else {}),
            **({"attack": {
                "attackers": ctx.attackers,
                "patterns": ctx.attack_patterns,
                "rate_cap": ctx.attack_rate,
                "duration_s": ctx.attack_duration,
                "good_sources": GOOD_SOURCES,
                "spray_users": SPRAY_USERS[1], "stuff_users": STUFF_USERS[1],
                "scheme": "SHA512-CRYPT (5000 rounds)",
                "hash_cpu_s": ctx.hash_s,
                "nginx_auth_wait_s": NGINX_AUTH_WAIT,
                "redis": ctx.attack_redis,
                "redis_missing": getattr(ctx, "attack_redis_missing", None),
            }} if "attack" in ctx.workloads else {}),
        },
        "targets": targets,
        "unavailable": ctx.unavailable,
        "runs": ctx.runs,
        "medians": alias_hold(medians(ctx.runs)),
    }
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, f"{tag}.json")
    with open(jpath, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
    log("wrote", jpath)
    md = report.write_all(jpath, args.update_md)
    log("wrote", md)
    print(open(md).read())


if __name__ == "__main__":
    main()
