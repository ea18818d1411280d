#!/usr/bin/env python3
"""Fallback POP3 client for bench/compare: runs its workloads when the C++
load generator (bench/loadgen, which covers all of them, TLS included) is not
built or `bench/compare/run --pyclient` asks for it. Python 3 stdlib only;
the TLS work is done by the system OpenSSL through the ssl module. One core
of it reaches about 1,300 TLS handshakes/s: a proxy's TLS handshake rate
measured with it is the client's limit, hence "handshakes per proxy
CPU-second".

Modes (each prints ONE JSON object on stdout):
  handshake   P processes, each: connect -> TLS handshake -> read the greeting
              -> close, for T seconds. --resume offers the previous session's
              ticket on every connection (reports the share actually resumed).
  sessions    P processes, each: connect [-> TLS] -> USER/PASS -> STAT -> QUIT,
              repeatedly for T seconds (the fallback when loadgen is missing).
  throughput  P processes, each logs in once and RETRs --message repeatedly
              for T seconds; every RETR must end in CRLF.CRLF and be as long
              as the first one (a short or truncated answer is an error).
  hold        N sessions log in one after another and stay idle; prints
              {"held": n, ...} as soon as they are all in, then waits until
              stdin is closed (or --duration runs out), QUITs and closes.

Loopback only: the target host must be in 127.0.0.0/8 or ::1. Every socket
operation has a timeout; every mode is bounded by --duration (hold: by
--timeout as well).
"""
import argparse
import ipaddress
import json
import multiprocessing
import os
import resource
import select
import socket
import ssl
import sys
import time


