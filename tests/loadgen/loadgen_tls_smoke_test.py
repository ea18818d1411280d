#!/usr/bin/env python3
"""TLS smoke test: loadgen --tls against a real popgate in front of pop3-synth.

Starts pop3-synth and popgate (one implicit-TLS and one STLS listener, ECDSA
and RSA demo certificates made by scripts/make-demo-certs.sh in a temp dir)
on 127.0.0.1, runs loadgen briefly in each TLS variant and checks: zero
errors, verified RETR content over TLS, full handshakes with the requested
certificate type, resumed handshakes with --tls-resume (TLS 1.3 and 1.2),
and that verification against the wrong CA fails as "tls" errors. Both
servers are stopped by PID, whatever happens.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

# Same directory: the plain smoke test's helpers.
from loadgen_smoke_test import run as run_plain, start_synth


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on {port}")


def start_popgate(binary, tmp, certs, synth_port):
    implicit, starttls = free_port(), free_port()
    certs_toml = (f'[{{ cert = "{certs}/ecdsa.pem", key = "{certs}/ecdsa.key" }},'
                  f' {{ cert = "{certs}/rsa.pem", key = "{certs}/rsa.key" }}]')
    config = f"""
[server]
workers = 1
allow_root = true

[tls]
session_tickets = true

[[listener]]
address = "127.0.0.1:{implicit}"
tls = "implicit"
certificates = {certs_toml}

[[listener]]
address = "127.0.0.1:{starttls}"
tls = "starttls"
certificates = {certs_toml}

[[tenant]]
name = "t"
domains = ["example.com"]
auth = "backend"
backends = [{{ address = "127.0.0.1:{synth_port}" }}]
"""
    path = os.path.join(tmp, "popgate.toml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(tmp, "popgate.log"), "w")
    proc = subprocess.Popen([binary, "--config", path], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(implicit, proc, "popgate")
        wait_port(starttls, proc, "popgate")
    except Exception:
        stop(proc)
        sys.stderr.write(open(os.path.join(tmp, "popgate.log")).read())
        raise
    return proc, implicit, starttls


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run(loadgen, port, *args, expect_ok=True):
    """The plain smoke test's checks, plus the TLS keys of the report."""
    report = run_plain(loadgen, port, *args, expect_ok=expect_ok)
    for k in ("tls", "tls_full", "tls_resumed", "tls_full_cert", "handshakes",
              "handshakes_per_s"):
        assert k in report, f"missing key {k}"
    assert "tls" in report["errors"]
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--popgate", required=True)
    ap.add_argument("--make-certs", required=True,
                    help="scripts/make-demo-certs.sh")
    a = ap.parse_args()
    synth = popgate = None
    with tempfile.TemporaryDirectory(prefix="loadgen-tls-") as tmp:
        certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", a.make_certs, certs], check=True, timeout=60)
        try:
            synth, synth_port = start_synth(a.synth)
            popgate, implicit, starttls = start_popgate(a.popgate, tmp, certs,
                                                        synth_port)
            lg = a.loadgen

            # Sessions over implicit TLS with verified RETR content.
            r = run(lg, implicit, "--tls", "implicit", "--concurrency", "4",
                    "--retr", "4", "--sessions", "24")
            assert r["sessions"] == 24 and r["messages"] == 96, r
            assert r["tls_full"] == 24 and r["tls_resumed"] == 0, r

            # Sessions over STLS, resuming.
            r = run(lg, starttls, "--tls", "starttls", "--tls-resume",
                    "--concurrency", "4", "--retr", "2", "--sessions", "24")
            assert r["sessions"] == 24 and r["messages"] == 48, r
            assert r["tls_resumed"] > 0, r

            # A fixed offered rate (open loop) over implicit TLS, two
            # threads: about rate x duration sessions, none late.
            r = run(lg, implicit, "--tls", "implicit", "--rate", "100",
                    "--concurrency", "8", "--threads", "2", "--duration", "1")
            assert r["offered_rate"] == 100 and r["late"] == 0, r
            assert 80 <= r["sessions"] <= 101, r
            assert r["tls_full"] == r["sessions"], r

            # Throughput over TLS: 1 MiB messages, verified.
            r = run(lg, implicit, "--tls", "implicit", "--mode", "throughput",
                    "--concurrency", "2", "--message", "4", "--duration", "1")
            assert r["messages"] > 0 and r["bytes"] == r["messages"] << 20, r

            # Handshakes: full (ECDSA by default), full RSA, resumed.
            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--concurrency", "4", "--duration", "1")
            assert r["handshakes"] > 0 and r["handshakes_per_s"] > 0, r
            assert r["tls_resumed"] == 0, r
            assert r["tls_full_cert"]["ecdsa"] == r["tls_full"] > 0, r
            assert r["latency_ms"]["p50"] > 0, r

            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--tls-sigalgs", "rsa", "--concurrency", "4",
                    "--duration", "1")
            assert r["tls_full_cert"]["rsa"] == r["tls_full"] > 0, r

            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--tls-resume", "--concurrency", "4", "--duration", "1")
            # At most one full handshake per connection slot.
            assert r["tls_full"] <= 4 and r["tls_resumed"] > 0, r

            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--tls-resume", "--tls-version", "1.2", "--concurrency",
                    "2", "--sessions", "20")
            assert r["handshakes"] == 20 and r["tls_resumed"] >= 18, r

            r = run(lg, starttls, "--tls", "starttls", "--mode", "handshakes",
                    "--tls-resume", "--concurrency", "2", "--sessions", "20",
                    "--threads", "2")
            assert r["handshakes"] == 20 and r["tls_resumed"] >= 18, r

            # Hold mode over TLS.
            r = run(lg, implicit, "--tls", "implicit", "--mode", "hold",
                    "--sessions", "20", "--duration", "0.3")
            assert r["held"] == 20, r

            # Verification: the self-signed ECDSA certificate is its own CA
            # (SAN IP:127.0.0.1); the RSA one is the wrong CA for it.
            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--tls-verify", "--tls-ca", f"{certs}/ecdsa.pem",
                    "--sessions", "5", "--concurrency", "1")
            assert r["handshakes"] == 5, r
            r = run(lg, implicit, "--tls", "implicit", "--mode", "handshakes",
                    "--tls-verify", "--tls-ca", f"{certs}/rsa.pem",
                    "--sessions", "3", "--concurrency", "1", expect_ok=False)
            assert r["errors"]["tls"] == 3 and r["handshakes"] == 0, r

            # TLS against a plain port is an error, not a hang.
            r = run(lg, synth_port, "--tls", "implicit", "--sessions", "2",
                    "--concurrency", "1", expect_ok=False)
            assert r["errors"]["tls"] == 2, r
        finally:
            stop(popgate)
            stop(synth)
    print("loadgen TLS smoke test passed")


if __name__ == "__main__":
    main()
