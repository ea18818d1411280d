#!/usr/bin/env bash
# The figures quoted in the core/TLS issue notes, in one bounded run on
# loopback: RETR of a 100 MB message with curl straight to pop3-synth and
# through popgate (plain and TLS), loadgen throughput (10 MB messages, C=4),
# and RSS per idle forwarded session (plain and TLS) with loadgen's hold
# mode. Usage: bench/tools/core_figures.sh [BUILD_DIR]  (default build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-build/release}"
source bench/tools/lib.sh
bench_init
bench_certs
bench_synth 17001 6000 100m,10m
bench_config "$tmp/popgate.toml" 17001 2 \
  '[[listener]]' 'address = "127.0.0.1:17110"' "$(bench_tls_listener 17995)"
start_popgate() {
  "$bin/server/popgate" --config "$tmp/popgate.toml" 2>>"$tmp/popgate.log" &
  pg=$!
  pids+=($pg)
  sleep 1
}
# A fresh process for each memory figure: freed memory is reused, so a
# second measurement in the same process would read too low.
restart_popgate() {
  kill "$pg"
  wait "$pg" 2>/dev/null || true
  start_popgate
}
start_popgate

echo "== RETR of a 100 MB message with curl (seconds, best of 3)"
best() {
  local b=999
  for _ in 1 2 3; do
    local t
    t=$( { /usr/bin/time -f %e curl -s "$@" -o /dev/null; } 2>&1 )
    b=$(python3 -c "print(min($b, $t))")
  done
  echo "$b"
}
curl -s -u user0@example.com:pass pop3://127.0.0.1:17001/1 -o /dev/null
d=$(best -u user0@example.com:pass pop3://127.0.0.1:17001/1)
p=$(best -u user0@example.com:pass pop3://127.0.0.1:17110/1)
t=$(best -k -u user0@example.com:pass pop3s://127.0.0.1:17995/1)
python3 -c "print(f'direct {$d}s  popgate {$p}s (x{$d/$p:.2f} of direct speed)  popgate TLS {$t}s (x{$d/$t:.2f})')"

lg() { "$bin/bench/loadgen/loadgen" --user-format 'user{i}@example.com' \
         --password pass --users 6000 "$@" 2>/dev/null; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
echo "== loadgen throughput, 10 MB message, C=4, 5 s (MB/s)"
d=$(lg --target 127.0.0.1:17001 --mode throughput --message 2 --concurrency 4 --duration 5 | field mb_per_s)
p=$(lg --target 127.0.0.1:17110 --mode throughput --message 2 --concurrency 4 --duration 5 | field mb_per_s)
t=$(lg --target 127.0.0.1:17995 --tls implicit --mode throughput --message 2 --concurrency 4 --duration 5 | field mb_per_s)
python3 -c "print(f'direct {$d:.0f}  popgate {$p:.0f} (x{$p/$d:.2f})  popgate TLS {$t:.0f} (x{$t/$d:.2f})')"

echo "== RSS per idle forwarded session (bytes, popgate only)"
restart_popgate
p=$(lg --target 127.0.0.1:17110 --mode hold --sessions 5000 --concurrency 200 --duration 3 --pid "$pg" | field rss_per_session_bytes)
restart_popgate
t=$(lg --target 127.0.0.1:17995 --tls implicit --mode hold --sessions 2000 --concurrency 100 --duration 3 --pid "$pg" | field rss_per_session_bytes)
echo "plain (5000 sessions): $p   TLS (2000 sessions): $t"