TLS12_ONLY = False


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if TLS12_ONLY:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    # The benchmark's certificates are self-signed: no chain check. The
    # handshake itself (key exchange, CertificateVerify) is done in full.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Conn:
    """A blocking POP3 connection with a line reader."""

    def __init__(self, args, ctx=None, session=None):
        self.sock = socket.create_connection((args.host, args.port),
                                             timeout=args.io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reused = False
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, session=session)
            self.reused = self.sock.session_reused
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        line = self.line()
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"{text.split()[0]}: {line[:80]!r}")
        return line

    def login(self, user, password):
        greeting = self.line()
        if not greeting.startswith(b"+OK"):
            raise RuntimeError(f"greeting: {greeting[:80]!r}")
        self.cmd(f"USER {user}")
        self.cmd(f"PASS {password}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def err_kind(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "tls"
    if isinstance(e, (EOFError, ConnectionError)):
        return "closed"
    if isinstance(e, RuntimeError):
        return str(e).split(":")[0].lower()
    return type(e).__name__


def add_err(errors, e):
    k = err_kind(e)
    errors[k] = errors.get(k, 0) + 1


def threaded(loop):
    """Runs loop(args, idx, deadline) in --threads threads of this process
    (ssl and socket calls release the GIL) and merges their counters."""
    import threading

    def worker(args, idx, deadline, out):
        results = [None] * args.threads
        def body(t):
            results[t] = loop(args, idx * args.threads + t, deadline)
        ts = [threading.Thread(target=body, args=(t,))
              for t in range(args.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        merged = {"errors": {}}
        for r in results:
            if r is None:
                merged["errors"]["thread_lost"] = merged["errors"].get(
                    "thread_lost", 0) + 1
                continue
            for k, v in r.items():
                if k == "errors":
                    for ek, ev in v.items():
                        merged["errors"][ek] = merged["errors"].get(ek, 0) + ev
                elif isinstance(v, list):
                    merged.setdefault(k, []).extend(v)
                else:
                    merged[k] = merged.get(k, 0) + v
        out.put(merged)
    return worker


def l_handshake(args, idx, deadline):
    ctx = tls_context()
    session = None
    n = reused = attempts = 0
    errors = {}
    while time.monotonic() < deadline:
        c = None
        try:
            offered = args.resume and session is not None
            c = Conn(args, ctx, session if args.resume else None)
            greeting = c.line()
            if not greeting.startswith(b"+OK"):
                raise RuntimeError("greeting")
            n += 1
            attempts += 1 if offered else 0
            reused += 1 if c.reused else 0
            if args.resume:
                session = c.sock.session
        except Exception as e:  # noqa: BLE001 - counted by kind
            add_err(errors, e)
        finally:
            if c:
                c.close()
    return {"count": n, "reused": reused, "attempts": attempts,
            "errors": errors}


def l_sessions(args, idx, deadline):
    ctx = tls_context() if args.tls else None
    session = None
    n = 0
    lat = []
    errors = {}
    i = idx
    while time.monotonic() < deadline:
        c = None
        t0 = time.monotonic()
        try:
            c = Conn(args, ctx, session)
            c.login(args.user_format.replace("{i}", str(i % args.users)),
                    args.password)
            c.cmd("STAT")
            c.cmd("QUIT")
            n += 1
            lat.append(time.monotonic() - t0)
            if ctx is not None and args.resume:
                session = c.sock.session
        except Exception as e:  # noqa: BLE001
            add_err(errors, e)
        finally:
            if c:
                c.close()
        i += args.procs * args.threads
    return {"count": n, "lat": lat, "errors": errors}


def w_throughput(args, idx, deadline, out):
    ctx = tls_context() if args.tls else None
    errors = {}
    total = 0
    messages = 0
    want = None
    c = None
    buf = bytearray(256 * 1024)
    view = memoryview(buf)
    try:
        c = Conn(args, ctx)
        c.login(args.user_format.replace("{i}", str(idx % args.users)),
                args.password)
        while time.monotonic() < deadline:
            c.sock.sendall(f"RETR {args.message}\r\n".encode())
            got = len(c.buf)
            tail = bytes(c.buf[-5:])
            first = c.buf[:3]
            c.buf = b""
            while not tail.endswith(b"\r\n.\r\n"):
                k = c.sock.recv_into(view)
                if k == 0:
                    raise EOFError("closed")
                if len(first) < 3:
                    first += bytes(view[:3 - len(first)])
                got += k
                tail = (tail + bytes(view[max(0, k - 5):k]))[-5:]
            if not first.startswith(b"+OK"):
                raise RuntimeError(f"retr: {first!r}")
            if want is None:
                want = got
            elif got != want:
                raise RuntimeError(f"retr_size: {got} != {want}")
            total += got
            messages += 1
        c.cmd("QUIT")
    except Exception as e:  # noqa: BLE001
        add_err(errors, e)
    finally:
        if c:
            c.close()
    out.put({"bytes": total, "messages": messages, "errors": errors})


def run_pool(args, worker):
    deadline = time.monotonic() + args.duration
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(args, i, deadline, q))
             for i in range(args.procs)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = []
    for _ in procs:
        try:
            results.append(q.get(timeout=args.duration + 3 * args.io_timeout + 5))
        except Exception:  # noqa: BLE001 - a stuck worker
            results.append({"errors": {"worker_lost": 1}})
    wall = time.monotonic() - t0
    for p in procs:
        p.join(timeout=2)
        if p.is_alive():
            p.kill()
    errors = {}
    for r in results:
        for k, v in r.get("errors", {}).items():
            errors[k] = errors.get(k, 0) + v
    return results, wall, errors


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, int(round(p * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def hold(args):
    ctx = tls_context() if args.tls else None
    conns = []
    errors = {}
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    for i in range(args.count):
        if time.monotonic() > deadline:
            errors["timeout"] = errors.get("timeout", 0) + args.count - i
            break
        c = None
        try:
            c = Conn(args, ctx)
            c.login(args.user_format.replace("{i}", str(i % args.users)),
                    args.password)
            conns.append(c)
        except Exception as e:  # noqa: BLE001
            add_err(errors, e)
            if c:
                c.close()
    print(json.dumps({"mode": "hold", "held": len(conns),
                      "login_s": round(time.monotonic() - t0, 3),
                      "errors": errors,
                      "errors_total": sum(errors.values())}), flush=True)
    # Idle until the caller closes our stdin (it samples memory meanwhile).
    select.select([sys.stdin], [], [], args.duration)
    for c in conns:
        try:
            c.sock.settimeout(1.0)
            c.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    for c in conns:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["handshake", "sessions", "throughput",
                                     "hold"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true", help="implicit TLS")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--tls12", action="store_true",
                    help="TLS 1.2 at most (its resumption skips the key "
                         "exchange; TLS 1.3's psk_dhe_ke does not)")
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1,
                    help="handshake/sessions: connections per process")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=1000, help="hold: sessions")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--io-timeout", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--user-format", default="user{i}@example.com")
    ap.add_argument("--password", default="password")
    ap.add_argument("--message", type=int, default=1)
    args = ap.parse_args()

    global TLS12_ONLY
    TLS12_ONLY = args.tls12
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("pop3client: loopback targets only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    cpu0 = os.times()
    if args.mode == "hold":
        hold(args)
        return
    if args.mode == "handshake":
        args.tls = True
        results, wall, errors = run_pool(args, threaded(l_handshake))
        n = sum(r.get("count", 0) for r in results)
        reused = sum(r.get("reused", 0) for r in results)
        attempts = sum(r.get("attempts", 0) for r in results)
        # resumed_share: of the connections that offered a ticket (each
        # connection's first handshake has none to offer).
        out = {"handshakes": n, "handshakes_per_s": n / wall,
               "resumed": reused, "resume_attempts": attempts,
               "resumed_share": reused / attempts if attempts else 0.0}
    elif args.mode == "sessions":
        results, wall, errors = run_pool(args, threaded(l_sessions))
        n = sum(r.get("count", 0) for r in results)
        lat = sorted(x for r in results for x in r.get("lat", []))
        out = {"sessions": n, "sessions_per_s": n / wall,
               "latency_ms": {"p50": pct(lat, .5) * 1e3,
                              "p99": pct(lat, .99) * 1e3,
                              "p999": pct(lat, .999) * 1e3}}
    else:
        results, wall, errors = run_pool(args, w_throughput)
        b = sum(r.get("bytes", 0) for r in results)
        out = {"bytes": b, "mb_per_s": b / wall / 1e6,
               "messages": sum(r.get("messages", 0) for r in results)}
    cpu1 = os.times()
    out.update({"mode": args.mode, "client": "pop3client.py",
                "target": f"{args.host}:{args.port}", "tls": args.tls,
                "resume": args.resume, "tls12": args.tls12,
                "procs": args.procs,
                "threads": args.threads,
                "duration_s": wall, "errors": errors,
                "errors_total": sum(errors.values()),
                "client_cpu_s": (cpu1.children_user + cpu1.children_system) -
                                (cpu0.children_user + cpu0.children_system)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
