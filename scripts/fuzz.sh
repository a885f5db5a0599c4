#!/usr/bin/env bash
# fuzz.sh [SECONDS]: builds the libFuzzer harnesses of tests/fuzz (clang, ASan + UBSan, in build-fuzz),
# writes their seeds, then runs each target for SECONDS (default 60), FUZZ_PARALLEL processes at a time
# (one a core), with its corpus kept in fuzz-corpus/<target> (git-ignored) and findings in fuzz-artifacts/<target>.
# Prints executions, coverage and findings per target; fails on any crash, leak, UB, timeout or OOM.
# TARGETS="gguf lua" limits the run to those targets; FUZZ_JOBS sets the build's parallelism.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
targets=${TARGETS:-"gguf model tokenizer vocab lua pipeline chat jsonl"}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
build=build-fuzz

command -v clang >/dev/null || { echo "fuzz: clang is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
echo "== fuzz: building the harnesses in $build (clang, ASan + UBSan + libFuzzer)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHC_FUZZ=ON -DHC_BUILD_TESTS=OFF -DHC_WITH_CUDA=OFF >/dev/null
fi
cmake --build "$build" -j"$jobs" >/dev/null

seeds="$build/fuzz-seeds"
rm -rf "$seeds"
"$build/fuzz/hc-fuzz-seeds" "$seeds" >/dev/null

# per target: the longest input and the dictionary
max_len() {
  case "$1" in
    gguf|model) echo 32768 ;;
    vocab) echo 16384 ;;
    pipeline) echo 8192 ;;
    tokenizer) echo 2048 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case "$1" in
    gguf|model|vocab) echo tests/fuzz/gguf.dict ;;
    lua|pipeline) echo tests/fuzz/lua.dict ;;
    jsonl) echo tests/fuzz/json.dict ;;
    *) echo "" ;;
  esac
}

# scratch files of the harnesses (model round trips, memfds aside) go to memory when it is there
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

logs="$build/fuzz-logs"
mkdir -p "$logs" fuzz-corpus fuzz-artifacts
# run_target T: one target for SECONDS; writes its report line to $logs/T.line, fails on a finding
run_target() {
  local t=$1 bin="$build/fuzz/fuzz_$1" corpus="fuzz-corpus/$1" art="fuzz-artifacts/$1" before after found rc d
  local execs rate cov ft status
  mkdir -p "$corpus" "$art"
  before=$(find "$art" -type f | wc -l)
  d=$(dict "$t")
  set +e
  "$bin" "$corpus" "$seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    ${d:+-dict="$d"} -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$art/" >"$logs/$t.log" 2>&1
  rc=$?
  set -e
  # (a run that died early has no stats: each is then "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2 || true)
  after=$(find "$art" -type f | wc -l)
  found=$((after - before))
  status=ok
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status="FAILED (exit $rc, $found new artifacts in $art)"
    grep -E 'ERROR|runtime error|fuzz oracle|SUMMARY|Test unit written' "$logs/$t.log" | head -12 || true
  fi
  printf '%-10s %12s execs %8s/s  cov %6s  ft %7s  corpus %6s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "$(find "$corpus" -type f | wc -l)" "$status" | tee "$logs/$t.line"
  [ "$status" = ok ]
}

# the targets FUZZ_PARALLEL at a time (default: one a core; each process is single-threaded)
parallel=${FUZZ_PARALLEL:-$jobs}
case "$parallel" in ''|*[!0-9]*|0) echo "fuzz: FUZZ_PARALLEL must be a positive whole number, not '$parallel'" >&2; exit 1 ;; esac
failed=0
running=0
reap() { # waits for one running target
  wait -n || failed=1
  running=$((running - 1))
}
for t in $targets; do
  rm -f "$logs/$t.line"
  [ -x "$build/fuzz/fuzz_$t" ] || { echo "fuzz: no harness $build/fuzz/fuzz_$t" >&2; exit 1; }
done
for t in $targets; do
  [ "$running" -lt "$parallel" ] || reap
  echo "== fuzz: $t for ${seconds} s"
  run_target "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do reap; done

echo "== fuzz: summary (${seconds} s per target, $parallel at a time; logs in $logs)"
for t in $targets; do cat "$logs/$t.line" 2>/dev/null || echo "$t: no report"; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED: a target crashed, leaked, hit undefined behaviour, timed out or ran out of memory" >&2
  exit 1
fi
echo "fuzz: no findings"
