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
  with io_uring_setup taken out of the list it exits 1 naming seccomp;
* deploy/systemd/popgate.service has Type=notify, the unprivileged user
  with CAP_NET_BIND_SERVICE and the hardening settings, and passes
  `systemd-analyze verify` (skipped without systemd-analyze)."""

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
                  doc + "/examples/grafana/popgate.json",
                  doc + "/examples/kubernetes/servicemonitor.yaml",
                  doc + "/examples/kubernetes/deployment.yaml",
                  doc + "/logging.md", doc + "/admin-api.md", doc + "/limits.md"]:
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


def unit_settings(text: str) -> dict[str, list[str]]:
    """"Section.Key" -> every value it is given, from a systemd unit."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def seconds(v: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|min)?", v)
    assert m, v
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "min": 60, None: 1}[m.group(2)]


class SystemdUnit(harness.IntegrationTestCase):
    """deploy/systemd/popgate.service: Type=notify and the hardening."""

    UNIT = os.path.join(REPO, "deploy", "systemd", "popgate.service")

    def test_unit_settings(self):
        u = unit_settings(read("deploy", "systemd", "popgate.service"))
        one = lambda k: u.get("Service." + k, [None])[-1]  # noqa: E731
        want = {
            "Type": "notify", "NotifyAccess": "main",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            # systemd starts popgate unprivileged; popgate drops the
            # capability itself once its ports are bound.
            "User": "popgate", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
            "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
            "SystemCallArchitectures": "native", "RuntimeDirectory": "popgate",
        }
        for k, v in want.items():
            self.assertEqual(one(k), v, k)
        families = one("RestrictAddressFamilies").split()
        for f in ("AF_INET", "AF_INET6", "AF_UNIX"):
            self.assertIn(f, families)
        self.assertTrue(int(one("LimitNOFILE")) >= 65536)
        # Longer than the example's shutdown_grace, or systemd SIGKILLs the
        # drain.
        grace = re.search(r'^shutdown_grace = "(\w+)"', read("deploy", "popgate.toml"), re.M)
        self.assertGreater(seconds(one("TimeoutStopSec")), seconds(grace.group(1)))
        calls = one("SystemCallFilter").split()
        self.assertEqual(calls[0], "@system-service")
        for c in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            self.assertIn(c, calls)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed "
                         "(Debian package systemd)")
    def test_systemd_analyze_verify(self):
        d = harness.make_tempdir("unit")
        self.addCleanup(shutil.rmtree, d, True)
        config = os.path.join(d, "popgate.toml")
        with open(config, "w") as f:
            f.write("")
        # The installed paths, pointed at this build (verify checks that
        # the binaries exist).
        text = read("deploy", "systemd", "popgate.service")
        text = text.replace("/usr/sbin/popgate", harness.popgate_bin())
        text = text.replace("/etc/popgate/popgate.toml", config)
        unit = os.path.join(d, "popgate.service")
        with open(unit, "w") as f:
            f.write(text)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           capture_output=True, text=True, timeout=60)
        # verify exits 0 on settings it ignores: any line about the unit
        # (an unknown key, a bad value) fails the test.
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([l for l in (r.stdout + r.stderr).splitlines() if l.strip()], [],
                         "systemd-analyze verify complained")
        # Every system call named in the filter is one this systemd knows
        # (an unknown name would be ignored), and @system-service itself
        # keeps io_uring here (systemd 252: through @aio).
        out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                             text=True, timeout=30).stdout
        groups: dict[str, set[str]] = {}
        group = None
        for line in out.splitlines():
            w = line.strip()
            if line.startswith("@"):
                group = groups.setdefault(w, set())
            elif w and not w.startswith("#") and group is not None:
                group.add(w)

        def expand(g: str, seen: set[str]) -> set[str]:
            names = set()
            for w in groups.get(g, set()) - seen:
                seen.add(w)
                names |= expand(w, seen) if w.startswith("@") else {w}
            return names

        known = set().union(*groups.values())
        calls = unit_settings(text)["Service.SystemCallFilter"][-1].split()
        for c in calls:
            self.assertIn(c, known if not c.startswith("@") else groups, c)
        service = expand("@system-service", set())
        for c in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            self.assertIn(c, service)


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
            f.write('[server]\nallow_root = true\n'
                    f'[[listener]]\naddress = "127.0.0.1:{harness.free_port()}"\n'
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
