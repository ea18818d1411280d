#!/usr/bin/env python3
"""Regression test: loadgen against a TLS POP3 server that, like nginx's
mail proxy, answers QUIT, sends close_notify and then waits for the
client's close_notify before it closes the socket (nginx waits up to 3 s).

loadgen used to wait for the server's EOF without answering, so every
connection stalled 3 s per session (bench/compare measured nginx at a few
handshakes per second). Checks TLS 1.3 and 1.2, full and resumed, ECDSA and
RSA: many handshakes per connection in one second, no errors. And a server
that closes right after its close_notify (Dovecot): the client's answer
draws a reset, which is not an error.
"""
import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

NGINX_SHUTDOWN_WAIT_S = 3.0


def serve_one(conn, ctx, wait_for_peer):
    try:
        conn.settimeout(NGINX_SHUTDOWN_WAIT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"+OK ready\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            data = tls.recv(256)
            if not data:
                return
            line += data
        tls.sendall(b"+OK bye\r\n" if line.upper().startswith(b"QUIT")
                    else b"-ERR only QUIT here\r\n")
        if wait_for_peer:  # nginx: close_notify, then wait for the client's
            tls.unwrap().close()
            return
        # Dovecot: close_notify and close at once; the client's close_notify
        # then meets a closed socket and draws a reset, which must not count
        # as an error (the session succeeded with QUIT's +OK).
        tls.setblocking(False)
        try:
            tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        tls.close()
    except (OSError, ssl.SSLError):
        conn.close()


def start_server(cert, key, wait_for_peer):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(512)

    def accept_loop():
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve_one,
                             args=(conn, ctx, wait_for_peer),
                             daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return lsock


def run(loadgen, port, *args):
    cmd = [loadgen, "--target", f"127.0.0.1:{port}", "--mode", "handshakes",
           "--tls", "implicit", "--concurrency", "4", "--duration", "1",
           "--io-timeout", "5", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    sys.stderr.write(f"$ {' '.join(cmd[1:])}\n{res.stderr}")
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["errors_total"] == 0, report
    # Stalled: 4 connections x 1 handshake per 3 s. Answered: hundreds.
    assert report["handshakes"] >= 40, report
    assert report["wall_s"] < NGINX_SHUTDOWN_WAIT_S, report
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--make-certs", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["bash", a.make_certs, d], check=True,
                       stdout=subprocess.DEVNULL)
        for kind, wait_for_peer in (("ecdsa", True), ("rsa", True),
                                    ("ecdsa", False)):
            lsock = start_server(os.path.join(d, f"{kind}.pem"),
                                 os.path.join(d, f"{kind}.key"),
                                 wait_for_peer)
            port = lsock.getsockname()[1]
            try:
                for version in ("1.3", "1.2"):
                    r = run(a.loadgen, port, "--tls-version", version,
                            "--tls-sigalgs", kind)
                    assert r["tls_full_cert"][kind] == r["tls_full"], r
                    r = run(a.loadgen, port, "--tls-version", version,
                            "--tls-sigalgs", kind, "--tls-resume")
                    assert r["tls_resumed"] > r["tls_full"], r
            finally:
                lsock.close()
    print("loadgen close_notify test passed")


if __name__ == "__main__":
    main()
