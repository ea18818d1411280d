"""Process lifecycle: `--check-config` (exit 0, or 1 with `file:line: reason`),
`--version`, SIGHUP reload (passwd-file changes, a new tenant, a broken new
config that must leave the old one in force; sessions survive), and SIGTERM
(stop accepting, let sessions run up to shutdown_grace, exit 0)."""

import os
import re
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import RawClient

PW1, PW2 = "Reload-Old-Pw-1", "Reload-New-Pw-2"
ALICE = "alice@example.com"
NEWBIE = "newbie@example.com"


def run_popgate(*args, timeout=20) -> subprocess.CompletedProcess:
    return subprocess.run([harness.popgate_bin(), *args], capture_output=True, text=True,
                          timeout=timeout)


class CheckConfig(harness.IntegrationTestCase):

    def setUp(self):
        self.dir = harness.make_tempdir("checkcfg")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))
        self.passwd = os.path.join(self.dir, "t.passwd")
        with open(self.passwd, "w") as f:
            f.write(f"{ALICE}:{{PLAIN}}{PW1}\n")

    def good_lines(self) -> list[str]:
        return [
            "[server]",                                   # 1
            "workers = 1",                                # 2
            'auth_failure_delay = "100ms"',               # 3
            "",                                           # 4
            "[[listener]]",                               # 5
            'address = "127.0.0.1:1"',                    # 6
            "",                                           # 7
            "[[tenant]]",                                 # 8
            'name = "t"',                                 # 9
            'domains = ["example.com"]',                  # 10
            'username = "full"',                          # 11
            'auth = "file"',                              # 12
            f'passwd_file = "{self.passwd}"',             # 13
            'backends = [ { address = "127.0.0.1:2", weight = 1 } ]',  # 14
        ]

    def check(self, lines: list[str]) -> tuple[subprocess.CompletedProcess, str]:
        path = os.path.join(self.dir, "c.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return run_popgate("--check-config", path), path

    def assertBad(self, lines, line_no: int | None, what: str):
        r, path = self.check(lines)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, f"{what}: exit {r.returncode}, output {out!r}")
        if line_no is None:
            self.assertRegex(out, re.escape(path) + r":\d+: \S", what)
        else:
            self.assertIn(f"{path}:{line_no}: ", out, f"{what}: output {out!r}")
            reason = out.split(f"{path}:{line_no}: ", 1)[1].strip()
            self.assertTrue(reason, f"{what}: no reason given")

    def test_good_config(self):
        r, _ = self.check(self.good_lines())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_demo_config(self):
        demo = os.path.join(harness.REPO, "deploy", "demo.toml")
        with open(demo) as f:
            text = f.read()
        certs = re.findall(r'"(demo/tls/[^"]+)"', text)
        missing = [c for c in certs if not os.path.exists(os.path.join(harness.REPO, "deploy", c))]
        if missing:
            self.skipTest(f"demo certificates not generated (scripts/demo.sh): {missing[:2]}")
        r = run_popgate("--check-config", demo)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unknown_key(self):
        l = self.good_lines()
        l.insert(2, "bogus_setting = 1")
        self.assertBad(l, 3, "unknown key")

    def test_wrong_type(self):
        l = self.good_lines()
        l[1] = 'workers = "two"'
        self.assertBad(l, 2, "wrong type")

    def test_bad_duration(self):
        l = self.good_lines()
        l[2] = 'auth_failure_delay = "soon"'
        self.assertBad(l, 3, "bad duration")

    def test_toml_syntax_error(self):
        l = self.good_lines()
        l[8] = 'name = "t'  # unterminated string: an error on this very line
        self.assertBad(l, 9, "syntax error")

    def test_bad_listener_address(self):
        l = self.good_lines()
        l[5] = 'address = "127.0.0.1:99999"'
        self.assertBad(l, 6, "port out of range")

    def test_bad_auth_value(self):
        l = self.good_lines()
        l[11] = 'auth = "ldap"'
        self.assertBad(l, 12, "unknown auth provider")

    def test_unknown_key_in_tenant(self):
        l = self.good_lines()
        l.insert(9, 'colour = "blue"')
        self.assertBad(l, 10, "unknown tenant key")

    def test_missing_passwd_file(self):
        l = self.good_lines()
        l[12] = f'passwd_file = "{self.dir}/does-not-exist.passwd"'
        # The operator must learn which config line names the missing file.
        self.assertBad(l, 13, "missing passwd-file")

    def test_no_tenant(self):
        self.assertBad(self.good_lines()[:7], None, "no tenant")

    def test_version(self):
        r = run_popgate("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"\d+\.\d+")


class Reload(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({ALICE: PW1, NEWBIE: PW2}, sizes=[1000, 2000])
        self.tenant = harness.Tenant("example-com", ["example.com"], [self.synth.address],
                                     users={ALICE: PW1})
        self.p = self.start_popgate([self.tenant])

    def login_result(self, user, pw) -> bytes:
        with RawClient(self.p.port) as c:
            r = c.login(user, pw)
            if r.startswith(b"+OK"):
                c.cmd("QUIT")
            return r

    def test_passwd_file_change_without_restart(self):
        pid = self.p.proc.pid
        self.assertTrue(self.login_result(NEWBIE, PW2).startswith(b"-ERR [AUTH]"))
        # A session open across the reload.
        held = self.raw(self.p.port)
        self.assertTrue(held.login(ALICE, PW1).startswith(b"+OK"))
        # New passwd-file: newbie added, alice removed.
        self.tenant.users = {NEWBIE: PW2}
        self.p.write_passwd(self.tenant)
        self.p.reload()
        ok = harness.wait_until(lambda: self.login_result(NEWBIE, PW2).startswith(b"+OK"), 5, 0.1)
        self.assertTrue(ok, "new passwd entry not in force 5s after SIGHUP")
        self.assertTrue(self.login_result(ALICE, PW1).startswith(b"-ERR [AUTH]"),
                        "removed user still accepted after reload")
        self.assertEqual(self.p.proc.pid, pid)
        self.assertTrue(self.p.alive())
        self.assertEqual(held.cmd("STAT"), b"+OK 2 3000\r\n", "session across reload")
        held.cmd_ok("QUIT")

    def test_broken_config_keeps_old(self):
        with open(self.p.config_path, "a") as f:
            f.write("\n[server]\nthis is not toml\n")
        self.p.reload()
        time.sleep(1.0)
        self.assertTrue(self.p.alive(), "popgate exited on a bad reload")
        self.assertTrue(self.login_result(ALICE, PW1).startswith(b"+OK"), "old config not in force")
        # And a later good reload still works.
        self.tenant.users = {ALICE: PW1, NEWBIE: PW2}
        self.p.write_config()
        self.p.reload()
        ok = harness.wait_until(lambda: self.login_result(NEWBIE, PW2).startswith(b"+OK"), 5, 0.1)
        self.assertTrue(ok, "good reload after a bad one not applied")

    def test_reload_with_missing_passwd_file_keeps_old(self):
        os.unlink(self.p.passwd_path(self.tenant))
        self.p.reload()
        time.sleep(1.0)
        self.assertTrue(self.p.alive(), "popgate exited when a reload failed")
        self.assertTrue(self.login_result(ALICE, PW1).startswith(b"+OK"),
                        "a failed reload must leave the old passwd-file contents in force")

    def test_reload_adds_tenant(self):
        other = self.start_synth({"bob@example.org": PW1}, sizes=[500])
        self.assertTrue(self.login_result("bob@example.org", PW1).startswith(b"-ERR [AUTH]"))
        self.p.tenants.append(harness.Tenant("example-org", ["example.org"], [other.address],
                                             users={"bob@example.org": PW1}))
        self.p.write_config()
        self.p.reload()
        ok = harness.wait_until(
            lambda: self.login_result("bob@example.org", PW1).startswith(b"+OK"), 5, 0.1)
        self.assertTrue(ok, "tenant added by reload not in force")
        self.assertTrue(self.login_result(ALICE, PW1).startswith(b"+OK"))

    def test_dovecot_password_change(self):
        d = self.start_dovecot()
        user = "carol@dove.example"
        d.add_user(user, PW1, [harness.make_message(1, 400)])
        t = harness.Tenant("dove", ["dove.example"], [d.address], users={user: PW1})
        self.p.tenants.append(t)
        self.p.write_config()
        self.p.reload()
        self.assertTrue(harness.wait_until(
            lambda: self.login_result(user, PW1).startswith(b"+OK"), 5, 0.1))
        # The password changes everywhere: Dovecot and popgate's passwd-file.
        d.add_user(user, PW2)
        t.users = {user: PW2}
        self.p.write_passwd(t)
        self.p.reload()
        self.assertTrue(harness.wait_until(
            lambda: self.login_result(user, PW2).startswith(b"+OK"), 5, 0.1))
        self.assertTrue(self.login_result(user, PW1).startswith(b"-ERR [AUTH]"))


class Terminate(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({ALICE: PW1}, sizes=[1000])
        self.p = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [self.synth.address],
                            users={ALICE: PW1})],
            server={"shutdown_grace": "2s"})
        self.p.expected_exit = True

    def wait_exit(self, timeout) -> int | None:
        try:
            return self.p.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def test_sigterm_idle_exits_promptly(self):
        t0 = time.monotonic()
        os.kill(self.p.proc.pid, signal.SIGTERM)
        rc = self.wait_exit(3.5)
        self.assertIsNotNone(rc, "popgate still running 3.5s after SIGTERM")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 3.5)

    def test_sigterm_with_active_session(self):
        held = self.raw(self.p.port)
        self.assertTrue(held.login(ALICE, PW1).startswith(b"+OK"))
        prelogin = self.raw(self.p.port)
        t0 = time.monotonic()
        os.kill(self.p.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        # New connections are no longer accepted ...
        self.assertIsNone(harness.read_greeting(self.p.port, timeout=1.0),
                          "still greeting new clients after SIGTERM")
        # ... but the forwarded session keeps working within the grace period.
        self.assertEqual(held.cmd("STAT"), b"+OK 1 1000\r\n")
        rc = self.wait_exit(2.0 + 2.0)
        self.assertIsNotNone(rc, "popgate did not exit within shutdown_grace + 2s")
        self.assertEqual(rc, 0)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 4.5)
        # The sessions were closed when popgate exited.
        for c in (held, prelogin):
            try:
                c.read_until_closed(2)
            except ConnectionResetError:
                pass

    def test_sigterm_session_that_quits_in_grace(self):
        held = self.raw(self.p.port)
        self.assertTrue(held.login(ALICE, PW1).startswith(b"+OK"))
        os.kill(self.p.proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        self.assertBytesEqual(held.retr(1), self.synth.dump(ALICE, 1), "RETR during grace")
        held.cmd_ok("QUIT")
        # With no session left, popgate need not wait for the whole grace.
        rc = self.wait_exit(3.0)
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
