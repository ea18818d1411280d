"""Where things are: the repository, the binaries under test, temp dirs.

Binaries come from the environment (``POPGATE_BIN``, ``SYNTH_BIN``,
``DOVECOT_BIN``) or, for a developer running a module by hand, from the
usual build directories.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unittest

LOOPBACK = "127.0.0.1"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(PACKAGE_DIR))

_FALLBACK_BUILD_DIRS = ("/tmp/build-it", os.path.join(REPO, "build"),
                        os.path.join(REPO, "build", "release"))


def _find_bin(env: str, rel: str) -> str:
    path = os.environ.get(env)
    if path:
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{env}={path} is not an executable file")
        return path
    for d in _FALLBACK_BUILD_DIRS:
        cand = os.path.join(d, rel)
        if os.access(cand, os.X_OK):
            return cand
    raise unittest.SkipTest(f"{env} not set and {rel} not found in "
                            f"{', '.join(_FALLBACK_BUILD_DIRS)}")


def popgate_bin() -> str:
    return _find_bin("POPGATE_BIN", "server/popgate")


def synth_bin() -> str:
    return _find_bin("SYNTH_BIN", "testbed/pop3-synth")


DOVECOT_BIN = os.environ.get("DOVECOT_BIN", "/usr/sbin/dovecot")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
CURL = shutil.which("curl") or "/usr/bin/curl"


def require_dovecot() -> None:
    if not os.access(DOVECOT_BIN, os.X_OK):
        raise unittest.SkipTest(f"{DOVECOT_BIN} not installed")


def require_openssl() -> None:
    if not os.access(OPENSSL, os.X_OK):
        raise unittest.SkipTest("openssl CLI not installed")


def timeout_scale() -> float:
    """POPGATE_IT_TIMEOUT_SCALE (default 1): multiplies the harness's own
    waits (start, stop, log records), e.g. 3 for an ASan build, whose
    processes start, stop and log several times slower."""
    try:
        v = float(os.environ.get("POPGATE_IT_TIMEOUT_SCALE", "1"))
    except ValueError:
        return 1.0
    return v if v >= 1.0 else 1.0


def scaled(seconds: float) -> float:
    return seconds * timeout_scale()


def _remove_stale_tempdirs() -> None:
    """Removes temp dirs left by test runners that were killed (SIGKILL from
    a ctest timeout skips every cleanup); their processes died with them
    (PR_SET_PDEATHSIG).  Dirs of live runners are left alone."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        m = re.match(r"popgate-it-(\d+)-", name)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue  # owner alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)


_remove_stale_tempdirs()


def make_tempdir(prefix: str) -> str:
    d = tempfile.mkdtemp(prefix=f"popgate-it-{os.getpid()}-{prefix}-")
    # Dovecot's unprivileged processes must be able to traverse it.
    os.chmod(d, 0o755)
    return d
