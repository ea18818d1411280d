"""A real Dovecot serving POP3 only, on loopback, in a temp dir: users in a
passwd-file ({PLAIN}), maildirs written with CRLF line ends so that Dovecot
serves exactly the bytes on disk; TlsDovecot adds STLS and a pop3s
listener.  Options (all off by default, so the default config is unchanged)
for the client-identity and master-login tests: a pop3 listener with
``haproxy = yes`` (plus a plain one for direct use), login_trusted_networks,
disable_plaintext_auth, Dovecot's anvil auth penalty, a master passdb; and
reading Dovecot's log (login lines: user, method, rip, lip, session)."""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from typing import Iterable

from .paths import DOVECOT_BIN, LOOPBACK, make_tempdir, require_dovecot
from .pki import CertKey
from .ports import free_port, wait_for_greeting, wait_until
from .processes import _ServerInDir, _read_bytes, _tail, spawn, stop_process


@dataclasses.dataclass
class SeededMessage:
    key: str        # maildir base name (before ':')
    data: bytes


# The PROXY protocol v2 signature and a LOCAL header (no address): what a
# health check sends to a listener with haproxy = yes.
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_V2_LOCAL = PROXY_V2_SIGNATURE + b"\x20\x00\x00\x00"


def proxy_v2_header(src: tuple[str, int], dst: tuple[str, int], tlvs: bytes = b"") -> bytes:
    """A PROXY v2 PROXY command for TCP over IPv4 (src = the client)."""
    body = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0])
            + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big") + tlvs)
    return PROXY_V2_SIGNATURE + b"\x21\x11" + len(body).to_bytes(2, "big") + body


# One "Login:" (or "Disconnected"/"Aborted login") line of pop3-login with
# Dovecot's default login_log_format_elements:
#   pop3-login: Info: Login: user=<u>, method=PLAIN, rip=127.0.0.5,
#   lip=127.0.0.1, mpid=123, session=<...>
_LOG_FIELD_RE = re.compile(r"(\w+)=(<[^>]*>|[^,\s]*)")


@dataclasses.dataclass
class DovecotLogin:
    line: str
    user: str
    method: str
    rip: str
    lip: str
    session: str
    fields: dict[str, str]


def parse_login_line(line: str) -> DovecotLogin | None:
    """A pop3-login "Login: ..." line parsed, or None for other lines."""
    i = line.find("pop3-login: Info: Login: ")
    if i < 0:
        return None
    fields = {k: (v[1:-1] if v.startswith("<") else v)
              for k, v in _LOG_FIELD_RE.findall(line[i:])}
    return DovecotLogin(line, fields.get("user", ""), fields.get("method", ""),
                        fields.get("rip", ""), fields.get("lip", ""),
                        fields.get("session", ""), fields)


