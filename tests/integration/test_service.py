"""Running as a service (issue 11): the privilege drop and sd_notify.

* Started as root with [server] user = "nobody" on a privileged loopback
  port (< 1024): a login through popgate works, and every thread of the
  process (/proc/PID/task/*/status) has uid/gid nobody, only nobody's
  groups, no capability (CapEff/CapPrm/CapAmb 0) and NoNewPrivs 1; a
  passwd-file made unreadable for nobody fails the reload with "readable
  by nobody" and the running config serves on.
* An admin unix socket is chowned to the user (0660): a client running as
  nobody gets 200 from POST /reload, which systemd sees as RELOADING=1
  then READY=1; the socket is removed at the stop.
* group = "daemon" overrides the primary group.
* Root without user (and without allow_root) is refused with the message
  that says what to set; user set while not root is refused too.
* Not root but with an ambient CAP_NET_BIND_SERVICE (util-linux setpriv,
  as systemd's AmbientCapabilities): a privileged port binds, and the
  capability is gone afterwards; without it the bind fails (the control).
* NOTIFY_SOCKET (a path, and an @abstract name): READY=1 once serving,
  RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP, STOPPING=1
  at SIGTERM, read from a unix datagram socket the test binds, as systemd.

Needs root (CI runs as root): skipped otherwise."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

import harness

USER, PW = "svc@example.com", "Service-Pw-11"
NOBODY = 65534
SETPRIV = shutil.which("setpriv")


def free_privileged_port() -> int:
    """A free loopback port below 1024 (the 900s: nothing standard)."""
    for port in range(900, 1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in 900..999")


class PrivilegedPopgate(harness.Popgate):
    """popgate on a port below 1024, its files readable by nobody."""

    def _choose_ports(self) -> None:
        self.port = free_privileged_port()

    def write_config(self) -> None:
        super().write_config()
        for name in os.listdir(self.dir):
            p = os.path.join(self.dir, name)
            if name.endswith((".toml", ".passwd")):
                os.chmod(p, 0o644)


def task_status(pid: int) -> list[dict[str, str]]:
    """Each thread's /proc status as {key: value}."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        fields = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            fields[k] = v.strip()
        out.append(fields)
    return out


class NotifyReceiver:
    """systemd's end of NOTIFY_SOCKET: a unix datagram socket."""

    def __init__(self, test: unittest.TestCase, abstract: bool = False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        if abstract:
            name = f"popgate-it-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            d = harness.make_tempdir("notify")
            test.addCleanup(shutil.rmtree, d, True)
            self.address = os.path.join(d, "notify")
            self.sock.bind(self.address)
            # Like /run/systemd/notify: any user may send (popgate sends
            # after its drop to nobody too).
            os.chmod(self.address, 0o777)
        self.sock.settimeout(harness.scaled(5.0))

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.partition("=")[::2] for line in data.split("\n") if line)

    def until(self, key: str) -> dict[str, str]:
        """Messages until one with `key` (STATUS-only ticks are skipped)."""
        while True:
            m = self.next()
            if key in m:
                return m


