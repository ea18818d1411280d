#!/usr/bin/env bash
# RSS of popgate per idle logged-in TLS session, with user-space TLS and,
# where the kernel has the "tls" ULP, with kernel TLS (the session's
# BoringSSL state is freed after the hand-off). Bounded, loopback only,
# cleans up. On a kernel without the ULP run it through tests/ktls_vm:
#   tests/ktls_vm/run --ro BUILD_DIR -- bash bench/tools/tls_idle_rss.sh BUILD_DIR
# Usage: bench/tools/tls_idle_rss.sh [BUILD_DIR] [SESSIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(cd "${1:-build/release}" && pwd)"
n="${2:-1000}"
source bench/tools/lib.sh
bench_init
bench_certs
bench_synth 27401 2000 1k
measure() {  # $1 = true|false for [tls] ktls
  bench_config "$tmp/popgate.toml" 27401 1 "$(printf '[tls]\nktls = %s' "$1")" \
    "$(bench_tls_listener 27495)"
  "$bin/server/popgate" --config "$tmp/popgate.toml" 2>"$tmp/popgate.log" &
  local pg=$!
  sleep 1
  local rss
  rss=$(timeout 300 "$bin/bench/loadgen/loadgen" --target 127.0.0.1:27495 \
    --tls implicit --mode hold --sessions "$n" --concurrency 50 --duration 2 \
    --users "$n" --password pass --pid "$pg" 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['rss_per_session_bytes'])")
  kill "$pg"
  wait "$pg" 2>/dev/null || true
  local path
  path=$(grep -o '"forwarding":"[a-z-]*"' "$tmp/popgate.log" | sort | uniq -c |
    tr -s ' ' | tr '\n' ';')
  echo "ktls=$1: $rss bytes per idle TLS session ($n sessions; $path)"
}
measure false
measure true
