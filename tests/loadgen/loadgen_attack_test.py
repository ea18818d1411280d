#!/usr/bin/env python3
"""loadgen's attack mode (--attackers) end to end.

1. Against a scripted POP3 server in this process that records every
   client's source address and answers attackers by the book of a defended
   server: the first wrong password -ERR [AUTH], the second -ERR [SYS/TEMP]
   and then it closes; connections from one "blocked" address get a -ERR
   greeting. Checks that every answer is counted under its kind, that the
   close after an answer is not counted as an extra attempt, that the rate
   cap holds, and that good sessions and attackers bind to their own source
   addresses.
2. Against a real pop3-synth (spraying, no cap): good sessions count no
   error while attackers are answered -ERR [AUTH].
Every run is bounded (--duration, a subprocess timeout); servers are
stopped by this process.
"""
import argparse
import json
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time

GOOD_SOURCES = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
ATTACK_SOURCES = ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
BLOCKED = "127.0.0.6"  # gets a -ERR greeting


class Scripted(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.peers = {}        # source address -> connections
        self.pass_answers = {"auth": 0, "sys_temp": 0}
        self.greeting_errs = 0
        self.good_logins = 0


class Handler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        srv = self.server
        peer = self.client_address[0]
        with srv.lock:
            srv.peers[peer] = srv.peers.get(peer, 0) + 1
        self.request.settimeout(10)
        if peer == BLOCKED:
            with srv.lock:
                srv.greeting_errs += 1
            self.reply("-ERR [SYS/TEMP] too many connections from you")
            return
        self.reply("+OK scripted")
        user, failures = None, 0
        for raw in self.rfile:
            line = raw.decode(errors="replace").rstrip("\r\n")
            cmd, _, arg = line.partition(" ")
            cmd = cmd.upper()
            if cmd == "USER":
                user = arg
                self.reply("+OK")
            elif cmd == "PASS":
                if user == "good@example.com" and arg == "pw":
                    with srv.lock:
                        srv.good_logins += 1
                    self.reply("+OK logged in")
                    continue
                failures += 1
                kind = "auth" if failures == 1 else "sys_temp"
                with srv.lock:
                    srv.pass_answers[kind] += 1
                if kind == "auth":
                    self.reply("-ERR [AUTH] wrong")
                else:
                    self.reply("-ERR [SYS/TEMP] blocked")
                    return  # and close, as after max_auth_failures
            elif cmd == "STAT":
                self.reply("+OK 0 0")
            elif cmd == "QUIT":
                self.reply("+OK bye")
                return
            else:
                self.reply("-ERR unknown")


def run(loadgen, port, *args):
    cmd = [loadgen, "--target", f"127.0.0.1:{port}", "--io-timeout", "5",
           *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    sys.stderr.write(f"$ {' '.join(cmd[1:])}\n{res.stderr}")
    return res.returncode, json.loads(res.stdout)


def check_scripted(loadgen):
    srv = Scripted()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        rate = 150
        rc, r = run(loadgen, srv.server_address[1], "--duration", 1.5,
                    "--concurrency", 1, "--users", 1, "--user-format",
                    "good@example.com", "--password", "pw",
                    "--source", f"{GOOD_SOURCES[0]}-{GOOD_SOURCES[-1]}",
                    "--attackers", 4, "--attack", "stuff",
                    "--attack-source",
                    f"{ATTACK_SOURCES[0]}-{ATTACK_SOURCES[-1]}",
                    "--attack-rate", rate)
    finally:
        srv.shutdown()
        srv.server_close()
    assert rc == 0, f"exit {rc}: good sessions counted errors {r['errors']}"
    assert r["sessions"] > 0 and r["errors_total"] == 0, r
    a = r["attack"]
    out = a["outcomes"]
    assert a["attackers"] == 4 and a["pattern"] == "stuff", a
    assert a["sources"] == 4, a
    assert sum(out.values()) == a["attempts"], a
    assert a["attempts"] > 20, a
    # The rate cap: attempts started within 1.5 s at 150/s (and the ones
    # in flight at the end are not counted).
    assert a["attempts"] <= rate * 1.5 + 10, a
    # Every answer under its kind: the server's own counts, give or take
    # the attempts in flight when the run ended.
    with srv.lock:
        auth, temp = srv.pass_answers["auth"], srv.pass_answers["sys_temp"]
        greet = srv.greeting_errs
        peers = dict(srv.peers)
    assert abs(out["auth"] - auth) <= 4, (out, srv.pass_answers)
    assert abs(out["sys_temp"] - temp) <= 4, (out, srv.pass_answers)
    assert abs(out["greeting_err"] - greet) <= 4, (out, greet)
    assert out["auth"] > 0 and out["sys_temp"] > 0 and out["greeting_err"] > 0
    # The close after [SYS/TEMP] ends the connection, not another attempt.
    assert out["closed"] <= 4, out
    assert out["accepted"] == 0 and out["timeout"] == 0, out
    # Connections: one per two answered passwords, one per refused greeting.
    assert a["connections"] >= out["sys_temp"] + out["greeting_err"], a
    # Sources: good sessions and attackers from their own ranges, all used.
    used = set(peers)
    assert used <= set(GOOD_SOURCES) | set(ATTACK_SOURCES), used
    assert set(ATTACK_SOURCES) <= used, used
    assert set(GOOD_SOURCES) <= used, used
    assert "login_latency_ms" in r and r["login_latency_ms"]["p50"] > 0, r
    print("scripted server: OK", out)


def start_synth(binary):
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--generated-users", "64",
         "--generated-domain", "example.com", "--generated-password", "pw"],
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


def check_synth(loadgen, synth):
    proc, port = start_synth(synth)
    try:
        rc, r = run(loadgen, port, "--duration", 1, "--concurrency", 4,
                    "--users", 64, "--password", "pw", "--attackers", 8,
                    "--attack-user-format", "user{i}@example.com",
                    "--attack-user-count", 64)
        # The baseline form: the same keys, no attackers.
        rc0, r0 = run(loadgen, port, "--duration", 0.3, "--concurrency", 2,
                      "--users", 64, "--password", "pw", "--attackers", 0)
        # The attack alone: no good session, attackers for the duration.
        rc1, r1 = run(loadgen, port, "--duration", 0.5, "--concurrency", 0,
                      "--attackers", 2, "--attack-user-format",
                      "user{i}@example.com", "--attack-user-count", 64)
        # Without --attackers the report has no attack keys at all.
        _, plain = run(loadgen, port, "--duration", 0.2, "--users", 64,
                       "--password", "pw")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert rc == 0 and r["errors_total"] == 0, r["errors"]
    assert r["sessions"] > 0, r
    a = r["attack"]
    assert a["pattern"] == "spray" and a["sources"] == 1, a
    assert a["outcomes"]["auth"] > 50, a
    assert sum(a["outcomes"].values()) == a["attempts"], a
    assert a["outcomes"]["accepted"] == 0, a
    assert a["rejected"] == a["attempts"] - a["outcomes"]["timeout"], a
    assert rc0 == 0 and r0["attack"]["attempts"] == 0, r0
    assert r0["sessions"] > 0 and "login_latency_ms" in r0, r0
    assert "attack" not in plain and "login_latency_ms" not in plain, plain
    assert rc1 == 0 and r1["sessions"] == 0, r1
    assert r1["attack"]["outcomes"]["auth"] > 10, r1
    assert 0.4 < r1["wall_s"] < 5, r1
    print("pop3-synth: OK", a["outcomes"], f"{a['attempts_per_s']}/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--synth", required=True)
    args = ap.parse_args()
    check_scripted(args.loadgen)
    check_synth(args.loadgen, args.synth)
    print("loadgen attack: OK")


if __name__ == "__main__":
    main()
