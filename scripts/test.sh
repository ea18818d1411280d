#!/usr/bin/env bash
# The README's test command (and .ci/run's): install, build the release
# preset and run every test (unit + integration against pop3-synth and a real
# Dovecot), then build the asan preset and run, under AddressSanitizer +
# UBSan, the unit tests and a selection of the integration modules against
# the sanitized popgate (label asan-integration; a sanitizer report fails),
# then runs every libFuzzer target (fuzz preset) for 10 s. Beside the
# release tests, the deployment files' schema check
# (scripts/check-manifests.sh: Kubernetes manifests with npm's
# kubernetes-models, the seccomp profile, systemd-analyze verify); beside
# the fuzzers, the Debian package around the tested release binary, lintian,
# and its install into a clean Debian 12 tree (scripts/package-test.sh
# --prebuilt). Both mostly wait on the network and the disk, and the fuzzers
# run for a fixed time, so neither stretches the run much.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's wall time, so the CI budget (25 minutes) stays visible.
stage_start=$SECONDS
stage() {
  echo "== test.sh: $1 took $((SECONDS - stage_start)) s (total ${SECONDS} s)"
  stage_start=$SECONDS
}
bash scripts/install-deps.sh
stage "install-deps"
jobs="$(nproc)"
bash scripts/build.sh release -j "$jobs"
stage "release build"
# In the background: logs to a file, its status checked after the tests.
side_log="$(mktemp /tmp/popgate-side.XXXXXX)"
side() {  # side NAME COMMAND...: runs it in the background, sets side_pid
  echo "== test.sh: $1 runs beside the next stage (log: $side_log.$1)"
  "${@:2}" >"$side_log.$1" 2>&1 &
  side_pid=$!
}
side_wait() {  # side_wait NAME: its status; its log on failure
  if wait "$side_pid"; then
    tail -n 3 "$side_log.$1"
  else
    cat "$side_log.$1"
    echo "== test.sh: $1 FAILED"
    exit 1
  fi
}
side manifests bash scripts/check-manifests.sh
ctest --preset release -j "$jobs"
stage "release tests"
side_wait manifests
bash scripts/build.sh asan -j "$jobs"
stage "asan build"
ctest --preset asan -j "$jobs"
stage "asan tests"
# Every libFuzzer target for 10 s (clang, ASan + UBSan): a crash, leak or UB
# report fails CI. Long runs: scripts/fuzz.sh TARGET SECONDS.
side package bash scripts/package-test.sh --prebuilt build/release
bash scripts/fuzz.sh --ci
stage "fuzz"
side_wait package
stage "package"
rm -f "$side_log" "$side_log".*
