#!/usr/bin/env python3
"""Smoke test: run loadgen briefly in every mode against a real pop3-synth.

Checks that each run ends by itself, prints one JSON object with the stable
keys, and counts zero errors - and that a wrong answer (a wrong expected
size) IS counted as an error. Starts pop3-synth on 127.0.0.1:0 and stops it
by its PID, whatever happens.
"""
import argparse
import json
import re
import signal
import subprocess
import sys
import time

KEYS = ["mode", "target", "concurrency", "duration_s", "sessions",
        "sessions_per_s", "latency_ms", "bytes", "mb_per_s", "messages",
        "errors", "errors_total", "held", "rss_per_session_bytes",
        "loadgen_cpu_s"]


def start_synth(binary):
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--generated-users", "64",
         "--generated-domain", "example.com", "--generated-password", "pw",
         "--messages", "4", "--sizes", "2000,1,70000,1m"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("pop3-synth did not report its port")


def run(loadgen, port, *args, expect_ok=True):
    cmd = [loadgen, "--target", f"127.0.0.1:{port}", "--password", "pw",
           "--io-timeout", "5", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    sys.stderr.write(f"$ {' '.join(cmd[1:])}\n{res.stderr}")
    report = json.loads(res.stdout)
    missing = [k for k in KEYS if k not in report]
    assert not missing, f"missing keys {missing}"
    for k in ("p50", "p99", "p999"):
        assert k in report["latency_ms"], k
    assert report["errors_total"] == sum(report["errors"].values())
    if expect_ok:
        assert res.returncode == 0, f"exit {res.returncode}"
        assert report["errors_total"] == 0, report["errors"]
    else:
        assert res.returncode == 1, f"exit {res.returncode}"
    return report


def hold_until_cue_then_interrupt(loadgen, port):
    """bench/compare's hold: wait for the "holding N sessions" cue on
    stderr, then end the (long) hold early with SIGINT: every held session
    must still QUIT cleanly and the report come out at once."""
    cmd = [loadgen, "--target", f"127.0.0.1:{port}", "--password", "pw",
           "--io-timeout", "5", "--mode", "hold", "--sessions", "30",
           "--concurrency", "8", "--duration", "300"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        cue = None
        for line in proc.stderr:
            if line.startswith("loadgen: holding"):
                cue = line
                break
        assert cue == "loadgen: holding 30 sessions\n", repr(cue)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        sys.stderr.write(f"$ {' '.join(cmd[1:])}  (SIGINT after the cue)\n"
                         f"{cue}{err}")
        assert time.monotonic() - t0 < 10, "SIGINT did not end the hold"
        assert proc.returncode == 0, f"exit {proc.returncode}"
        r = json.loads(out)
        assert r["held"] == 30 and r["errors_total"] == 0, r
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", required=True)
    ap.add_argument("--loadgen", required=True)
    a = ap.parse_args()
    synth, port = start_synth(a.synth)
    try:
        r = run(a.loadgen, port, "--mode", "sessions", "--concurrency", "8",
                "--users", "32", "--duration", "1")
        assert r["sessions"] > 0 and r["sessions_per_s"] > 0, r
        assert r["latency_ms"]["p50"] > 0, r

        r = run(a.loadgen, port, "--mode", "sessions", "--concurrency", "4",
                "--threads", "2", "--retr", "4", "--sessions", "40")
        assert r["sessions"] == 40, r
        assert r["messages"] == 160, r

        r = run(a.loadgen, port, "--mode", "throughput", "--concurrency",
                "3", "--message", "4", "--duration", "1")
        assert r["messages"] > 0 and r["mb_per_s"] > 0, r
        assert r["bytes"] == r["messages"] * (1 << 20), r

        r = run(a.loadgen, port, "--mode", "hold", "--sessions", "50",
                "--duration", "0.5", "--pid", str(synth.pid))
        assert r["held"] == 50, r
        assert r["rss_per_session_bytes"] is not None, r

        hold_until_cue_then_interrupt(a.loadgen, port)

        # A fast wrong answer is an error, not speed.
        r = run(a.loadgen, port, "--mode", "throughput", "--concurrency",
                "1", "--message", "1", "--expect-size", "1999",
                "--duration", "0.3", expect_ok=False)
        assert r["errors"]["retr_verify"] > 0 and r["messages"] == 0, r

        # Every wait is bounded: a port nobody listens on fails fast.
        synth.kill()
        synth.wait(timeout=10)
        r = run(a.loadgen, port, "--mode", "sessions", "--duration", "0.3",
                expect_ok=False)
        assert r["errors"]["connect"] > 0, r
    finally:
        if synth.poll() is None:
            synth.kill()
            synth.wait(timeout=10)
    print("loadgen smoke test passed")


if __name__ == "__main__":
    main()
