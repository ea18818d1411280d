"""Issue 11's packaging, checked from the source tree (the package itself
is built and installed into a clean Debian tree by scripts/package-test.sh,
too slow for ctest):

* the example production config (deploy/popgate.toml) and the Kubernetes
  ConfigMap's config pass `popgate --check-config` with the files they
  name (made by scripts/make-example-files.sh in a temp dir, paths
  rewritten); a missing file is refused with its file:line;
* `cmake --install` (DESTDIR) lays out the binary (which still finds
  BoringSSL through its RUNPATH), both man pages, the unit with this
  prefix's paths, the docs and the examples;
* the man pages cover every key of README.md's configuration reference and
  every flag and signal of `popgate --help`;
* popgate runs under deploy/seccomp/popgate.json's allow-list (a BPF filter
  made from the JSON by seccomp_exec.py, as a container runtime would
  apply it): plain and TLS logins with RETR, a reload, a clean stop; and
  with io_uring_setup taken out of the list it exits 1 naming seccomp."""

import os
import re
import shutil
import subprocess
import sys
import unittest

import harness
import tlsharness as th

REPO = harness.REPO
PROFILE = os.path.join(REPO, "deploy", "seccomp", "popgate.json")
MAKE_FILES = os.path.join(REPO, "scripts", "make-example-files.sh")
SECCOMP_EXEC = os.path.join(harness.HERE, "seccomp_exec.py")
USER, PW = "alice@example.com", "Packaging-Pw-11"


def read(*parts: str) -> str:
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def make_example_files(test: unittest.TestCase) -> str:
    """A temp dir standing in for /etc/popgate, with every file the example
    names."""
    d = harness.make_tempdir("example")
    test.addCleanup(shutil.rmtree, d, True)
    etc = os.path.join(d, "etc", "popgate")
    subprocess.run(["bash", MAKE_FILES, etc], check=True, timeout=60,
                   capture_output=True)
    return etc


def configmap_toml() -> str:
    """The popgate.toml block of deploy/kubernetes/configmap.yaml."""
    lines = read("deploy", "kubernetes", "configmap.yaml").splitlines()
    start = lines.index("  popgate.toml: |") + 1
    out = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        out.append(line[4:])
    return "\n".join(out) + "\n"


class ExampleConfigs(harness.IntegrationTestCase):

    def check(self, text: str, etc: str) -> subprocess.CompletedProcess:
        path = os.path.join(etc, "popgate.toml")
        with open(path, "w") as f:
            f.write(text)
        return harness.run_popgate("--check-config", path)

    def test_example_config_loads_with_its_files(self):
        etc = make_example_files(self)
        text = read("deploy", "popgate.toml")
        self.assertIn('"[::]:110"', text)
        self.assertIn('"[::]:995"', text)
        r = self.check(text.replace("/etc/popgate", etc), etc)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK (2 listeners, 2 tenants)", r.stdout)

    def test_example_config_missing_file_is_refused_with_its_line(self):
        etc = make_example_files(self)
        os.unlink(os.path.join(etc, "tls", "rsa.key"))
        text = read("deploy", "popgate.toml").replace("/etc/popgate", etc)
        r = self.check(text, etc)
        self.assertEqual(r.returncode, 1, r.stdout)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if "tls/rsa.key" in l)
        self.assertRegex(r.stderr, rf"popgate\.toml:{line}: .*rsa\.key: cannot open")

    def test_kubernetes_configmap_config_loads(self):
        etc = make_example_files(self)
        # The Secret's file names (kubernetes.io/tls and popgate-auth).
        shutil.copy(os.path.join(etc, "tls", "ecdsa.pem"), os.path.join(etc, "tls", "tls.crt"))
        shutil.copy(os.path.join(etc, "tls", "ecdsa.key"), os.path.join(etc, "tls", "tls.key"))
        text = configmap_toml().replace("/etc/popgate", etc)
        # Loopback ports instead of 110/995 (the backends' port 110 would
        # otherwise be "popgate's own listener"), cluster DNS names as
        # loopback addresses.
        text = text.replace('"[::]:110"', f'"127.0.0.1:{harness.free_port()}"')
        text = text.replace('"[::]:995"', f'"127.0.0.1:{harness.free_port()}"')
        names = sorted(set(re.findall(r"[a-z0-9.-]+\.svc\.cluster\.local", text)))
        self.assertEqual(len(names), 5, names)
        for i, n in enumerate(names):
            text = text.replace(n, f"127.0.0.{10 + i}")
        r = self.check(text, etc)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK (2 listeners, 2 tenants)", r.stdout)


