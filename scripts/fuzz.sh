#!/usr/bin/env bash
# Runs popgate's libFuzzer targets (tests/fuzz, docs/fuzzing.md).
#
#   scripts/fuzz.sh TARGET SECONDS   one target (e.g. sasl) for SECONDS
#   scripts/fuzz.sh --ci             every target for 10 s, two at a time
#   scripts/fuzz.sh --list           the target names
#
# Builds the `fuzz` preset (clang, build/fuzz) first if needed. Each run
# reads the seed corpus (tests/fuzz/corpus/TARGET) and the saved regression
# inputs (tests/fuzz/regressions/TARGET); what it learns goes to a work
# directory (FUZZ_WORK_DIR, default a new /tmp/popgate-fuzz.XXXXXX), never
# into the tree. A crash, leak, UBSan report, timeout or out-of-memory
# fails the run; the input is kept there as crash-*/leak-*/timeout-*/oom-*.
# Copy it to tests/fuzz/regressions/TARGET/ once it is understood.
#
# Environment: FUZZ_WORK_DIR (see above), FUZZ_JOBS (parallel targets in
# --ci, default 2), FUZZ_CI_SECONDS (default 10), FUZZ_ARGS (extra libFuzzer
# flags, e.g. "-dict=... -max_len=..."), FUZZ_NO_BUILD=1 (use the binaries
# as they are).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/fuzz"
fuzz_dir="$root/tests/fuzz"

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# Target names from tests/fuzz/*_fuzz.cc.
targets() {
  local f
  for f in "$fuzz_dir"/*_fuzz.cc; do
    f=$(basename "$f")
    echo "${f%_fuzz.cc}"
  done
}

build_targets() {
  [[ -n "${FUZZ_NO_BUILD:-}" ]] && return 0
  if [[ ! -f "$build/build.ninja" ]]; then
    (cd "$root" && cmake --preset fuzz >/dev/null)
  fi
  cmake --build "$build" -j"${FUZZ_BUILD_JOBS:-2}" --target "$@"
}

# run_one TARGET SECONDS WORKDIR: runs it, prints one summary line, returns
# non-zero on any finding. The full log is WORKDIR/TARGET/fuzz.log.
run_one() {
  local t=$1 secs=$2 work=$3
  local out="$work/$t"
  mkdir -p "$out/corpus"
  local dirs=("$out/corpus" "$fuzz_dir/corpus/$t")
  [[ -d "$fuzz_dir/regressions/$t" ]] && dirs+=("$fuzz_dir/regressions/$t")
  local rc=0
  # halt_on_error: the first UBSan report ends the run (and fails it), as
  # -fno-sanitize-recover=undefined does for the checks it covers.
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$build/tests/fuzz/${t}_fuzz" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/" ${FUZZ_ARGS:-} "${dirs[@]}" \
    >"$out/fuzz.log" 2>&1 || rc=$?
  local execs cov findings
  # (|| true: a run that crashed on its first input has no stats.)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz.log" |
    tail -n 1) || true
  cov=$(grep -o 'cov: [0-9]*' "$out/fuzz.log" | tail -n 1 | cut -d' ' -f2) ||
    true
  findings=$(find "$out" -maxdepth 1 \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  # A sanitizer report that did not end the run still fails it.
  if [[ $rc -eq 0 ]] && grep -qE 'runtime error:|ERROR: (Address|Leak)Sanitizer' \
    "$out/fuzz.log"; then
    rc=1
  fi
  printf '%-16s execs %-10s cov %-6s findings %s%s\n' "$t" "${execs:-?}" \
    "${cov:-?}" "$findings" "$([[ $rc -ne 0 ]] && echo "  FAILED (rc $rc, see $out/fuzz.log)")"
  return "$rc"
}

main() {
  [[ $# -ge 1 ]] || usage
  local work="${FUZZ_WORK_DIR:-}"
  new_work_dir() {
    if [[ -z "$work" ]]; then work=$(mktemp -d /tmp/popgate-fuzz.XXXXXX); fi
    mkdir -p "$work"
  }
  case "$1" in
    --list)
      targets
      ;;
    --ci)
      local secs=${FUZZ_CI_SECONDS:-10} jobs=${FUZZ_JOBS:-2}
      build_targets fuzz
      new_work_dir
      echo "fuzz: every target for ${secs}s, $jobs at a time (work dir $work)"
      local t failed=0
      for t in $(targets); do
        # Keep at most $jobs running; each leaves its summary and status.
        while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
        (
          rc=0
          run_one "$t" "$secs" "$work" >"$work/$t.summary" 2>&1 || rc=$?
          echo "$rc" >"$work/$t.rc"
        ) &
      done
      wait
      for t in $(targets); do
        cat "$work/$t.summary"
        [[ "$(cat "$work/$t.rc" 2>/dev/null)" == 0 ]] || failed=1
      done
      if [[ $failed -ne 0 ]]; then
        echo "fuzz: FAILED (inputs and logs in $work)"
        return 1
      fi
      echo "fuzz: all targets clean"
      ;;
    -h | --help)
      usage
      ;;
    *)
      [[ $# -eq 2 && "$2" =~ ^[0-9]+$ ]] || usage
      local t=$1
      if [[ ! -f "$fuzz_dir/${t}_fuzz.cc" ]]; then
        echo "fuzz: no target '$t' (scripts/fuzz.sh --list)" >&2
        return 2
      fi
      build_targets "${t}_fuzz"
      new_work_dir
      echo "fuzz: $t for ${2}s (work dir $work)"
      run_one "$t" "$2" "$work"
      ;;
  esac
}

main "$@"
