#!/usr/bin/env python3
"""Writes deploy/seccomp/popgate.json: the seccomp profile for running
popgate in a container (Docker, Podman, containerd, Kubernetes Localhost).

Container runtimes' default profiles block io_uring (Docker's since 25.0),
and popgate cannot run without it. This profile is an allow-list: systemd's
@system-service set (what deploy/systemd/popgate.service allows, expanded
by `systemd-analyze syscall-filter`), plus io_uring_setup, io_uring_enter
and io_uring_register, plus the few calls a runtime makes between applying
the filter and starting popgate. Everything else fails with EPERM.

Only names that exist on x86-64 or arm64 are kept (from the kernel headers
of linux-libc-dev); a runtime skips names its architecture lacks.
tests/integration/test_packaging.py runs popgate under this list.

  scripts/make-seccomp-profile.py [OUT]   (default deploy/seccomp/popgate.json)
"""
import json
import pathlib
import re
import subprocess
import sys

EXTRA = [
    # popgate's rings (named even where @system-service has them in @aio).
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # The runtime, after the filter is in place and before popgate runs:
    # dropping to the container's user and capabilities, then exec.
    "capget", "capset", "chdir", "fchdir", "execve", "execveat", "prctl",
    "setgroups", "setresgid", "setresuid", "setgid", "setuid", "getcwd",
    "close_range",
]
HEADERS = [
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",  # x86-64
    "/usr/include/asm-generic/unistd.h",              # arm64's table
]


def expand(group, seen):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group,
                          "--no-pager"], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                names |= expand(item, seen)
        else:
            names.add(item)
    return names


def known_names():
    names = set()
    for h in HEADERS:
        text = pathlib.Path(h).read_text()
        names |= set(re.findall(r"#define __NR(?:3264)?_(\w+)\s", text))
    return names


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parent.parent /
                       "deploy/seccomp/popgate.json")
    names = (expand("@system-service", {"@system-service"}) | set(EXTRA))
    names &= known_names()
    version = subprocess.run(["systemctl", "--version"], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    profile = {
        "comment": [
            "popgate's seccomp profile (deploy/seccomp/popgate.json), written",
            "by scripts/make-seccomp-profile.py: systemd " + version +
            "'s @system-service set plus io_uring_setup, io_uring_enter and",
            "io_uring_register (which container runtimes' default profiles",
            "block), the same set deploy/systemd/popgate.service allows.",
            "docker run --security-opt seccomp=popgate.json ...; Kubernetes:",
            "securityContext.seccompProfile type Localhost.",
        ],
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64",
             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64",
             "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"names": sorted(names), "action": "SCMP_ACT_ALLOW"},
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, indent=2) + "\n")
    print(f"{out}: {len(names)} system calls allowed")


if __name__ == "__main__":
    main()