class Dovecot(_ServerInDir):
    """A real Dovecot serving POP3 only, on 127.0.0.1:<port>, in a temp dir.

    Users live in a passwd-file ({PLAIN}); mailboxes are maildirs under
    <dir>/mail/<domain>/<local>, owned by an unprivileged uid (``nobody`` when
    run as root, else the current user).  Users can be added while Dovecot runs
    (passwd-file is re-read on change).
    """

    _DEFAULT_TRUSTED = object()  # login_trusted_networks not given

    def __init__(self, process_limit: int = 300, *,
                 login_trusted_networks: str | None = _DEFAULT_TRUSTED,  # type: ignore[assignment]
                 haproxy: bool = False,
                 haproxy_trusted_networks: str = f"{LOOPBACK}/32",
                 disable_plaintext_auth: bool = False,
                 auth_penalty: bool = False,
                 auth_failure_delay: str = "0",
                 master_users: dict[str, str] | None = None,
                 master_separator: str = "*",
                 extra_settings: str = ""):
        """login_trusted_networks: Dovecot's setting (default 127.0.0.1/32;
        None = not set: nobody is trusted, no XCLIENT offered).
        haproxy: the pop3 listener (`port`) requires a PROXY header
        (haproxy = yes) from haproxy_trusted_networks; a second, plain
        listener on `direct_port` serves direct connections (and the start
        check). disable_plaintext_auth: Dovecot's setting (Dovecot counts a
        connection whose two ends have the same address, or a trusted one,
        as secure). auth_penalty: keep anvil's auth penalty (a growing delay
        after failed logins per remote IP; off by default: tests would be
        slow). master_users: a master passdb (passwd-file, master = yes,
        result_success = continue: the user must exist too) with
        auth_master_user_separator = master_separator. extra_settings: more
        top-level lines."""
        require_dovecot()
        self.dir = make_tempdir("dovecot")
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.passwd_path = os.path.join(self.dir, "passwd")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.process_limit = process_limit
        self.login_trusted_networks = (f"{LOOPBACK}/32"
                                       if login_trusted_networks is Dovecot._DEFAULT_TRUSTED
                                       else login_trusted_networks)
        self.haproxy = haproxy
        self.haproxy_trusted_networks = haproxy_trusted_networks
        self.disable_plaintext_auth = disable_plaintext_auth
        self.auth_penalty = auth_penalty
        self.auth_failure_delay = auth_failure_delay
        self.master_users = dict(master_users) if master_users else {}
        self.master_separator = master_separator
        self.extra_settings = extra_settings
        self.master_passwd_path = os.path.join(self.dir, "master-passwd")
        self.direct_port: int | None = None  # with haproxy: the plain listener
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

    @property
    def plain_port(self) -> int:
        """A port that takes a direct connection (no PROXY header)."""
        return self.direct_port if self.haproxy else self.port

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

    def _write_master_passwd(self) -> None:
        tmp = self.master_passwd_path + ".tmp"
        with open(tmp, "w") as f:
            for u, p in self.master_users.items():
                f.write(f"{u}:{{PLAIN}}{p}::::::\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.master_passwd_path)

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
            f"disable_plaintext_auth = {'yes' if self.disable_plaintext_auth else 'no'}",
            "auth_mechanisms = plain login",
            f"auth_failure_delay = {self.auth_failure_delay}",
        ]
        if self.login_trusted_networks:
            # Trusted: no anvil auth penalty, XCLIENT offered and obeyed.
            lines.append(f"login_trusted_networks = {self.login_trusted_networks}")
        if self.haproxy:
            lines.append(f"haproxy_trusted_networks = {self.haproxy_trusted_networks}")
        if self.master_users:
            lines.append(f"auth_master_user_separator = {self.master_separator}")
        lines += [
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
        if self.extra_settings:
            lines += self.extra_settings.rstrip("\n").split("\n")
        if self.master_users:
            # Before the users' passdb: "user*master" and AUTH PLAIN with an
            # authzid look the master up here, then (result_success =
            # continue) the user in the next passdb, without its password.
            lines += [
                "passdb {",
                "  driver = passwd-file",
                "  master = yes",
                "  result_success = continue",
                f"  args = scheme=PLAIN username_format=%u {self.master_passwd_path}",
                "}",
            ]
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
            *(["    haproxy = yes"] if self.haproxy else []),
            "  }",
            *(["  inet_listener pop3-direct {",
               f"    address = {LOOPBACK}",
               f"    port = {self.direct_port}",
               "  }"] if self.haproxy else []),
            "  inet_listener pop3s {",
            "    port = 0",
            "  }",
            "  process_min_avail = 1",
            "}",
            "service pop3 {",
            f"  process_limit = {self.process_limit}",
            "}",
            "service anvil {",
            "  chroot =",
        ]
        if not self.auth_penalty:
            lines += [
                # mode 0 removes the socket: no auth penalty (growing delay
                # after failed logins from 127.0.0.1), which would make tests
                # slow.
                "  unix_listener anvil-auth-penalty {",
                "    mode = 0",
                "  }",
            ]
        lines += [
            "}",
        ]
        if os.geteuid() != 0:
            lines += ["service pop3-login {", "  chroot =", "}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> "Dovecot":
        os.makedirs(os.path.join(self.dir, "mail"), exist_ok=True)
        self._chown_tree(os.path.join(self.dir, "mail"))
        last_err = None
        if self.master_users:
            self._write_master_passwd()
        for _attempt in range(3):  # retry if the chosen port got taken
            self.port = free_port()
            if self.haproxy:
                self.direct_port = free_port()
                while self.direct_port == self.port:
                    self.direct_port = free_port()
            with open(self.conf_path, "w") as f:
                f.write(self._config())
            out = open(os.path.join(self.dir, "dovecot.stdout"), "wb")
            try:
                self.proc = spawn([DOVECOT_BIN, "-F", "-c", self.conf_path],
                                  stdout=out, stderr=subprocess.STDOUT)
            finally:
                out.close()
            try:
                wait_for_greeting(self.plain_port, self.proc, timeout, "dovecot",
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

    def log_mark(self) -> int:
        """The log's length now (bytes): log_since/logins take it, so that a
        test reads only what its own sessions made Dovecot log."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int = 0) -> str:
        return _read_bytes(self.log_path)[mark:].decode("utf-8", "replace")

    def logins(self, mark: int = 0, user: str | None = None) -> list[DovecotLogin]:
        """pop3-login's "Login:" lines after `mark` (for `user` only, if
        given), parsed."""
        out = []
        for line in self.log_since(mark).splitlines():
            rec = parse_login_line(line)
            if rec is not None and (user is None or rec.user == user):
                out.append(rec)
        return out

    def wait_for_login(self, mark: int = 0, user: str | None = None,
                       timeout: float = 5.0) -> DovecotLogin | None:
        """The first login line after `mark` (for `user`), waiting up to
        `timeout` for it: Dovecot writes it a moment after the +OK."""
        recs = wait_until(lambda: self.logins(mark, user), timeout)
        return recs[0] if recs else None

    def wait_for_log(self, pattern: str, mark: int = 0, timeout: float = 5.0) -> re.Match | None:
        """The first match of regex `pattern` in the log after `mark`."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_since(mark)), timeout)

    def error_lines(self, mark: int = 0) -> list[str]:
        """Lines after `mark` that Dovecot logged as Error, Fatal or Panic
        (or Warning: e.g. "haproxy: Client not trusted")."""
        return [l for l in self.log_since(mark).splitlines()
                if re.search(r": (Error|Fatal|Panic|Warning): ", l)]


class TlsDovecot(Dovecot):
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
        p = free_port()
        while p == self.port:
            p = free_port()
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
            raise RuntimeError("Dovecot config changed: TlsDovecot must be updated")
        return text.replace(old_ssl, ssl_block).replace(old_pop3s, new_pop3s)

    @property
    def pop3s_address(self) -> str:
        return f"{LOOPBACK}:{self.pop3s_port}"
