"""The harness notices sanitizer reports (issue 8 section 3: "a sanitizer
report fails CI"): the scanner finds ASan/LSan/UBSan reports and ignores
popgate's JSON log lines (which carry client bytes); and, in the ASan
integration run, a popgate that leaks makes its cleanup fail.  The leak is
real: a small preloaded library, built here with the C compiler, leaks one
block in popgate's process, and LeakSanitizer reports it at exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import unittest

import harness

LEAK_C = r"""
#include <stdlib.h>
#include <string.h>
static void *volatile keep;
__attribute__((constructor)) static void leak(void) {
  void *p = malloc(4321);
  memset(p, 1, 4321);
  keep = p;
  keep = 0; /* lost: LeakSanitizer reports it at exit */
}
"""


class Scanner(unittest.TestCase):

    def test_reports_found(self):
        for text in (b"==12==ERROR: AddressSanitizer: heap-use-after-free on address",
                     b"==12==ERROR: LeakSanitizer: detected memory leaks",
                     b"session/session.cc:10:5: runtime error: signed integer overflow"):
            data = b'{"event":"listening"}\n' + text + b"\n    #0 0x1 in f\n"
            self.assertIsNotNone(harness.sanitizer_report(data), text)

    def test_log_lines_are_not_reports(self):
        data = (b'{"event":"session","user":"x.cc:1:1: runtime error: ERROR: '
                b'AddressSanitizer LeakSanitizer","result":"auth_failed"}\n'
                b"popgate: listening on 127.0.0.1:110\n")
        self.assertIsNone(harness.sanitizer_report(data))

    def test_sanitizer_exit_status(self):
        old = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=86"
        try:
            self.assertTrue(harness.sanitizer_exit(86))
            self.assertFalse(harness.sanitizer_exit(1))
        finally:
            if old is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = old


@unittest.skipUnless(harness.SANITIZER_EXIT_CODE and
                     f"exitcode={harness.SANITIZER_EXIT_CODE}" in
                     os.environ.get("ASAN_OPTIONS", ""),
                     "only in the ASan integration run (ctest -L asan-integration)")
class LeakingPopgate(unittest.TestCase):

    def test_cleanup_fails_on_a_leak_report(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler")
        d = harness.make_tempdir("leak")
        self.addCleanup(shutil.rmtree, d, True)
        src, lib = os.path.join(d, "leak.c"), os.path.join(d, "leak.so")
        with open(src, "w") as f:
            f.write(LEAK_C)
        subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src], check=True, timeout=60)
        synth = harness.Synth({"alice@example.com": "pw"}, messages=1, size=500)
        self.addCleanup(synth.cleanup)
        synth.start()
        p = harness.Popgate([harness.Tenant("t", ["example.com"], [synth.address],
                                            users={"alice@example.com": "pw"})])
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "ASAN_OPTIONS")}
        # Only popgate gets the library (spawn inherits the environment).
        os.environ["LD_PRELOAD"] = lib
        os.environ["ASAN_OPTIONS"] = saved["ASAN_OPTIONS"] + ":verify_asan_link_order=0"
        try:
            p.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        with harness.RawClient(p.port) as c:
            self.assertTrue(c.login("alice@example.com", "pw").startswith(b"+OK"))
            c.cmd_ok("QUIT")
        with self.assertRaises(AssertionError) as cm:
            p.cleanup()
        self.assertIn("LeakSanitizer", str(cm.exception))
        self.assertIn("4321 byte", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
