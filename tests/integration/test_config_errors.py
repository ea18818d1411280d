"""`popgate --check-config` on bad files (issue 8, items 4, 8, 11 and the
"[:]:80" fuzz finding): each must exit 1 with one `file:line: reason` line
pointing at the config line that names the bad thing, and never print a
secret (key material, ticket key bytes, passwd-file contents).

  * a backend that is popgate's own listener: the same address, a name
    that resolves to it (localhost), 127.0.0.0/8 or a host interface
    address behind a 0.0.0.0 listener, IPv4 loopback behind a dual-stack
    [::] listener;
  * certificate and key errors (missing file, not PEM, a key that does not
    match, a key file that is garbage), a missing CA file, DNS errors for
    backend names, a short or missing ticket_key_file;
  * a listener address that cannot be resolved ("[:]:80");
  * a CIDR with host bits set (10.0.0.1/8), named with its fix (10.0.0.0/8);
  * a key, a ticket key or a passwd-file given where the config belongs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import unittest

import harness
import tlsharness as th

SECRET = "Zq9-S3cr3t-K3y"  # in every secret-bearing file below


def local_ipv4() -> str | None:
    """A non-loopback IPv4 address of this host, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
        if not m.group(1).startswith("127."):
            return m.group(1)
    return None


class ConfigErrors(harness.IntegrationTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = th.Pki()
        cls.good = cls.pki.self_signed("pop.example.com", ["pop.example.com"])
        cls.other = cls.pki.self_signed("other.example.com", ["other.example.com"])

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def setUp(self):
        self.dir = harness.make_tempdir("cfgerr")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.port = harness.free_port()

    def write(self, name: str, data: str | bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def lines(self, *, listener: str | None = None, backend: str = "127.0.0.1:1",
              listener_extra: list[str] = (), tls: list[str] = ()) -> list[str]:
        listener = listener or f"127.0.0.1:{self.port}"
        return [
            "[server]",                                             # 1
            "workers = 1",                                          # 2
            "",                                                     # 3
            "[[listener]]",                                         # 4
            f'address = "{listener}"',                              # 5
            *listener_extra,
            "",
            "[[tenant]]",
            'name = "t"',
            'domains = ["example.com"]',
            'auth = "backend"',
            f'backends = [ {{ address = "{backend}" }} ]',
            *(["", "[tls]", *tls] if tls else []),
        ]

    def check(self, lines: list[str]) -> tuple[subprocess.CompletedProcess, str, str]:
        path = self.write("popgate.toml", "\n".join(lines) + "\n")
        r = harness.run_popgate("--check-config", path)
        # Every stderr line is one JSON object (docs/logging.md): the
        # "file:line: reason" text is its "error", unescaped.
        errors = []
        for line in r.stderr.splitlines():
            rec = json.loads(line)
            self.assertEqual(list(rec)[:3], ["time", "level", "event"], line)
            self.assertEqual(rec["level"], "error", line)
            self.assertEqual(rec["event"], "config_error", line)
            errors.append(rec["error"])
        return r, path, r.stdout + "\n".join(errors)

    def assertBad(self, lines: list[str], line_no: int, *wants: str) -> str:
        r, path, out = self.check(lines)
        self.assertEqual(r.returncode, 1, f"exit {r.returncode}, output {out!r}")
        self.assertIn(f"{path}:{line_no}: ", out, out)
        for w in wants:
            self.assertIn(w, out)
        self.assertNotIn(SECRET, out)
        return out

    @staticmethod
    def line_of(lines: list[str], prefix: str) -> int:
        return next(i + 1 for i, l in enumerate(lines) if l.startswith(prefix))

    def test_good_config_passes(self):
        r, _, out = self.check(self.lines())
        self.assertEqual(r.returncode, 0, out)

    # --- loops (item 4) ---------------------------------------------------

    def test_backend_is_own_listener(self):
        l = self.lines(backend=f"127.0.0.1:{self.port}")
        self.assertBad(l, self.line_of(l, "backends"), "own listener", "loop")

    def test_backend_name_resolving_to_own_listener(self):
        l = self.lines(backend=f"localhost:{self.port}")
        self.assertBad(l, self.line_of(l, "backends"), "'localhost:", "loop")

    def test_backend_loopback_behind_wildcard_listener(self):
        l = self.lines(listener=f"0.0.0.0:{self.port}", backend=f"127.0.0.2:{self.port}")
        self.assertBad(l, self.line_of(l, "backends"), "loop")

    def test_backend_interface_address_behind_wildcard_listener(self):
        ip = local_ipv4()
        if ip is None:
            self.skipTest("no non-loopback IPv4 address on this host")
        l = self.lines(listener=f"0.0.0.0:{self.port}", backend=f"{ip}:{self.port}")
        self.assertBad(l, self.line_of(l, "backends"), "loop")

    def test_backend_ipv4_loopback_behind_dual_stack_listener(self):
        l = self.lines(listener=f"[::]:{self.port}", backend=f"127.0.0.1:{self.port}")
        self.assertBad(l, self.line_of(l, "backends"), "loop")
        # IPv6-only, the same backend is no loop.
        l = self.lines(listener=f"[::]:{self.port}", backend=f"127.0.0.1:{self.port}",
                       listener_extra=["ipv6_only = true"])
        r, _, out = self.check(l)
        self.assertEqual(r.returncode, 0, out)

    def test_other_port_is_no_loop(self):
        r, _, out = self.check(self.lines(listener=f"0.0.0.0:{self.port}",
                                          backend=f"127.0.0.1:{self.port + 1}"))
        self.assertEqual(r.returncode, 0, out)

    # --- addresses --------------------------------------------------------

    def test_unresolvable_listener_address(self):
        # Passed --check-config before, then failed at start.
        l = self.lines(listener="[:]:80")
        self.assertBad(l, 5, "bad IPv6 address")

    def test_backend_dns_error(self):
        l = self.lines(backend="no-such-host.invalid:110")
        self.assertBad(l, self.line_of(l, "backends"), "cannot resolve", "no-such-host.invalid")

    def test_ipv6_only_on_ipv4_listener(self):
        l = self.lines(listener_extra=["ipv6_only = true"])
        self.assertBad(l, 6, "ipv6_only")

    def test_cidr_with_host_bits(self):
        l = self.lines(tls=['trusted_networks = ["127.0.0.0/8", "10.0.0.1/8"]'])
        self.assertBad(l, self.line_of(l, "trusted_networks"), "host bits", "10.0.0.0/8")

    # --- certificates, keys, CA, ticket keys (item 8) -----------------------

    def tls_lines(self, cert: str, key: str) -> list[str]:
        return self.lines(listener_extra=[
            'tls = "implicit"',
            "certificates = [",
            f'  {{ cert = "{self.good.cert}", key = "{self.good.key}" }},',
            f'  {{ cert = "{cert}", key = "{key}" }},',                # line 9
            "]"])

    def test_good_tls_config_passes(self):
        r, _, out = self.check(self.tls_lines(self.other.cert, self.other.key))
        self.assertEqual(r.returncode, 0, out)

    def test_missing_certificate(self):
        missing = os.path.join(self.dir, "missing.pem")
        self.assertBad(self.tls_lines(missing, self.other.key), 9, missing)

    def test_certificate_not_pem(self):
        bad = self.write("bad.pem", f"not a certificate {SECRET}\n")
        self.assertBad(self.tls_lines(bad, self.other.key), 9, bad)

    def test_key_does_not_match(self):
        out = self.assertBad(self.tls_lines(self.other.cert, self.good.key), 9,
                             self.good.key, "does not match")
        with open(self.good.key) as f:
            body = [l for l in f.read().splitlines() if l and not l.startswith("-----")]
        for l in body:
            self.assertNotIn(l, out)

    def test_key_file_garbage(self):
        bad = self.write("bad.key", "-----BEGIN PRIVATE KEY-----\n"
                         f"{SECRET}{SECRET}\n-----END PRIVATE KEY-----\n")
        self.assertBad(self.tls_lines(self.other.cert, bad), 9, bad)

    def test_tenant_certificate_error(self):
        missing = os.path.join(self.dir, "tenant-missing.pem")
        l = self.tls_lines(self.other.cert, self.other.key)
        i = self.line_of(l, "auth")
        l.insert(i, f'certificates = [ {{ cert = "{missing}", key = "{self.other.key}" }} ]')
        self.assertBad(l, i + 1, missing, "tenant t")

    def test_backend_ca_file_missing(self):
        missing = os.path.join(self.dir, "no-ca.pem")
        l = self.lines() + ["[tenant.backend_tls]", 'mode = "implicit"',
                            f'ca_file = "{missing}"']
        self.assertBad(l, len(l), missing)

    def test_ticket_key_file_too_short(self):
        key = self.write("ticket.key", SECRET)  # < 32 bytes
        l = self.lines(tls=[f'ticket_key_file = "{key}"'])
        self.assertBad(l, self.line_of(l, "ticket_key_file"), key, "32 bytes")

    def test_ticket_key_file_missing(self):
        missing = os.path.join(self.dir, "no-ticket.key")
        l = self.lines(tls=[f'ticket_key_file = "{missing}"'])
        self.assertBad(l, self.line_of(l, "ticket_key_file"), missing)

    # --- secrets given where the config belongs (item 11) ------------------

    def assertNoSecretAsConfig(self, data: str, first: str = SECRET[0]):
        path = self.write("wrong.toml", data)
        r = harness.run_popgate("--check-config", path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(out, re.escape(path) + r":\d+: \S")
        self.assertNotIn(SECRET, out)
        self.assertNotIn(f"'{first}'", out)  # not even its first character

    def test_passwd_file_as_config(self):
        self.assertNoSecretAsConfig(f"alice@example.com:{{PLAIN}}{SECRET}\n")

    def test_key_file_as_config(self):
        with open(self.good.key) as f:
            self.assertNoSecretAsConfig(f.read() + f"{SECRET}\n")

    def test_ticket_key_file_as_config(self):
        self.assertNoSecretAsConfig(f"{SECRET}{SECRET}{SECRET}\n")

    def test_secret_looking_value(self):
        # toml++ names the character it stopped at ("saw 'S'"): a letter or
        # digit of what may be a secret is left out.
        self.assertNoSecretAsConfig(f"[server]\nworkers = 1{SECRET}\n")
        self.assertNoSecretAsConfig(f"x = 0x{SECRET}\n")  # "saw 'Z'"
        self.assertNoSecretAsConfig(f"x = t{SECRET}\n", first="tZ")


if __name__ == "__main__":
    unittest.main()
