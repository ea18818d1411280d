# Sourced by the bench/tools scripts: what each of them needs around its
# measurement. Expects `set -euo pipefail` and the repository root as the
# working directory.

# A temporary directory ($tmp) removed on exit, and every PID appended to
# $pids stopped on exit.
bench_init() {
  tmp="$(mktemp -d)"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}

# bench_synth PORT USERS SIZES: pop3-synth with USERS generated users
# (user0@example.com ... password "pass"), one message per size.
bench_synth() {
  local n
  n=$(($(tr -cd , <<<"$3" | wc -c) + 1))
  "$bin/testbed/pop3-synth" --listen "127.0.0.1:$1" --generated-users "$2" \
    --generated-domain example.com --generated-password pass \
    --messages "$n" --sizes "$3" >/dev/null 2>&1 &
  pids+=($!)
}

# bench_config FILE BACKEND_PORT WORKERS [TOML LINE]...: a popgate config
# with the given [server] workers, the extra lines (listeners, [tls]), and
# one tenant "bench" (example.com) whose backend checks the passwords.
bench_config() {
  local file="$1" backend="$2" workers="$3"
  shift 3
  {
    # allow_root: benchmarks run as root here (no effect otherwise).
    printf '[server]\nworkers = %s\nallow_root = true\n' "$workers"
    printf '%s\n' "$@"
    printf '[[tenant]]\nname = "bench"\ndomains = ["example.com"]\n'
    printf 'auth = "backend"\n'
    printf 'backends = [ { address = "127.0.0.1:%s" } ]\n' "$backend"
  } >"$file"
}

# The implicit-TLS listener lines for bench_config, with the demo ECDSA
# certificate (made by `bench_certs` into $tmp/tls).
bench_certs() { bash scripts/make-demo-certs.sh "$tmp/tls" >/dev/null; }
bench_tls_listener() {
  printf '[[listener]]\naddress = "127.0.0.1:%s"\ntls = "implicit"\n' "$1"
  printf 'certificates = [ { cert = "%s", key = "%s" } ]\n' \
    "$tmp/tls/ecdsa.pem" "$tmp/tls/ecdsa.key"
}
