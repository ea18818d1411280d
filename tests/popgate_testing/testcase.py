"""unittest helpers: a TestCase that registers a cleanup for every process
it starts (and fails on a crash or a sanitizer report)."""

from __future__ import annotations

import unittest

from .client import RawClient
from .dovecot import Dovecot
from .popgate import Popgate
from .processes import _tail
from .synth import Synth


class IntegrationTestCase(unittest.TestCase):
    """TestCase with helpers that register cleanups for every process."""

    maxDiff = 2000

    def start_synth(self, *a, **kw) -> Synth:
        s = Synth(*a, **kw)
        self.addCleanup(s.cleanup)
        return s.start()

    def start_dovecot(self, **kw) -> Dovecot:
        d = Dovecot(**kw)
        self.addCleanup(d.cleanup)
        return d.start()

    def start_popgate(self, *a, **kw) -> Popgate:
        p = Popgate(*a, **kw)
        self.addCleanup(p.cleanup)
        p.start()
        self.addCleanup(self._check_popgate_alive, p)
        return p

    def _check_popgate_alive(self, p: Popgate) -> None:
        # Cleanups run LIFO: this runs before p.cleanup.  A crash is a bug.
        if p.proc is not None and p.proc.poll() is not None and p.proc.returncode not in (0,):
            if not getattr(p, "expected_exit", False):
                self.fail(f"popgate died with {p.proc.returncode}" + _tail(p.stderr_path))

    def raw(self, port: int, **kw) -> RawClient:
        c = RawClient(port, **kw)
        self.addCleanup(c.close)
        return c

    def assertBytesEqual(self, got: bytes, want: bytes, what: str = "") -> None:
        if got == want:
            return
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                 min(len(got), len(want)))
        self.fail(f"{what}: bytes differ: len got={len(got)} want={len(want)}, "
                  f"first difference at offset {i}: got {got[max(0, i - 40):i + 40]!r} "
                  f"want {want[max(0, i - 40):i + 40]!r}")