@unittest.skipUnless(os.geteuid() == 0, "needs root (CI runs as root)")
class PrivilegeDrop(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({USER: PW}, messages=1, size=300)

    def popgate(self, server: dict, prefix=(), extra_toml: str = "") -> PrivilegedPopgate:
        tenants = [harness.Tenant("t", ["example.com"], [self.synth.address],
                                  users={USER: PW})]
        gate = PrivilegedPopgate(tenants, server=server, prefix=list(prefix),
                                 extra_toml=extra_toml)
        self.addCleanup(gate.cleanup)
        return gate

    def login(self, gate) -> None:
        c = self.raw(gate.port)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"), gate.stderr_text()[-2000:])
        c.cmd_ok("QUIT")
        c.close()

    def assert_unprivileged(self, pid: int, gid: int, groups: str) -> None:
        threads = task_status(pid)
        self.assertGreater(len(threads), 3)  # workers, pools, log, admin...
        for t in threads:
            if t["Name"].startswith("iou-"):
                continue  # io_uring kernel workers: no signals, no own creds
            with self.subTest(thread=t["Name"], pid=t["Pid"]):
                self.assertEqual(t["Uid"].split(), [str(NOBODY)] * 4)
                self.assertEqual(t["Gid"].split(), [str(gid)] * 4)
                self.assertEqual(t["Groups"], groups)
                for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                    self.assertEqual(int(t[cap], 16), 0, cap)
                self.assertEqual(t["NoNewPrivs"], "1")

    def test_root_drops_to_nobody_on_a_privileged_port(self):
        notify = NotifyReceiver(self)
        gate = self.popgate({"user": "nobody"})
        os.environ["NOTIFY_SOCKET"] = notify.address
        try:
            gate.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        self.assertLess(gate.port, 1024)
        self.login(gate)
        self.assert_unprivileged(gate.proc.pid, NOBODY, str(NOBODY))
        # sd_notify still reaches systemd after the drop.
        self.assertEqual(notify.until("READY").get("READY"), "1")
        # A file re-read on reload that nobody cannot read: the error says
        # so, and the running config stays.
        passwd = gate.passwd_path(gate.tenants[0])
        os.chmod(passwd, 0o600)
        mark = len(gate.log_records())
        gate.reload()
        failed = harness.wait_until(
            lambda: [r for r in gate.log_records()[mark:] if r.get("event") == "reload_failed"],
            harness.scaled(5.0))
        self.assertTrue(failed, gate.stderr_text()[-2000:])
        self.assertIn("Permission denied", failed[0]["error"])
        self.assertIn("readable by nobody", failed[0]["error"])
        self.assertNotIn(PW, gate.stderr_text())
        m = notify.until("READY")
        self.assertIn("failed", m.get("STATUS", ""))
        self.login(gate)
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])

    @unittest.skipUnless(SETPRIV, "util-linux setpriv not installed")
    def test_admin_unix_socket_is_the_users_and_post_reload_notifies(self):
        # Like systemd's RuntimeDirectory=popgate: a directory of the user's.
        run = harness.make_tempdir("run")
        self.addCleanup(shutil.rmtree, run, True)
        os.chown(run, NOBODY, NOBODY)
        sock = os.path.join(run, "admin.sock")
        notify = NotifyReceiver(self)
        gate = self.popgate({"user": "nobody"},
                            extra_toml=f'[admin]\nlisten = "unix:{sock}"')
        os.environ["NOTIFY_SOCKET"] = notify.address
        try:
            gate.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        notify.until("READY")
        st = os.stat(sock)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        # The API answers a client running as the user (POST /reload: the
        # SIGHUP path, so systemd sees it too).
        client = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                  "s.sendall(b'POST /reload HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0"
                  "\\r\\n\\r\\n'); print(s.recv(100).split(b'\\r\\n')[0].decode())")
        r = subprocess.run([SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            sys.executable, "-c", client, sock],
                           capture_output=True, text=True, timeout=harness.scaled(20))
        self.assertEqual(r.stdout.strip(), "HTTP/1.1 200 OK", r.stderr)
        self.assertEqual(notify.until("RELOADING")["RELOADING"], "1")
        self.assertIn("1 reloads (0 failed)", notify.until("READY").get("STATUS", ""))
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])
        self.assertFalse(os.path.exists(sock), "the user could not remove its socket")

    def test_group_override(self):
        gate = self.popgate({"user": "nobody", "group": "daemon"})
        gate.start()
        self.login(gate)
        self.assert_unprivileged(gate.proc.pid, 1, "1")
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])

    def run_once(self, gate, prefix=()) -> subprocess.CompletedProcess:
        gate._choose_ports()
        gate.write_config()
        return subprocess.run([*prefix, gate.bin, "--config", gate.config_path],
                              capture_output=True, text=True, timeout=harness.scaled(20))

    def test_root_without_user_is_refused(self):
        gate = self.popgate({"allow_root": False})
        r = self.run_once(gate)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("popgate was started as root and [server] user is not set", r.stderr)
        self.assertIn("allow_root = true", r.stderr)
        self.assertIn(gate.config_path, r.stderr)

    @unittest.skipUnless(SETPRIV, "util-linux setpriv not installed")
    def test_user_while_not_root_is_refused(self):
        gate = self.popgate({"user": "daemon"})
        r = self.run_once(gate, [SETPRIV, "--reuid=nobody", "--regid=nogroup",
                                 "--clear-groups"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("needs popgate started as root to switch to it, but it runs as uid "
                      f"{NOBODY}", r.stderr)

    @unittest.skipUnless(SETPRIV, "util-linux setpriv not installed")
    def test_ambient_net_bind_service_binds_then_is_dropped(self):
        gate = self.popgate({}, prefix=[
            SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"])
        gate.start()
        self.assertLess(gate.port, 1024)
        self.login(gate)
        self.assert_unprivileged(gate.proc.pid, NOBODY, "")
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])
        # The control: without the capability the same start fails.
        r = self.run_once(self.popgate({}), [SETPRIV, "--reuid=nobody", "--regid=nogroup",
                                             "--clear-groups"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("Permission denied", r.stderr)


class Notify(harness.IntegrationTestCase):
    """sd_notify as systemd's Type=notify sees it."""

    def lifecycle(self, abstract: bool) -> None:
        synth = self.start_synth({USER: PW}, messages=1, size=300)
        notify = NotifyReceiver(self, abstract=abstract)
        gate = harness.Popgate([harness.Tenant("t", ["example.com"], [synth.address],
                                               users={USER: PW})])
        self.addCleanup(gate.cleanup)
        os.environ["NOTIFY_SOCKET"] = notify.address
        try:
            gate.start()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        ready = notify.until("READY")
        self.assertEqual(ready["READY"], "1")
        self.assertEqual(ready.get("MAINPID"), str(gate.proc.pid))
        self.assertIn("serving on 1 listeners", ready.get("STATUS", ""))
        before = time.monotonic_ns() // 1000
        gate.reload()
        reloading = notify.until("RELOADING")
        self.assertEqual(reloading["RELOADING"], "1")
        self.assertGreaterEqual(int(reloading["MONOTONIC_USEC"]), before)
        again = notify.until("READY")
        self.assertIn("1 reloads (0 failed)", again.get("STATUS", ""))
        os.kill(gate.proc.pid, signal.SIGTERM)
        self.assertEqual(notify.until("STOPPING")["STOPPING"], "1")
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])

    def test_path_socket(self):
        self.lifecycle(abstract=False)

    def test_abstract_socket(self):
        self.lifecycle(abstract=True)

    def test_bad_notify_socket_is_a_start_error(self):
        gate = harness.Popgate([harness.Tenant("t", ["example.com"], ["127.0.0.1:1"])])
        self.addCleanup(gate.cleanup)
        gate._choose_ports()
        gate.write_config()
        r = subprocess.run([gate.bin, "--config", gate.config_path], capture_output=True,
                           text=True, timeout=harness.scaled(20),
                           env={**os.environ, "NOTIFY_SOCKET": "relative/notify"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("NOTIFY_SOCKET=relative/notify", r.stderr)


if __name__ == "__main__":
    unittest.main()
