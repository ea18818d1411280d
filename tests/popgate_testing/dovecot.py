"""A real Dovecot serving POP3 only, on loopback, in a temp dir: users in a
passwd-file ({PLAIN}), maildirs written with CRLF line ends so that Dovecot
serves exactly the bytes on disk; TlsDovecot adds STLS and a pop3s
listener."""

from __future__ import annotations

import dataclasses
import os
import pwd
import signal
import subprocess
import time
from typing import Iterable

from .paths import DOVECOT_BIN, LOOPBACK, make_tempdir, require_dovecot
from .pki import CertKey
from .ports import free_port, wait_for_greeting
from .processes import _ServerInDir, _read_bytes, _tail, spawn, stop_process


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
            "  process_min_avail = 1",
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
