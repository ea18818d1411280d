#!/usr/bin/env bash
# io_uring requests, completions, internal poll arms, io-wq hand-offs and
# syscalls per plain POP3 session (login, STAT, QUIT) in popgate, counted
# with kernel tracepoints (perf stat): unlike CPU time on a shared 2-core
# machine, these counts repeat run after run, so they show what a change to
# the session's I/O pattern saves.
# Usage: bench/tools/ring_ops_per_session.sh [BUILD_DIR] [SESSIONS] [CONCURRENCY]
#   (default build/release, 20000, 32; needs perf from Debian's linux-perf).
#   At concurrency 1 nothing is batched: each wait is a system call of its
#   own, which is the far-from-saturation case operators mostly run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-build/release}"
sessions="${2:-20000}"
concurrency="${3:-32}"
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 2; }
source bench/tools/lib.sh
bench_init
bench_synth 27301 6000 4k,10k
bench_config "$tmp/popgate.toml" 27301 1 '[[listener]]' 'address = "127.0.0.1:27310"'
"$bin/server/popgate" --config "$tmp/popgate.toml" 2>"$tmp/popgate.log" >/dev/null &
pg=$!
pids+=($pg)
sleep 1
events=io_uring:io_uring_submit_req,io_uring:io_uring_complete
events+=,io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work
events+=,raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter
events+=,syscalls:sys_enter_accept4,syscalls:sys_enter_setsockopt
events+=,syscalls:sys_enter_fcntl,syscalls:sys_enter_socket,syscalls:sys_enter_close
events+=,syscalls:sys_enter_splice,syscalls:sys_enter_futex,syscalls:sys_enter_write
perf stat -x, -e "$events" -p "$pg" -o "$tmp/stat.txt" &
ps=$!
sleep 0.3
timeout 120 "$bin/bench/loadgen/loadgen" --target 127.0.0.1:27310 \
  --mode sessions --concurrency "$concurrency" --users 5000 --password pass \
  --sessions "$sessions" --duration 60 >"$tmp/lg.json" 2>/dev/null
kill -INT "$ps"
wait "$ps" || true
python3 - "$tmp/lg.json" "$tmp/stat.txt" <<'PY'
import json, sys
n = json.load(open(sys.argv[1]))["sessions"]
print(f"{n} sessions; per session:")
for line in open(sys.argv[2]):
    p = line.strip().split(",")
    if len(p) > 3 and p[0].replace(".", "").isdigit():
        print(f"  {p[2].split(':')[-1]:28s} {float(p[0]) / n:7.2f}")
PY
