"""Zero-downtime upgrade and socket activation (issue 11):

  * hand-over: popgate A serves pop3-synth under a loadgen run and one long
    RETR of a 40 MB message read slowly; popgate B started with the same
    config (`[server] handover_socket`) takes A's listening sockets over
    the unix socket; A logs "handover", stops accepting, lets its sessions
    finish and exits 0. loadgen sees no error at all (no refused or reset
    connection), the RETR's bytes are exact, B serves new logins;
  * refused or failed hand-overs leave A serving: a peer that connects and
    stalls is dropped after a few seconds, a peer of another uid is refused
    (SO_PEERCRED), and with nobody serving the hand-over socket (none, or a
    stale file) popgate opens its own sockets;
  * socket activation: popgate started with a listening socket as fd 3,
    LISTEN_PID and LISTEN_FDS (as systemd passes them) serves on it, and
    at SIGTERM leaves it listening (systemd keeps it for the next start).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from popgate_testing import processes

PW = "Upgrade-Pw-11"
BIG = "big@example.com"
ALICE = "alice@example.com"
LOADGEN_USERS = 6  # user0..5@example.com, password "password"
BIG_SIZE = 40 << 20
START_TIMEOUT = harness.scaled(10.0)


def users() -> dict[str, str]:
    u = {BIG: PW, ALICE: PW}
    u.update({f"user{i}@example.com": "password" for i in range(LOADGEN_USERS)})
    return u


def records(path: str) -> list[dict]:
    out = []
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return out
    for line in data.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()[-2000:]


def events(path: str, name: str) -> list[dict]:
    return [r for r in records(path) if r.get("event") == name]


def login_ok(port: int, user: str = ALICE, password: str = PW) -> bool:
    try:
        with harness.RawClient(port, timeout=3.0) as c:
            ok = c.login(user, password).startswith(b"+OK")
            c.cmd("QUIT")
            return ok
    except (OSError, AssertionError):
        return False


class SlowRetr(threading.Thread):
    """RETR 1 of BIG read at ~`rate` bytes/s: the wire bytes after the +OK
    line, up to and with the terminating ".\\r\\n"."""

    def __init__(self, port: int, rate: float):
        super().__init__(daemon=True)
        self.c = harness.RawClient(port, timeout=10.0)
        assert self.c.login(BIG, PW).startswith(b"+OK")
        # A small receive buffer so the session really spans the upgrade
        # (the kernel would otherwise take a good part of it at once).
        self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.rate = rate
        self.status = b""
        self.body = b""
        self.error: str | None = None
        self.started = time.monotonic()
        self.ended: float | None = None

    def run(self):
        try:
            self.c.send(b"RETR 1\r\n")
            self.status = self.c.readline()
            data = bytearray(self.c.buf)
            self.c.buf = bytearray()
            t0 = time.monotonic()
            while not data.endswith(b"\r\n.\r\n"):
                chunk = self.c.sock.recv(65536)
                if not chunk:
                    raise AssertionError(f"closed after {len(data)} bytes")
                data += chunk
                ahead = len(data) / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            self.body = bytes(data)
            self.c.cmd_ok("QUIT")
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.error = repr(e)
        finally:
            self.ended = time.monotonic()
            self.c.close()


class Handover(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth(users(), sizes=[BIG_SIZE, 3000])
        self.dir = harness.make_tempdir("handover")
        self.addCleanup(harness.shutil.rmtree, self.dir, True)
        self.sock_path = os.path.join(self.dir, "handover.sock")
        self.tenant = harness.Tenant("example-com", ["example.com"], [self.synth.address],
                                     users=users())
        self.a = self.start_popgate([self.tenant], server={
            "handover_socket": self.sock_path, "shutdown_grace": "15s"})
        self.a.expected_exit = True
        self.assertTrue(harness.wait_until(lambda: os.path.exists(self.sock_path), 3.0),
                        "A made no hand-over socket" + self.a.stderr_text()[-1500:])
        self.assertEqual(os.stat(self.sock_path).st_mode & 0o777, 0o600)

    def start_b(self) -> tuple[subprocess.Popen, str]:
        """popgate B with A's very config file."""
        err_path = os.path.join(self.dir, "b.stderr")
        with open(err_path, "ab") as err:
            b = harness.spawn([harness.popgate_bin(), "--config", self.a.config_path],
                              stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(harness.stop_process, b, signal.SIGTERM, 10)
        return b, err_path

    def test_handover_under_load(self):
        lg = harness.loadgen_bin()
        if lg is None:
            self.skipTest("bench/loadgen is not built")
        wire = subprocess.run([self.synth.bin, *self.synth.msg_args, "--dump-wire", BIG, "1"],
                              capture_output=True, check=True, timeout=60).stdout
        # ~4 s for 40 MB: it starts before the upgrade and ends well after.
        retr = SlowRetr(self.a.port, rate=BIG_SIZE / 4.0)
        retr.start()
        load = subprocess.Popen(
            [lg, "--target", self.a.address, "--mode", "sessions", "--concurrency", "3",
             "--duration", "4", "--users", str(LOADGEN_USERS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(harness.stop_process, load, signal.SIGINT, 10)
        time.sleep(1.0)
        t_b = time.monotonic()
        b, b_err = self.start_b()
        took = harness.wait_until(lambda: events(b_err, "took_over"), START_TIMEOUT)
        self.assertTrue(took, "B did not take over" + read(b_err)
                        + self.a.stderr_text()[-2000:])
        self.assertEqual(took[0]["old_pid"], self.a.proc.pid)
        handover = self.a.wait_for_record(timeout=3.0, event="handover")
        self.assertIsNotNone(handover, self.a.stderr_text()[-2000:])
        self.assertEqual(handover["new_pid"], b.pid)
        handover_ms = (time.monotonic() - t_b) * 1000
        listening = events(b_err, "listening")[0]
        self.assertEqual(listening["sockets_from"], "handover")
        # A has stopped accepting: a new login is B's.
        self.assertTrue(login_ok(self.a.port), "no login after the hand-over")
        self.assertTrue(harness.wait_until(
            lambda: [r for r in records(b_err) if r.get("user") == ALICE], 3.0),
            "the login after the hand-over was not B's")

        out, err = load.communicate(timeout=30)
        report = json.loads(out)
        self.assertEqual(report["errors_total"], 0, json.dumps(report["errors"]) + err[-1500:])
        self.assertGreater(report["sessions"], 50)
        retr.join(timeout=30)
        self.assertIsNone(retr.error, retr.error)
        self.assertTrue(retr.status.startswith(b"+OK"), retr.status)
        self.assertBytesEqual(retr.body, wire, "the long RETR across the upgrade")
        self.assertGreater(retr.ended, t_b + 1.0, "the RETR ended before the upgrade")
        # A drained: it ends once the RETR is done, exit 0, well within grace.
        rc = self.a.proc.wait(timeout=harness.scaled(15))
        self.assertEqual(rc, 0, self.a.stderr_text()[-2000:])
        a_sessions = [r for r in self.a.log_records() if r.get("event") == "session"
                      and str(r.get("user", "")).startswith("user")]
        b_sessions = [r for r in records(b_err) if r.get("event") == "session"
                      and str(r.get("user", "")).startswith("user")]
        self.assertGreater(len(b_sessions), 0, "loadgen never reached B")
        print(f"\nhand-over: B started -> A's handover line {handover_ms:.0f} ms; "
              f"loadgen {report['sessions']} sessions, 0 errors "
              f"(A {len(a_sessions)}, B {len(b_sessions)}); 40 MB RETR exact, "
              f"{retr.ended - retr.started:.1f} s", flush=True)
        self.assertTrue(login_ok(self.a.port), "B stopped serving")
        self.assertTrue(b.poll() is None)

    def test_stalled_peer_dropped_then_handover_works(self):
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(peer.close)
        peer.connect(self.sock_path)
        t0 = time.monotonic()
        peer.settimeout(8)
        self.assertEqual(peer.recv(256), b"", "A answered a peer that said nothing")
        waited = time.monotonic() - t0
        self.assertGreater(waited, 2.0)
        self.assertLess(waited, 5.0)
        self.assertIsNotNone(self.a.wait_for_record(timeout=2.0, event="handover_failed"))
        self.assertTrue(login_ok(self.a.port), "A stopped serving after a failed hand-over")
        # A peer that speaks another protocol: dropped at once.
        other = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(other.close)
        other.connect(self.sock_path)
        other.send(b"GET / HTTP/1.0")
        other.settimeout(3)
        self.assertEqual(other.recv(256), b"")
        # The socket still serves a real hand-over.
        b, b_err = self.start_b()
        self.assertTrue(harness.wait_until(lambda: events(b_err, "took_over"), START_TIMEOUT),
                        read(b_err))
        self.assertEqual(self.a.proc.wait(timeout=harness.scaled(10)), 0)
        self.assertTrue(login_ok(self.a.port))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to connect as another uid")
    def test_other_uid_refused(self):
        code = ("import os, socket, sys\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                "s.connect(sys.argv[1])\n"
                "s.settimeout(5)\n"
                "try:\n"
                "    s.send(b'popgate-handover 1 hello')\n"
                "    sys.stdout.write(repr(s.recv(256)))\n"
                "except ConnectionResetError:\n"  # closed with our hello unread
                "    sys.stdout.write('reset')\n"
                # Closed (SO_PEERCRED is checked at accept) before the hello
                # went out: refused all the same.
                "except BrokenPipeError:\n"
                "    sys.stdout.write('closed')\n")
        # The socket is 0600: chmod the path so the kernel lets uid 65534
        # connect at all, and the SO_PEERCRED check is what refuses it.
        os.chmod(self.sock_path, 0o666)
        os.chmod(self.dir, 0o755)
        r = subprocess.run(["python3", "-c", code, self.sock_path], capture_output=True,
                           text=True, timeout=10)
        self.assertIn(r.stdout, ("b''", "reset", "closed"), r.stderr)
        refused = self.a.wait_for_record(timeout=2.0, event="handover_refused")
        self.assertIsNotNone(refused)
        self.assertEqual(refused["peer_uid"], 65534)
        self.assertTrue(login_ok(self.a.port))


class AdminApiAcrossHandover(harness.IntegrationTestCase):
    """The admin API moves to the new process too: a TCP address once the
    old process lets it go (it drains without it), a unix socket by
    replacing the file (which the old one must not remove as it exits)."""

    def check(self, listen: str, target):
        synth = self.start_synth(users())
        a = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [synth.address], users=users())],
            server={"handover_socket": os.path.join(self.dir, "h.sock")},
            extra_toml=f'[admin]\nlisten = "{listen}"')
        a.expected_exit = True
        self.assertTrue(harness.wait_until(lambda: healthz(target) == 200, 3.0))
        held = self.raw(a.port)  # a session A drains after the hand-over
        self.assertTrue(held.login(ALICE, PW).startswith(b"+OK"))
        b_err = os.path.join(self.dir, "b.stderr")
        with open(b_err, "ab") as err:
            b = harness.spawn([harness.popgate_bin(), "--config", a.config_path],
                              stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(harness.stop_process, b, signal.SIGTERM, 10)
        self.assertTrue(harness.wait_until(lambda: events(b_err, "admin_listening"),
                                           START_TIMEOUT), read(b_err))
        self.assertTrue(events(b_err, "took_over"), read(b_err))
        self.assertIsNotNone(a.wait_for_record(timeout=2.0, event="handover"))
        self.assertTrue(a.alive(), "A stopped before its session ended")
        self.assertEqual(healthz(target), 200)
        # fd_limit speaks of the machine's descriptor limit, not of the
        # hand-over (a 20,000 hard limit here warns at every start).
        self.assertFalse([r for r in records(b_err) if r.get("level") == "warning"
                          and r.get("event") != "fd_limit"], read(b_err))
        held.cmd_ok("QUIT")
        held.close()
        self.assertEqual(a.proc.wait(timeout=harness.scaled(10)), 0)
        self.assertEqual(healthz(target), 200, "A's exit took B's admin API away")

    def setUp(self):
        self.dir = harness.make_tempdir("handover")
        self.addCleanup(harness.shutil.rmtree, self.dir, True)

    def test_tcp_admin_listener(self):
        port = harness.free_port()
        self.check(f"{harness.LOOPBACK}:{port}", port)

    def test_unix_admin_socket(self):
        path = os.path.join(self.dir, "admin.sock")
        self.check(f"unix:{path}", path)


def healthz(target) -> int | None:
    """The status of GET /healthz at a TCP port or a unix socket path."""
    try:
        if isinstance(target, int):
            s = socket.create_connection((harness.LOOPBACK, target), timeout=2)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(target)
        with s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            head = s.recv(64)
        return int(head.split()[1])
    except (OSError, ValueError, IndexError):
        return None


class NobodyToTakeOver(harness.IntegrationTestCase):

    def test_stale_socket_file_then_own_sockets(self):
        synth = self.start_synth(users())
        d = harness.make_tempdir("handover")
        self.addCleanup(harness.shutil.rmtree, d, True)
        path = os.path.join(d, "handover.sock")
        # A socket file left by a process that died: nobody listens on it.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(path)
        s.close()
        p = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [synth.address], users=users())],
            server={"handover_socket": path})
        listening = p.wait_for_record(event="listening")
        self.assertEqual(listening["sockets_from"], "opened")
        self.assertTrue(login_ok(p.port))
        # Its own socket replaced the stale one.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(c.close)
        c.connect(path)


