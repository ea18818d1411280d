#!/usr/bin/env bash
# The README's first command: install, build, and run popgate in the
# foreground on deploy/demo.toml in front of two pop3-synth backends (one per
# tenant). Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release --target popgate pop3-synth
bin=build/release
bash scripts/make-demo-certs.sh deploy/demo/tls

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# Demo mailboxes: alice (tenant example.com) has 5 messages on one backend,
# bob (tenant example.org) 3 on another. Passwords: "demo".
"$bin/testbed/pop3-synth" --listen 127.0.0.1:11001 \
  --user alice@example.com:demo --messages 5 --sizes 2k,10k,50k,1k,300k \
  --greeting "pop3-synth (tenant example.com) ready" &
pids+=($!)
"$bin/testbed/pop3-synth" --listen 127.0.0.1:11002 \
  --user bob@example.org:demo --messages 3 --sizes 3k,20k,4k \
  --greeting "pop3-synth (tenant example.org) ready" &
pids+=($!)
sleep 0.3

cat <<'MSG'

popgate demo: POP3 on 127.0.0.1:1110 (plain, STLS offered) and POP3S on
127.0.0.1:1995 (implicit TLS, self-signed demo certificate); two tenants on
two backends.
  users: alice@example.com / demo (5 messages), bob@example.org / demo (3)
Try, in another terminal:
  curl -u alice@example.com:demo pop3://127.0.0.1:1110/1       # message 1
  curl -k -u alice@example.com:demo pop3s://127.0.0.1:1995/1   # over TLS
  curl -k --ssl-reqd -u alice@example.com:demo pop3://127.0.0.1:1110/1  # STLS
  curl -u alice@example.com:demo pop3://127.0.0.1:1110/         # LIST
  curl -u bob@example.org:demo pop3://127.0.0.1:1110/           # bob's LIST
  python3 -c 'import poplib; p=poplib.POP3("127.0.0.1",1110); p.user("alice@example.com"); p.pass_("demo"); print(p.stat()); p.quit()'
Session logs (one JSON line per session) follow below. Ctrl-C stops.

MSG
"$bin/server/popgate" --config deploy/demo.toml &
pids+=($!)
wait "${pids[-1]}"
