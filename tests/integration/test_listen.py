"""Listening sockets (issue 8, items 5 and 8):

  * a second popgate on an address the first one listens on refuses to
    start (exit 1, one line naming the address and `takeover_listeners`)
    instead of sharing it silently through SO_REUSEPORT, and the first one
    keeps serving;
  * with `takeover_listeners = true` it starts, and serves once the first
    one has stopped (a hand-over during an upgrade);
  * a restart on the same address after a stop is not refused;
  * a "[::]:port" listener is dual-stack by default (127.0.0.1 clients are
    served) and IPv6-only with `ipv6_only = true`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

import harness

START_TIMEOUT = harness.scaled(10.0)


def greet(host: str, port: int, timeout: float = 2.0) -> bytes | None:
    """The first line from host:port, or None if nothing answers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(512)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\n", 1)[0] if b"\n" in buf else None
    except OSError:
        return None
    finally:
        s.close()


def have_ipv6() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
            return True
        finally:
            s.close()
    except OSError:
        return False


class Listen(harness.IntegrationTestCase):

    def setUp(self):
        self.dir = harness.make_tempdir("listen")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.n = 0

    def config(self, address: str, *, takeover: bool = False,
               listener_extra: str = "") -> str:
        self.n += 1
        path = os.path.join(self.dir, f"popgate{self.n}.toml")
        with open(path, "w") as f:
            f.write("[server]\nworkers = 2\nshutdown_grace = \"1s\"\nallow_root = true\n"
                    f"takeover_listeners = {'true' if takeover else 'false'}\n"
                    f"\n[[listener]]\naddress = \"{address}\"\n{listener_extra}\n"
                    "[[tenant]]\nname = \"t\"\ndomains = [\"example.com\"]\n"
                    "auth = \"backend\"\nbackends = [ { address = \"127.0.0.1:1\" } ]\n")
        return path

    def spawn(self, config: str) -> tuple[subprocess.Popen, str]:
        err_path = config + ".stderr"
        with open(err_path, "wb") as err:
            proc = harness.spawn([harness.popgate_bin(), "--config", config],
                                 stdout=subprocess.DEVNULL, stderr=err)
        def stop():
            # SIGTERM first so that an ASan build gets to report leaks.
            rc = harness.stop_process(proc, signal.SIGTERM, 10)
            harness.check_sanitizer_output(f"popgate --config {config}",
                                           harness._read_bytes(err_path), rc)
        self.addCleanup(stop)
        return proc, err_path

    def wait_listening(self, proc: subprocess.Popen, err_path: str) -> None:
        def listening():
            if proc.poll() is not None:
                raise AssertionError(f"popgate exited {proc.returncode}: "
                                     + harness._read_bytes(err_path).decode(errors="replace"))
            return b'"event":"listening"' in harness._read_bytes(err_path)
        self.assertTrue(harness.wait_until(listening, START_TIMEOUT), "no listening event")

    def start(self, config: str, host: str, port: int) -> subprocess.Popen:
        proc, err_path = self.spawn(config)
        self.wait_listening(proc, err_path)
        self.assertIsNotNone(harness.wait_until(lambda: greet(host, port), START_TIMEOUT),
                             f"no greeting on {host}:{port}")
        return proc

    def test_second_instance_on_same_address_refuses_to_start(self):
        port = harness.free_port()
        address = f"127.0.0.1:{port}"
        first = self.start(self.config(address), "127.0.0.1", port)
        second, err_path = self.spawn(self.config(address))
        try:
            rc = second.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("the second popgate started on an address in use")
        err = harness._read_bytes(err_path).decode(errors="replace")
        self.assertEqual(rc, 1, err)
        self.assertIn(address, err)
        self.assertIn("takeover_listeners", err)
        self.assertNotIn('"event":"listening"', err)
        # The first one is untouched and still serves every connection.
        self.assertIsNone(first.poll())
        for _ in range(5):
            self.assertIsNotNone(greet("127.0.0.1", port))

    def test_wildcard_instance_refused_beside_a_loopback_one(self):
        # 0.0.0.0:port covers 127.0.0.1:port: sharing it would take part of
        # the first one's traffic just the same.
        port = harness.free_port()
        self.start(self.config(f"127.0.0.1:{port}"), "127.0.0.1", port)
        second, err_path = self.spawn(self.config(f"0.0.0.0:{port}"))
        try:
            rc = second.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("the second popgate started on an address in use")
        self.assertEqual(rc, 1, harness._read_bytes(err_path).decode(errors="replace"))

    def test_takeover_listeners_starts_and_takes_over(self):
        port = harness.free_port()
        address = f"127.0.0.1:{port}"
        first = self.start(self.config(address), "127.0.0.1", port)
        second, err_path = self.spawn(self.config(address, takeover=True))
        self.wait_listening(second, err_path)
        self.assertIsNone(second.poll())
        # The old one goes; the new one serves on the same address.
        self.assertEqual(harness.stop_process(first, signal.SIGTERM, timeout=10), 0)
        self.assertIsNotNone(harness.wait_until(lambda: greet("127.0.0.1", port),
                                                START_TIMEOUT))
        for _ in range(5):
            self.assertIsNotNone(greet("127.0.0.1", port))
        self.assertIsNone(second.poll())

    def test_restart_on_same_address_after_stop(self):
        port = harness.free_port()
        config = self.config(f"127.0.0.1:{port}")
        first = self.start(config, "127.0.0.1", port)
        # A connection of the old instance in TIME_WAIT must not count.
        self.assertIsNotNone(greet("127.0.0.1", port))
        self.assertEqual(harness.stop_process(first, signal.SIGTERM, timeout=10), 0)
        self.start(config, "127.0.0.1", port)

    def test_ipv6_wildcard_is_dual_stack_by_default(self):
        if not have_ipv6():
            self.skipTest("no IPv6 on this host")
        port = harness.free_port()
        self.start(self.config(f"[::]:{port}"), "::1", port)
        g = greet("127.0.0.1", port)
        self.assertIsNotNone(g, "an IPv4 client got no greeting from a [::] listener")
        self.assertTrue(g.startswith(b"+OK"), g)

    def test_ipv6_only_refuses_ipv4_clients(self):
        if not have_ipv6():
            self.skipTest("no IPv6 on this host")
        port = harness.free_port()
        self.start(self.config(f"[::]:{port}", listener_extra="ipv6_only = true"),
                   "::1", port)
        self.assertIsNone(greet("127.0.0.1", port, timeout=1.0))
        self.assertIsNotNone(greet("::1", port))


if __name__ == "__main__":
    unittest.main()
