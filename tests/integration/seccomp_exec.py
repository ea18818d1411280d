"""Runs a program under a container seccomp profile's allow-list, the way
a container runtime would apply deploy/seccomp/popgate.json (used by
test_packaging as popgate's argv prefix; it execs, so the PID is the
program's):

    python3 seccomp_exec.py PROFILE.json [--deny NAME]... -- PROGRAM ARGS...

Every system call the profile allows (SCMP_ACT_ALLOW rules, by name) is
allowed; any other fails with EPERM (the profile's defaultErrnoRet), as
under `docker run --security-opt seccomp=PROFILE.json`. Names this
architecture does not have are skipped, as runtimes do. --deny takes a name
out (a negative control). The filter is a classic BPF program installed
with prctl (no libseccomp): numbers from the kernel headers of
linux-libc-dev. Python 3 standard library only."""

import ctypes
import json
import os
import platform
import re
import sys

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_BPF_LD_W_ABS = 0x20
_BPF_JMP_JEQ_K = 0x15
_BPF_RET_K = 0x06
_ARCH = {  # machine: (AUDIT_ARCH_*, header with its syscall numbers)
    "x86_64": (0xC000003E, "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": (0xC00000B7, "/usr/include/asm-generic/unistd.h"),
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def syscall_numbers(header: str) -> dict[str, int]:
    text = open(header).read()
    out = {}
    for name, nr in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text):
        out.setdefault(name, int(nr))
    return out


def allowed_numbers(profile: dict, deny: set[str], numbers: dict[str, int]) -> list[int]:
    names = set()
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            names |= set(rule["names"])
    return sorted({numbers[n] for n in names - deny if n in numbers})


def install(profile: dict, deny: set[str]) -> None:
    arch, header = _ARCH[platform.machine()]
    errno = profile.get("defaultErrnoRet", 1)
    if profile["defaultAction"] != "SCMP_ACT_ERRNO":
        raise SystemExit(f"seccomp_exec: defaultAction {profile['defaultAction']} not handled")
    deny_ret = _SECCOMP_RET_ERRNO | errno
    prog = [_SockFilter(_BPF_LD_W_ABS, 0, 0, 4),          # A = arch
            _SockFilter(_BPF_JMP_JEQ_K, 1, 0, arch),
            _SockFilter(_BPF_RET_K, 0, 0, deny_ret),       # another arch
            _SockFilter(_BPF_LD_W_ABS, 0, 0, 0)]           # A = nr
    for nr in allowed_numbers(profile, deny, syscall_numbers(header)):
        prog += [_SockFilter(_BPF_JMP_JEQ_K, 0, 1, nr),
                 _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW)]
    prog.append(_SockFilter(_BPF_RET_K, 0, 0, deny_ret))
    arr = (_SockFilter * len(prog))(*prog)
    fprog = _SockFprog(len(prog), arr)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def main(argv: list[str]) -> None:
    if "--" not in argv or len(argv) < 3:
        raise SystemExit(__doc__)
    sep = argv.index("--")
    opts, program = argv[1:sep], argv[sep + 1:]
    profile = json.load(open(opts[0]))
    deny = {opts[i + 1] for i, o in enumerate(opts) if o == "--deny"}
    install(profile, deny)
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
