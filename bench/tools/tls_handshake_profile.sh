#!/usr/bin/env bash
# Instructions popgate executes per TLS handshake (server side, everything
# in the process: accept, BoringSSL, our callbacks, io_uring submission,
# greeting, QUIT, close, session log), counted with callgrind, for full and
# resumed TLS 1.3 and TLS 1.2 handshakes with an ECDSA P-256 certificate.
# Instruction counts, not time: this machine is shared and noisy.
#
# One popgate (1 worker) runs under callgrind; for each case loadgen
# (--mode handshakes, 1 connection) first runs SMALL sessions, then N, with
# the counters zeroed before and dumped after each run. The figure is
# (Ir(N run) - Ir(SMALL run)) / (N - SMALL): per-run constants (loadgen's
# first, full handshake of a --tls-resume run, the worker waking up) cancel.
#
# Usage: bench/tools/tls_handshake_profile.sh BUILD_DIR [N] [TOP]
#   N    handshakes in the long run (default 200; the short run is N/4)
#   TOP  also print the TOP named functions by inclusive cost per
#        handshake of each long run (default 0 = none)
# With TLS_PROFILE_KEEP=DIR, each long run's callgrind dump is kept there as
# CASE.cg (for callgrind_annotate --inclusive=yes --tree=calling).
# Needs valgrind (callgrind_control), openssl (for the demo certificates),
# and the build's server/popgate and bench/loadgen/loadgen. Bounded: every
# step has a timeout; everything started is stopped and the temporary
# directory removed on exit.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:?usage: tls_handshake_profile.sh BUILD_DIR [N] [TOP]}" && pwd)"
n="${2:-200}"
top="${3:-0}"
small=$((n / 4))
popgate="$build/server/popgate"
loadgen="$build/bench/loadgen/loadgen"
for f in "$popgate" "$loadgen"; do
  [[ -x "$f" ]] || { echo "missing $f (ninja -C $build popgate loadgen)" >&2; exit 2; }
done
command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 2; }

tmp="$(mktemp -d /tmp/tls_hs_profile.XXXXXX)"
pg_pid=""
cleanup() {
  if [[ -n "$pg_pid" ]]; then
    kill "$pg_pid" 2>/dev/null || true
    # valgrind takes a while to exit; do not leave it behind.
    for _ in $(seq 50); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pg_pid" 2>/dev/null || true
    wait "$pg_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

bash "$repo/scripts/make-demo-certs.sh" "$tmp/tls" >/dev/null
port=$((20000 + RANDOM % 20000))
# Handshakes mode never logs in, so the backend is never contacted.
cat >"$tmp/popgate.toml" <<TOML
[server]
workers = 1
shutdown_grace = "1s"
allow_root = true
[tls]
session_tickets = true
[[listener]]
address = "127.0.0.1:$port"
default_tenant = "bench"
tls = "implicit"
certificates = [ { cert = "$tmp/tls/ecdsa.pem", key = "$tmp/tls/ecdsa.key" } ]
[[tenant]]
name = "bench"
domains = ["example.com"]
auth = "backend"
backends = [ { address = "127.0.0.1:9" } ]
TOML

(cd "$tmp" && exec valgrind --tool=callgrind --vgdb=yes \
  --callgrind-out-file="$tmp/cg.out" "$popgate" --config "$tmp/popgate.toml" \
  2>"$tmp/popgate.log") &
pg_pid=$!

lg() {  # lg SESSIONS LOADGEN-FLAGS...
  local sessions="$1"
  shift
  timeout 300 "$loadgen" --target "127.0.0.1:$port" --mode handshakes \
    --tls implicit --tls-sigalgs ecdsa --concurrency 1 --duration 300 \
    --sessions "$sessions" "$@" >"$tmp/lg.json" 2>"$tmp/lg.err"
}
lg_or_die() {
  lg "$@" || {
    echo "loadgen failed:" >&2
    cat "$tmp/lg.err" "$tmp/lg.json" >&2
    exit 1
  }
}

# Under valgrind popgate needs a few seconds to come up.
up=0
for _ in $(seq 120); do
  if lg 1 --io-timeout 2; then up=1; break; fi
  kill -0 "$pg_pid" 2>/dev/null || break
  sleep 0.5
done
if [[ "$up" != 1 ]]; then
  echo "popgate did not come up under callgrind:" >&2
  cat "$tmp/popgate.log" >&2
  exit 1
fi

dump_no=0
# Zeroes the counters, runs loadgen, dumps; prints the dump's total Ir.
measured() {
  timeout 60 callgrind_control -z "$pg_pid" >/dev/null 2>&1
  lg_or_die "$@"
  timeout 60 callgrind_control -d "$pg_pid" >/dev/null 2>&1
  dump_no=$((dump_no + 1))
  local f
  f="$(ls -t "$tmp"/cg.out* | head -1)"
  cp "$f" "$tmp/last.cg"
  awk '/^(summary|totals):/ {print $2; exit}' "$f"
}

printf '%-22s %14s  (N=%d minus N=%d, 1 connection)\n' case "Ir/handshake" \
  "$n" "$small"
for spec in "full-tls1.3|--tls-version 1.3" \
  "resumed-tls1.3|--tls-version 1.3 --tls-resume" \
  "full-tls1.2|--tls-version 1.2" \
  "resumed-tls1.2|--tls-version 1.2 --tls-resume"; do
  name="${spec%%|*}"
  # shellcheck disable=SC2206
  flags=(${spec#*|})
  lg_or_die 5 "${flags[@]}"  # warm-up: first-use allocations, key derivation
  a="$(measured "$small" "${flags[@]}")"
  b="$(measured "$n" "${flags[@]}")"
  resumed="$(grep -o '"tls_resumed": *[0-9]*' "$tmp/lg.json" | grep -o '[0-9]*$')"
  printf '%-22s %14d  (resumed %s of %d)\n' "$name" $(((b - a) / (n - small))) \
    "${resumed:-?}" "$n"
  if [[ -n "${TLS_PROFILE_KEEP:-}" ]]; then
    mkdir -p "$TLS_PROFILE_KEEP"
    cp "$tmp/last.cg" "$TLS_PROFILE_KEEP/$name.cg"
  fi
  if [[ "$top" -gt 0 ]]; then
    callgrind_annotate --inclusive=yes --threshold=100 "$tmp/last.cg" 2>/dev/null |
      awk -v n="$n" -v top="$top" '
        /^-+$/ {sep++; next}
        # Skip the thread/event-loop frames every cost sits under, and
        # BoringSSL internals (Debian strips them: only addresses).
        /clone|start_thread|_M_run|Worker::Run|Ring::RunOnce|TOTALS|\?\?\?:0x/ {
          next
        }
        sep >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
          ir = $1; gsub(",", "", ir); $1 = ""
          printf "    %12d  %s\n", ir / n, substr($0, 2); shown++
        }'
  fi
done
