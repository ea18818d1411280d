"""TLS additions to the integration harness (``import tlsharness as th``),
re-exported from the shared package tests/popgate_testing:

  * Pki           -- a test CA and leaf certificates made with the `openssl`
                     CLI (popgate_testing.pki)
  * TlsPopgate    -- harness.Popgate with several listeners (none / starttls /
                     implicit), a [tls] section and per-tenant TLS settings
                     (popgate_testing.popgate)
  * TlsDovecot    -- harness.Dovecot with TLS: STLS on its plain port and a
                     pop3s (implicit TLS) listener on `pop3s_port`
                     (popgate_testing.dovecot)
  * TlsClient     -- harness.RawClient over TLS (implicit, or STLS first);
                     s_client(), served_cert(), curl_tls() -- the openssl CLI
                     and curl (popgate_testing.tls)

Everything listens on 127.0.0.1 only; processes are stopped by PID.
Python 3.11 standard library only.
"""

from __future__ import annotations

# The standard modules tlsharness always imported (tests may use them
# through it).
import dataclasses  # noqa: F401
import json  # noqa: F401
import os  # noqa: F401
import re  # noqa: F401
import shutil  # noqa: F401
import signal  # noqa: F401
import socket  # noqa: F401
import ssl  # noqa: F401
import subprocess  # noqa: F401
import time  # noqa: F401
from typing import Sequence  # noqa: F401

import harness  # noqa: F401  (puts popgate_testing on sys.path)
from harness import LOOPBACK  # noqa: F401

from popgate_testing.paths import CURL, OPENSSL, require_openssl  # noqa: E402,F401
from popgate_testing.pki import (  # noqa: E402,F401
    CertKey, Pki, _run, _san, cert_info, demo_certs)
from popgate_testing.popgate import (  # noqa: E402,F401
    Listener, TlsPopgate, TlsTenant, toml_value)
from popgate_testing.dovecot import TlsDovecot  # noqa: E402,F401
from popgate_testing.processes import terminate_all  # noqa: E402,F401
from popgate_testing.tls import (  # noqa: E402,F401
    _PEM_RE, BufferReader, TlsClient, curl_tls, insecure_ctx, ktls_available,
    parse_pop3_stream, s_client, served_cert, verifying_ctx,
    wait_for_tls_greeting)
