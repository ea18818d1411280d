"""The command line (issue 8, item 18): `popgate --help` prints usage (flags,
signals, where the docs are) and exits 0; `--config=FILE` and
`--check-config=FILE` work like `--config FILE`; wrong usage exits 2 with
the usage in one JSON line on stderr. And main's own error paths never print a secret: a
ticket key file that is too short is named (with the config line that
names it), its contents are not."""

import json
import os
import re
import signal
import subprocess
import unittest

import harness

PW = "Cli-Pw-18"
ALICE = "alice@example.com"
# Looks like a key; must never appear in any output.
SECRET = "TicketSecret-c4f1e2"


class Help(unittest.TestCase):

    def check_usage(self, text: str):
        for want in ("--config", "--check-config", "--version", "--help", "SIGHUP",
                     "SIGTERM", "shutdown_grace", "README.md", "docs/"):
            self.assertIn(want, text)

    def test_help_exits_0_with_usage_on_stdout(self):
        for flag in ("--help", "-h"):
            with self.subTest(flag=flag):
                r = harness.run_popgate(flag)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.check_usage(r.stdout)
                self.assertEqual(r.stderr, "")

    def test_help_anywhere_on_the_line(self):
        r = harness.run_popgate("--config", "/nonexistent.toml", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_usage(r.stdout)

    def test_docs_it_names_exist(self):
        self.assertTrue(os.path.exists(os.path.join(harness.REPO, "README.md")))
        self.assertTrue(os.path.isdir(os.path.join(harness.REPO, "docs")))

    def test_wrong_usage_exits_2_with_usage_on_stderr(self):
        for args in ((), ("--bogus",), ("--config",), ("--config=",), ("--check-config",),
                     ("--configfile", "x"), ("--config", "a.toml", "extra")):
            with self.subTest(args=args):
                r = harness.run_popgate(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                # One JSON line (docs/logging.md), the usage in its error.
                (line,) = r.stderr.splitlines()
                rec = json.loads(line)
                self.assertEqual(list(rec)[:3], ["time", "level", "event"])
                self.assertEqual((rec["level"], rec["event"]), ("error", "usage_error"))
                self.assertIn("usage: popgate --config FILE", rec["error"])
                self.assertEqual(r.stdout, "")


class ConfigFlags(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({ALICE: PW}, sizes=[700])
        # Only to write the config and passwd file; started by hand below.
        self.p = harness.unstarted_popgate(self, [harness.Tenant(
            "example-com", ["example.com"], [self.synth.address], users={ALICE: PW})])

    def test_check_config_equals_form(self):
        for args in (["--check-config", self.p.config_path],
                     [f"--check-config={self.p.config_path}"]):
            with self.subTest(args=args):
                r = harness.run_popgate(*args)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("OK", r.stdout)

    def test_config_equals_form_serves(self):
        err_path = os.path.join(self.p.dir, "eq.stderr")
        with open(err_path, "wb") as err:
            proc = harness.spawn([harness.popgate_bin(), f"--config={self.p.config_path}"],
                                 stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(harness.stop_process, proc)
        harness.wait_for_greeting(self.p.port, proc, 10, "popgate --config=FILE", err_path)
        with harness.RawClient(self.p.port) as c:
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            self.assertEqual(c.cmd("STAT"), b"+OK 1 700\r\n")
            c.cmd_ok("QUIT")
        self.assertEqual(harness.stop_process(proc, signal.SIGTERM), 0)

    def short_key_config(self) -> tuple[str, str]:
        key = os.path.join(self.p.dir, "short.key")
        with open(key, "w") as f:
            f.write(SECRET)  # < 32 bytes: refused
        self.p.extra_toml = f"[tls]\nticket_key_file = {json.dumps(key)}\n"
        self.p.write_config()
        return key, self.p.config_path

    def test_short_ticket_key_file_named_not_quoted(self):
        key, cfg = self.short_key_config()
        # --check-config finds it (before, only the start did) ...
        r = harness.run_popgate("--check-config", cfg)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn(key, out)
        with open(cfg) as f:
            line = next(i for i, l in enumerate(f.read().splitlines(), 1)
                        if l.startswith("ticket_key_file"))
        self.assertRegex(out, re.escape(cfg) + f":{line}: ")
        self.assertNotIn(SECRET, out)
        self.assertNotIn(SECRET[:12], out)
        # ... and the start says the same, without the contents either.
        r = harness.run_popgate("--config", cfg)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertIn(key, out)
        self.assertNotIn(SECRET[:12], out)

    def test_unreadable_ticket_key_file(self):
        missing = os.path.join(self.p.dir, "missing.key")
        self.p.extra_toml = f"[tls]\nticket_key_file = {json.dumps(missing)}\n"
        self.p.write_config()
        r = harness.run_popgate("--check-config", self.p.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rec = json.loads(r.stderr)
        self.assertEqual((rec["level"], rec["event"]), ("error", "config_error"))
        self.assertIn(missing, rec["error"])
        self.assertIn("cannot open", rec["error"])
        # The start says the same in a startup_error line.
        r = harness.run_popgate("--config", self.p.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rec = json.loads(r.stderr)
        self.assertEqual((rec["level"], rec["event"]), ("error", "startup_error"))
        self.assertIn(missing, rec["error"])


if __name__ == "__main__":
    unittest.main()