def cache_value(build: str, key: str) -> str:
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    raise KeyError(key)


class CmakeInstall(harness.IntegrationTestCase):

    def test_install_layout(self):
        binary = harness.popgate_bin()
        build = os.path.dirname(os.path.dirname(binary))
        prefix = cache_value(build, "CMAKE_INSTALL_PREFIX")
        unitdir = cache_value(build, "POPGATE_SYSTEMD_UNITDIR")
        sysconf = "/etc" if prefix == "/usr" else prefix + "/etc"
        dest = harness.make_tempdir("install")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(["cmake", "--install", build], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "DESTDIR": dest})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        root = lambda p: dest + p  # noqa: E731
        sbin = root(prefix + "/sbin/popgate")
        self.assertTrue(os.access(sbin, os.X_OK), sbin)
        v = subprocess.run([sbin, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(v.returncode, 0, v.stderr)  # BoringSSL found after install
        self.assertRegex(v.stdout, r"^popgate \d+\.\d+\.\d+")
        doc = prefix + "/share/doc/popgate"
        for p in [prefix + "/share/man/man8/popgate.8", prefix + "/share/man/man5/popgate.toml.5",
                  doc + "/operations.md", doc + "/README.md", doc + "/examples/popgate.toml",
                  doc + "/examples/seccomp/popgate.json",
                  doc + "/examples/kubernetes/deployment.yaml"]:
            self.assertTrue(os.path.isfile(root(p)), p)
        with open(root(doc + "/examples/popgate.toml")) as f:
            self.assertEqual(f.read(), read("deploy", "popgate.toml"))
        with open(root(unitdir + "/popgate.service")) as f:
            unit = f.read()
        self.assertIn(f"\nExecStart={prefix}/sbin/popgate --config {sysconf}/popgate/popgate.toml\n",
                      unit)
        self.assertIn(f"\nConditionPathExists={sysconf}/popgate/popgate.toml\n", unit)
        self.assertIn("\nExecReload=/bin/kill -HUP $MAINPID\n", unit)
        self.assertRegex(unit, r"\nSystemCallFilter=@system-service io_uring_setup "
                               r"io_uring_enter io_uring_register\n")
        if prefix != "/usr":
            self.assertNotIn("/usr/sbin/popgate", unit)


def readme_reference_keys() -> dict[str, set[str]]:
    """Section title -> the keys of its table, from README.md's
    configuration reference."""
    text = read("README.md")
    ref = text[text.index("## Configuration reference"):]
    ref = ref[:ref.index("### Routing rules")]
    out: dict[str, set[str]] = {}
    section = "?"
    for line in ref.splitlines():
        m = re.match(r"###\s+`?([^`]+)`?", line)
        if m:
            section = m.group(1)
        if line.startswith("Each entry of"):
            section = line
        m = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|", line)
        if m:
            out.setdefault(section, set()).add(m.group(1))
    return out


class ManPages(harness.IntegrationTestCase):

    def test_toml5_describes_every_readme_setting(self):
        man = read("man", "popgate.toml.5")
        keys = readme_reference_keys()
        self.assertGreaterEqual(sum(len(k) for k in keys.values()), 60, keys)
        missing = sorted(f"{s}: {k}" for s, ks in keys.items() for k in ks
                         if not re.search(rf"^\.BR? {re.escape(k)}\b", man, re.M))
        self.assertEqual(missing, [], "popgate.toml.5 lacks these README settings")
        for section in ("[server]", "[[listener]]", "[tls]", "[[tenant]]",
                        "[tenant.health_check]"):
            self.assertIn(f'.SH "{section}"', man)

    def test_popgate8_describes_every_flag_and_signal(self):
        help_text = harness.run_popgate("--help").stdout
        man = read("man", "popgate.8")
        flags = set(re.findall(r"--[a-z][a-z-]+", help_text))
        self.assertGreaterEqual(len(flags), 4, flags)
        for flag in sorted(flags):
            self.assertIn(flag.replace("-", r"\-"), man, flag)
        for sig in sorted(set(re.findall(r"\bSIG[A-Z]+\b", help_text))):
            self.assertIn(sig, man, sig)


class SeccompProfile(harness.IntegrationTestCase):
    """popgate under the container profile's allow-list."""

    def test_popgate_serves_under_the_profile(self):
        pki = th.Pki()
        self.addCleanup(pki.cleanup)
        pki.start()
        cert = pki.leaf("pop.example.com", ["localhost", "127.0.0.1"], "ec")
        synth = self.start_synth({USER: PW}, messages=2, size=20000)
        tenants = [harness.Tenant("example-com", ["example.com"], [synth.address],
                                  users={USER: PW}, health_check={"interval": "1s", "timeout": "500ms"})]
        gate = th.TlsPopgate(
            tenants, [th.Listener("stls", "starttls", [cert]),
                      th.Listener("tls", "implicit", [cert])],
            default_tenant="example-com",
            prefix=[sys.executable, SECCOMP_EXEC, PROFILE, "--"])
        self.addCleanup(gate.cleanup)
        gate.start()
        # Plain (loopback is trusted), then implicit TLS: each a login and
        # a RETR compared with the backend's bytes.
        c = self.raw(gate.ports["stls"])
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        self.assertBytesEqual(c.retr(1), synth.dump(USER, 1), "plain RETR 1")
        c.cmd_ok("QUIT")
        c.close()
        t = th.TlsClient(gate.ports["tls"], "implicit", th.verifying_ctx(pki.ca_file),
                         "127.0.0.1")
        self.addCleanup(t.close)
        self.assertTrue(t.login(USER, PW).startswith(b"+OK"))
        self.assertBytesEqual(t.retr(2), synth.dump(USER, 2), "TLS RETR 2")
        t.cmd_ok("QUIT")
        t.close()
        self.assertEqual(len(gate.wait_for_user_record(USER, n=2, result="ok")), 2,
                         gate.stderr_text()[-2000:])
        self.assertTrue(gate.reload_and_wait().get("event") == "reloaded",
                        gate.stderr_text()[-2000:])
        self.assertEqual(gate.stop(), 0, gate.stderr_text()[-2000:])
        self.assertNotIn("Operation not permitted", gate.stderr_text())
        self.assertNotIn("Bad system call", gate.stderr_text())

    def test_without_io_uring_popgate_says_seccomp(self):
        d = harness.make_tempdir("noring")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "popgate.toml")
        with open(path, "w") as f:
            f.write(f'[[listener]]\naddress = "127.0.0.1:{harness.free_port()}"\n'
                    '[[tenant]]\nname = "t"\ndomains = ["example.com"]\nauth = "backend"\n'
                    f'backends = [ {{ address = "127.0.0.1:{harness.free_port()}" }} ]\n')
        r = subprocess.run([sys.executable, SECCOMP_EXEC, PROFILE, "--deny", "io_uring_setup",
                            "--", harness.popgate_bin(), "--config", path],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("seccomp profile blocks io_uring", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


if __name__ == "__main__":
    unittest.main()
