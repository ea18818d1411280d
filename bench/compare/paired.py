#!/usr/bin/env python3
"""Paired cost of a popgate setting: two popgates at the same time, both
pinned to the same proxy CPU (one worker each), each with its own
pop3-synth and loadgen on the load CPU, the plain sessions workload. Both
see the same background load, so the ratio of their CPU per session is
stable on a shared machine where back-to-back runs of bench/compare/run
differ by ±20% (BENCHMARKS.md, "Fleet features: cost per session").

  bench/compare/paired.py --base-bin OLD/popgate --bin NEW/popgate \\
      --synth-bin B/testbed/pop3-synth --loadgen-bin B/bench/loadgen/loadgen \\
      [--set KEY=VALUE ...] [--backends N] [--reps 6] [--duration 4] \\
      [--concurrency 32 | --rate R]

--rate R: open loop, each side starts R sessions/s (the cost far from
saturation, where a proxy sleeps and wakes per step of a session);
default closed loop with --concurrency connections.

--set is --popgate-tenant-set's (into the tenant of --bin only);
client_identity=proxy-v2 gives that popgate's pop3-synth --proxy-protocol.
The order of start and of measurement alternates between repetitions.
Proxy CPU is the sum of every popgate thread's schedstat run time. Prints
one JSON line per repetition and a summary; exits 1 on a client error."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
from compare import BenchPopgate, synth_ports, taskset  # noqa: E402
from popgate_testing.popgate import Listener, TlsTenant  # noqa: E402
from popgate_testing.synth import Synth  # noqa: E402


def cpu_s(pid):
    """Run time of every thread of pid, in seconds (ns resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total / 1e9


class Side:
    def __init__(self, args, name, binary, settings, backends):
        self.name = name
        proxy = settings.get("client_identity") == "proxy-v2"
        extra = ["--generated-users", str(args.users),
                 "--generated-password", compare.PASSWORD]
        extra += ["--listen", "127.0.0.1:0"] * (backends - 1)
        extra += ["--proxy-protocol"] if proxy else []
        self.synth = Synth({}, sizes=["1k"], extra_args=extra,
                           bin=args.synth_bin,
                           prefix=taskset([args.load_cpu])).start()
        try:
            ports = synth_ports(self.synth, backends)
            self.pg = BenchPopgate(
                [TlsTenant("bench", ["example.com"],
                           [f"127.0.0.1:{p}" for p in ports], auth="backend")],
                [Listener("plain", default_tenant="bench",
                          plaintext_auth="always")],
                server={"workers": 1, "auth_failure_delay": "0s",
                        "shutdown_grace": "1s"},
                test_defaults=False, bin=binary,
                prefix=taskset([args.proxy_cpu]), tenant_settings=settings)
            self.pg.start(timeout=15)
        except Exception:
            self.synth.cleanup()
            raise

    def loadgen(self, args, duration):
        return subprocess.Popen(
            taskset([args.load_cpu]) + [
                args.loadgen_bin, "--mode", "sessions",
                "--target", f"127.0.0.1:{self.pg.port}",
                "--users", str(args.users), "--user-format",
                compare.USER_FORMAT, "--password", compare.PASSWORD,
                "--concurrency", str(args.concurrency),
                "--duration", str(duration)] +
            (["--rate", str(args.rate)] if args.rate else []),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self):
        self.pg.cleanup()
        self.synth.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-bin", required=True, help="popgate A")
    ap.add_argument("--bin", required=True, help="popgate B (with --set)")
    ap.add_argument("--synth-bin", required=True)
    ap.add_argument("--loadgen-bin", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--backends", type=int, default=1,
                    help="backends of B's tenant (A always has 1)")
    ap.add_argument("--base-backends", type=int, default=1)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rate", type=float, default=0,
                    help="open loop: each side starts this many sessions/s "
                    "(loadgen --rate; --concurrency caps those in flight); "
                    "0: closed loop")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--load-cpu", type=int, default=0)
    ap.add_argument("--proxy-cpu", type=int, default=1)
    ap.add_argument("--label", default="B", help="name of --bin's side")
    ap.add_argument("--base-label", default="A", help="name of --base-bin's")
    args = ap.parse_args()
    settings = compare.parse_settings(args.set, "--set")
    rows = []
    for rep in range(args.reps):
        specs = [(args.base_label, args.base_bin, {}, args.base_backends),
                 (args.label, args.bin, settings, args.backends)]
        if rep % 2:
            specs.reverse()
        sides = []
        try:
            for spec in specs:
                sides.append(Side(args, *spec))
            for s in sides:  # warm-up: workers, pools, first connections
                s.loadgen(args, 0.3).communicate(timeout=60)
            c0 = [cpu_s(s.pg.proc.pid) for s in sides]
            procs = [s.loadgen(args, args.duration) for s in sides]
            out = [json.loads(p.communicate(timeout=args.duration + 60)[0])
                   for p in procs]
            c1 = [cpu_s(s.pg.proc.pid) for s in sides]
        finally:
            for s in sides:
                s.stop()
        row = {"rep": rep + 1, "loadavg": round(os.getloadavg()[0], 2)}
        for s, a, b, o in zip(sides, c0, c1, out):
            row[s.name] = {
                "cpu_s_per_1k_sessions": round((b - a) / o["sessions"] * 1e3, 4)
                if o["sessions"] else None,
                "sessions_per_s": o["sessions_per_s"],
                "errors": o["errors_total"]}
        a, b = row[args.base_label], row[args.label]
        row["cpu_ratio"] = round(b["cpu_s_per_1k_sessions"] /
                                 a["cpu_s_per_1k_sessions"], 4)
        row["sessions_ratio"] = round(b["sessions_per_s"] /
                                      a["sessions_per_s"], 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    med = statistics.median
    cr = [r["cpu_ratio"] for r in rows]
    sr = [r["sessions_ratio"] for r in rows]
    base = args.base_label
    errors = sum(r[n]["errors"] for r in rows for n in (base, args.label))
    print(f"{args.label} vs {base} over {len(rows)} paired runs: CPU per 1k "
          f"sessions {base} "
          f"{med(r[base]['cpu_s_per_1k_sessions'] for r in rows):.4f}"
          f" s, {args.label} "
          f"{med(r[args.label]['cpu_s_per_1k_sessions'] for r in rows):.4f} s;"
          f" ratio {med(cr):.3f} [{min(cr):.3f}-{max(cr):.3f}]; sessions/s "
          f"ratio {med(sr):.3f} [{min(sr):.3f}-{max(sr):.3f}]; "
          f"client errors {errors}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
