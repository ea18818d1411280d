"""Integration-test harness for popgate: the names the test modules use
(``import harness``), re-exported from the shared package
tests/popgate_testing (one module per job; bench/compare uses it too).
New code may import either; see popgate_testing/__init__.py for which
module does what.

Starts real processes on loopback only (127.0.0.1) and cleans every one of
them up, even when a test fails or the runner dies:

  * pop3-synth   -- the synthetic backend from testbed/ (``SYNTH_BIN``)
  * Dovecot      -- a real dovecot-pop3d with its own config, passwd-file and
                    maildirs in a temporary directory
  * popgate      -- the proxy (``POPGATE_BIN``) with a generated TOML config

Processes are stopped by PID only (SIGTERM, then SIGKILL after a bound); the
children get PR_SET_PDEATHSIG=SIGKILL so that nothing outlives a killed test
runner.  Start processes from the main thread only (PDEATHSIG fires when the
*thread* that forked exits).  A popgate or pop3-synth whose output holds a
sanitizer report fails its test at cleanup.

Maildir seed files are written with CRLF line endings so that Dovecot serves
exactly the bytes on disk: comparisons against Dovecot are byte-exact, with no
normalisation.  pop3-synth messages are compared byte-exactly with
``pop3-synth --dump``.

Python 3.11 standard library only.
"""

from __future__ import annotations

# The standard modules the harness always imported: tests use some of them
# through it (harness.poplib, ...).
import atexit  # noqa: F401
import ctypes  # noqa: F401
import dataclasses  # noqa: F401
import hashlib  # noqa: F401
import json  # noqa: F401
import os
import poplib  # noqa: F401
import pwd  # noqa: F401
import random  # noqa: F401
import re  # noqa: F401
import shutil  # noqa: F401
import signal  # noqa: F401
import socket  # noqa: F401
import subprocess  # noqa: F401
import sys
import tempfile  # noqa: F401
import threading  # noqa: F401
import time  # noqa: F401
import unittest  # noqa: F401
from typing import Callable, Iterable, Sequence  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(HERE)
if _TESTS not in sys.path:
    sys.path.append(_TESTS)  # appended: stdlib names keep precedence

from popgate_testing.paths import (  # noqa: E402,F401
    CURL, DOVECOT_BIN, LOOPBACK, OPENSSL, REPO, _FALLBACK_BUILD_DIRS, _find_bin,
    _remove_stale_tempdirs, make_tempdir, popgate_bin, require_dovecot,
    scaled, synth_bin, timeout_scale)
from popgate_testing.processes import (  # noqa: E402,F401
    SANITIZER_EXIT_CODE, ModuleResources, _PR_SET_PDEATHSIG, _ServerInDir,
    _child_setup, _kill_all, _libc, _live, _live_lock, _read_bytes, _tail,
    check_sanitizer_output, sanitizer_exit, sanitizer_report, spawn,
    stop_process, terminate_all)
from popgate_testing.ports import (  # noqa: E402,F401
    free_port, read_greeting, wait_for_greeting, wait_until)
from popgate_testing.messages import (  # noqa: E402,F401
    expected_top, make_big_message, make_message, sha)
from popgate_testing.client import (  # noqa: E402,F401
    ConnectionClosed, RawClient, curl, parse_scan_listing, pop_login,
    poplib_retr_bytes)
from popgate_testing.synth import _SYNTH_LISTEN_RE, Synth  # noqa: E402,F401
from popgate_testing.dovecot import Dovecot, SeededMessage  # noqa: E402,F401
from popgate_testing.popgate import (  # noqa: E402,F401
    Popgate, Tenant, _toml_str, run_popgate)
from popgate_testing.testcase import IntegrationTestCase  # noqa: E402,F401
from popgate_testing.fakebackend import FakeBackend  # noqa: E402,F401
from popgate_testing.helpers import (  # noqa: E402,F401
    closing_on_error, drain_until_closed, loadgen_bin, popgate_holds_connection,
    recv_at_least, reset_close, unstarted_popgate)
