#!/usr/bin/env python3
"""Fails if a folder includes a header from a folder above it.

The folders are the architecture (docs/architecture.md): each one may use
only the folders listed for it here. CMake's link lines say the same for
libraries; this catches the header-only includes a link line cannot see.
"""
import pathlib
import re
import sys

# folder -> folders it may include (besides itself and third-party headers).
ALLOWED = {
    "base": set(),
    "metrics": {"base"},
    "auth": {"base"},
    "routing": {"base"},
    "runtime": {"base"},
    "net": {"base"},
    "admin": {"base", "runtime", "net", "metrics"},
    "pop3": {"base"},
    "tls": {"base", "auth"},
    "config": {"base", "routing", "net"},
    "forward": {"base", "runtime", "pop3", "tls"},
    "store": {"base", "auth", "runtime", "net"},
    "backend": {"base", "routing", "runtime", "net", "pop3", "tls", "config",
                "forward"},
    "session": {"base", "auth", "routing", "runtime", "net", "pop3", "tls",
                "config", "forward", "backend", "store", "metrics"},
    "server": {"base", "auth", "routing", "runtime", "net", "pop3", "tls",
               "config", "forward", "backend", "store", "session", "metrics",
               "admin"},
    "testbed": {"base"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/', re.M)


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    bad = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".h", ".cc"):
                continue
            for top in INCLUDE.findall(path.read_text()):
                if top == folder or top in ("absl", "openssl", "gtest"):
                    continue
                if top not in allowed:
                    bad.append(f"{path.relative_to(root)}: includes {top}/ "
                               f"({folder}/ may use: "
                               f"{', '.join(sorted(allowed)) or 'nothing'})")
    for line in bad:
        print(line)
    if not bad:
        print(f"layering ok: {len(ALLOWED)} folders")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
