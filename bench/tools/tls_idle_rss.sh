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
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
bash scripts/make-demo-certs.sh "$tmp/tls" >/dev/null
"$bin/bench/pop3-synth" --listen 127.0.0.1:27401 --generated-users 2000 \
  --generated-domain example.com --generated-password pass --messages 1 \
  --sizes 1k >/dev/null 2>&1 &
pids+=($!)
measure() {  # $1 = true|false for [tls] ktls
  cat >"$tmp/popgate.toml" <<TOML
[server]
workers = 1
[tls]
ktls = $1
[[listener]]
address = "127.0.0.1:27495"
tls = "implicit"
certificates = [ { cert = "$tmp/tls/ecdsa.pem", key = "$tmp/tls/ecdsa.key" } ]
[[tenant]]
name = "bench"
domains = ["example.com"]
auth = "backend"
backends = [ { address = "127.0.0.1:27401" } ]
TOML
  "$bin/proxy/popgate" --config "$tmp/popgate.toml" 2>"$tmp/popgate.log" &
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
