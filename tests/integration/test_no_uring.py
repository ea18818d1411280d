"""Where io_uring cannot start (issue 8, item 9), popgate prints ONE line
that names the cause and the fix and exits 1 (before: a worker called
abort()).

The failure is made for real, the ways operators meet it:
  * a seccomp filter (what a container runtime's default profile does)
    that makes io_uring_setup fail with EPERM, or with ENOSYS (a kernel
    without io_uring looks like that); installed in the child only, with
    prctl from Python's ctypes, so nothing else on the host is touched;
  * kernel.io_uring_disabled = 1 with popgate running as an unprivileged
    user. The sysctl is global: the module is serial, the value is set for
    about a second and restored in a finally; 1 still allows io_uring to
    CAP_SYS_ADMIN (every other test runs as root), unlike 2, which this
    test never sets. Skipped where the sysctl is missing or read-only."""

import ctypes
import errno
import os
import platform
import pwd
import shutil
import signal
import subprocess
import unittest

import harness

PW = "NoUring-Pw-9"
ALICE = "alice@example.com"
SYSCTL = "/proc/sys/kernel/io_uring_disabled"

# seccomp / BPF constants (linux/seccomp.h, linux/filter.h, linux/audit.h)
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_BPF_LD_W_ABS = 0x20
_BPF_JMP_JEQ_K = 0x15
_BPF_RET_K = 0x06
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_NR_IO_URING_SETUP = 425  # the same on every architecture (unified table)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_preexec(err: int, nr: int = _NR_IO_URING_SETUP):
    """A preexec_fn: the child's syscall `nr` (io_uring_setup) fails with
    `err`."""
    arch = _AUDIT_ARCH[platform.machine()]
    prog = (_SockFilter * 6)(
        _SockFilter(_BPF_LD_W_ABS, 0, 0, 4),                     # A = arch
        _SockFilter(_BPF_JMP_JEQ_K, 0, 3, arch),                 # other arch: allow
        _SockFilter(_BPF_LD_W_ABS, 0, 0, 0),                     # A = nr
        _SockFilter(_BPF_JMP_JEQ_K, 0, 1, nr),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | err),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    fprog = _SockFprog(len(prog), prog)

    def preexec():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    return preexec


class NoUring(harness.IntegrationTestCase):

    def setUp(self):
        if platform.machine() not in _AUDIT_ARCH:
            self.skipTest(f"no seccomp arch constant for {platform.machine()}")
        self.synth = self.start_synth({ALICE: PW}, sizes=[100])
        # Only to write the config; popgate is run by hand below.
        self.p = harness.Popgate([harness.Tenant("example-com", ["example.com"],
                                                 [self.synth.address], users={ALICE: PW})])
        self.addCleanup(shutil.rmtree, self.p.dir, True)
        self.p.port = harness.free_port()
        self.p.write_config()

    def run_popgate(self, preexec) -> subprocess.CompletedProcess:
        return subprocess.run([harness.popgate_bin(), "--config", self.p.config_path],
                              capture_output=True, text=True, timeout=20,
                              preexec_fn=preexec, stdin=subprocess.DEVNULL)

    def assertOneClearLine(self, r: subprocess.CompletedProcess, *want: str):
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, f"exit {r.returncode} (abort is -6): {out!r}")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"want one line, got {lines!r}")
        self.assertEqual(r.stdout, "")
        line = lines[0]
        self.assertIn("io_uring is not available", line)
        for w in want:
            self.assertIn(w, line)
        # Nothing was started: the port was never opened.
        self.assertIsNone(harness.read_greeting(self.p.port, timeout=0.5))

    def test_seccomp_eperm(self):
        r = self.run_popgate(_seccomp_preexec(errno.EPERM))
        self.assertOneClearLine(r, "Operation not permitted", "seccomp",
                                "io_uring_setup, io_uring_enter and io_uring_register")

    def test_seccomp_enosys(self):
        r = self.run_popgate(_seccomp_preexec(errno.ENOSYS))
        self.assertOneClearLine(r, "Function not implemented", "CONFIG_IO_URING")

    def test_filter_lets_popgate_run_otherwise(self):
        # The same filter with another syscall number proves the filter
        # itself is harmless: popgate starts and serves.
        pre = _seccomp_preexec(errno.EPERM, nr=0x7FFF)  # no such syscall
        err_path = os.path.join(self.p.dir, "filtered.stderr")
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([harness.popgate_bin(), "--config", self.p.config_path],
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    stdin=subprocess.DEVNULL, preexec_fn=pre)
        self.addCleanup(harness.stop_process, proc)
        harness.wait_for_greeting(self.p.port, proc, 10, "popgate under a seccomp filter",
                                  err_path)
        with harness.RawClient(self.p.port) as c:
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")

    def test_sysctl_io_uring_disabled_1_unprivileged(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (to set the sysctl and drop to nobody)")
        if not os.path.exists(SYSCTL):
            self.skipTest(f"{SYSCTL} does not exist (kernel before 6.6)")
        with open(SYSCTL) as f:
            saved = f.read().strip()
        if saved != "0":
            self.skipTest(f"kernel.io_uring_disabled is {saved} already")
        nobody = pwd.getpwnam("nobody")
        for path in (self.p.dir, self.p.config_path, self.p.passwd_path(self.p.tenants[0])):
            os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)

        def preexec():
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        try:
            with open(SYSCTL, "w") as f:
                f.write("1")
        except OSError as e:
            self.skipTest(f"cannot set {SYSCTL}: {e}")
        try:
            r = self.run_popgate(preexec)
        finally:
            with open(SYSCTL, "w") as f:
                f.write(saved)
        with open(SYSCTL) as f:
            self.assertEqual(f.read().strip(), saved, "sysctl not restored")
        self.assertOneClearLine(r, "Operation not permitted", "kernel.io_uring_disabled is 1",
                                "kernel.io_uring_group")


if __name__ == "__main__":
    unittest.main()
