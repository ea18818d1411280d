#!/usr/bin/env bash
# The README's test command (and .ci/run's): install, build the release
# preset and run every test (unit + integration against pop3-synth and a real
# Dovecot), then build the asan preset and run, under AddressSanitizer +
# UBSan, the unit tests and a selection of the integration modules against
# the sanitized popgate (label asan-integration; a sanitizer report fails),
# then runs every libFuzzer target (fuzz preset) for 10 s.
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
ctest --preset release -j "$jobs"
stage "release tests"
bash scripts/build.sh asan -j "$jobs"
stage "asan build"
ctest --preset asan -j "$jobs"
stage "asan tests"
# Every libFuzzer target for 10 s (clang, ASan + UBSan): a crash, leak or UB
# report fails CI. Long runs: scripts/fuzz.sh TARGET SECONDS.
bash scripts/fuzz.sh --ci
stage "fuzz"
