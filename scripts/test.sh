#!/usr/bin/env bash
# The README's test command (and .ci/run's): install, build the release
# preset and run every test (unit + integration against pop3-synth and a real
# Dovecot), then build the asan preset and run, under AddressSanitizer +
# UBSan, the unit tests and a selection of the integration modules against
# the sanitized popgate (label asan-integration; a sanitizer report fails),
# then runs every libFuzzer target (fuzz preset) for 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs="$(nproc)"
bash scripts/build.sh release -j "$jobs"
ctest --preset release -j "$jobs"
bash scripts/build.sh asan -j "$jobs"
ctest --preset asan -j "$jobs"
# Every libFuzzer target for 10 s (clang, ASan + UBSan): a crash, leak or UB
# report fails CI. Long runs: scripts/fuzz.sh TARGET SECONDS.
bash scripts/fuzz.sh --ci
