#!/usr/bin/env python3
"""Logs N POP3 sessions in through a proxy, keeps them idle, and reports the
proxy's RSS per idle forwarded session (RSS delta / N, from /proc).

Usage: hold_sessions.py --port P --pid PROXY_PID --users-format 'user{i}@example.com'
       --password pass --count 5000 [--hold 5] [--tls]
With --tls the sessions use implicit TLS (certificate not verified: the
benchmark's certificates are self-signed) and log in one after another.
Bounded: every step has a deadline; all sockets are closed at the end.
"""
import argparse
import resource
import selectors
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--users-format", default="user{i}@example.com")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--tls", action="store_true")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.count + 1000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    before = rss_kib(args.pid)
    if args.tls:
        return hold_tls(args, before)
    sel = selectors.DefaultSelector()
    # Per socket: [state, buffer]; states: greet -> user -> pass -> done
    conns = {}
    for i in range(args.count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((args.host, args.port))
        conns[s] = {"i": i, "state": "greet", "buf": b""}
        sel.register(s, selectors.EVENT_READ)
    done = 0
    failed = 0
    deadline = time.time() + args.timeout
    while done + failed < args.count and time.time() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            c = conns[s]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                failed += 1
                sel.unregister(s)
                continue
            c["buf"] += data
            if not c["buf"].endswith(b"\r\n"):
                continue
            line, c["buf"] = c["buf"], b""
            if not line.startswith(b"+OK"):
                failed += 1
                sel.unregister(s)
                continue
            user = args.users_format.format(i=c["i"])
            if c["state"] == "greet":
                s.send(f"USER {user}\r\n".encode())
                c["state"] = "user"
            elif c["state"] == "user":
                s.send(f"PASS {args.password}\r\n".encode())
                c["state"] = "pass"
            elif c["state"] == "pass":
                c["state"] = "done"
                done += 1
                sel.unregister(s)
    time.sleep(args.hold)
    during = rss_kib(args.pid)
    for s in conns:
        s.close()
    per = (during - before) * 1024 / max(done, 1)
    print(f"sessions_logged_in={done} failed={failed} rss_before_kib={before} "
          f"rss_during_kib={during} rss_per_session_bytes={per:.0f}")
    return 0 if failed == 0 and done == args.count else 1


def hold_tls(args, before):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held = []
    failed = 0
    deadline = time.time() + args.timeout
    for i in range(args.count):
        if time.time() > deadline:
            break
        try:
            raw = socket.create_connection((args.host, args.port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            f = s.makefile("rb")
            ok = f.readline().startswith(b"+OK")
            user = args.users_format.format(i=i)
            s.sendall(f"USER {user}\r\n".encode())
            ok = ok and f.readline().startswith(b"+OK")
            s.sendall(f"PASS {args.password}\r\n".encode())
            ok = ok and f.readline().startswith(b"+OK")
            if ok:
                held.append((s, f))
            else:
                failed += 1
                s.close()
        except OSError:
            failed += 1
    time.sleep(args.hold)
    during = rss_kib(args.pid)
    for s, f in held:
        f.close()
        s.close()
    done = len(held)
    per = (during - before) * 1024 / max(done, 1)
    print(f"sessions_logged_in={done} failed={failed} rss_before_kib={before} "
          f"rss_during_kib={during} rss_per_session_bytes={per:.0f}")
    return 0 if failed == 0 and done == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