class SocketActivation(harness.IntegrationTestCase):

    def activated(self, server: dict | None = None, p=None, ls=None, name="sa"):
        """popgate started as systemd would: a socket bound by the test as
        fd 3, LISTEN_FDS=1, LISTEN_PID = popgate's pid (the shell's, which
        execs it). Returns (process, its Popgate config, the test's socket,
        stderr path). `p` and `ls`: the config and socket of an earlier one
        (as systemd passes the same socket to each start)."""
        if p is None:
            synth = self.start_synth(users())
            p = harness.unstarted_popgate(
                self, [harness.Tenant("example-com", ["example.com"], [synth.address],
                                      users=users())], server=server)
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(ls.close)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((harness.LOOPBACK, p.port))
            ls.listen(64)
        # Above 3, so bash's "3<&N" moves it (N = 3 would be closed).
        high = fcntl.fcntl(ls.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
        self.addCleanup(os.close, high)
        wrapper = ('LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=popgate.socket '
                   f'exec "$@" 3<&{high} {high}<&-')
        err_path = os.path.join(p.dir, f"{name}.stderr")
        with open(err_path, "ab") as err:
            proc = subprocess.Popen(
                ["bash", "-c", wrapper, "bash", harness.popgate_bin(), "--config", p.config_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(high,), preexec_fn=processes._child_setup)
        self.addCleanup(harness.stop_process, proc, signal.SIGKILL, 5)
        listening = harness.wait_until(lambda: events(err_path, "listening"), START_TIMEOUT)
        self.assertTrue(listening, read(err_path))
        self.assertEqual(listening[0]["sockets_from"], "systemd")
        self.assertTrue(login_ok(p.port), read(err_path))
        return proc, p, ls, err_path

    def assert_still_listening(self, ls: socket.socket, port: int):
        """popgate stopped accepting but left the socket listening (systemd
        keeps it; connections wait in its queue for the next start)."""
        c = socket.create_connection((harness.LOOPBACK, port), timeout=2)
        self.addCleanup(c.close)
        ls.settimeout(2)
        conn, _ = ls.accept()
        conn.close()

    def test_listen_fds(self):
        proc, p, ls, _ = self.activated()
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=harness.scaled(10)), 0)
        self.assert_still_listening(ls, p.port)

    def take_over_beside(self, p, d: str):
        """Starts B with `p`'s config beside the unit; returns (B, its stderr
        path) once B says it took the sockets over."""
        b_err = os.path.join(d, "b.stderr")
        with open(b_err, "ab") as err:
            b = harness.spawn([harness.popgate_bin(), "--config", p.config_path],
                              stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(harness.stop_process, b, signal.SIGKILL, 5)
        self.assertTrue(harness.wait_until(lambda: events(b_err, "took_over"), START_TIMEOUT),
                        read(b_err))
        return b, b_err

    def test_handover_of_activated_sockets(self):
        d = harness.make_tempdir("handover")
        self.addCleanup(harness.shutil.rmtree, d, True)
        proc, p, ls, _ = self.activated({"handover_socket": os.path.join(d, "h.sock")})
        # B, beside the unit, takes systemd's socket over from A.
        b, b_err = self.take_over_beside(p, d)
        self.assertEqual(proc.wait(timeout=harness.scaled(10)), 0)
        self.assertTrue(login_ok(p.port))
        # The unit starts again (systemd passes the same socket): the new
        # process uses systemd's fd and still tells B to stop.
        a2, _, _, a2_err = self.activated(p=p, ls=ls, name="a2")
        listening = events(a2_err, "listening")[0]
        self.assertEqual(listening.get("old_pid"), b.pid, read(a2_err) + read(b_err))
        self.assertEqual(b.wait(timeout=harness.scaled(10)), 0)
        self.assertTrue(harness.wait_until(lambda: events(b_err, "handover"), 2.0))
        self.assertTrue(login_ok(p.port))
        os.kill(a2.pid, signal.SIGTERM)
        self.assertEqual(a2.wait(timeout=harness.scaled(10)), 0)
        self.assert_still_listening(ls, p.port)

    def test_handover_keeps_systemd_socket(self):
        d = harness.make_tempdir("handover")
        self.addCleanup(harness.shutil.rmtree, d, True)
        proc, p, ls, _ = self.activated({"handover_socket": os.path.join(d, "h.sock")})
        b, b_err = self.take_over_beside(p, d)
        self.assertEqual(proc.wait(timeout=harness.scaled(10)), 0)
        # B knows the socket is systemd's: its stop leaves it listening.
        os.kill(b.pid, signal.SIGTERM)
        self.assertEqual(b.wait(timeout=harness.scaled(10)), 0)
        self.assert_still_listening(ls, p.port)

if __name__ == "__main__":
    unittest.main()
