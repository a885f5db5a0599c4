#!/usr/bin/env bash
# test.sh: the whole test suite on a fresh machine: installs the build dependencies, fetches the
# default model, builds, runs every CUnit suite and the SDK check, then the suites again under
# ASan + UBSan, then every fuzzer for 15 s (FUZZ_SECONDS). Fails on any failure or finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
# phase NAME: starts a phase; the seconds each took are printed at the end (CI's budget is 15 minutes)
t_start=$SECONDS t_phase=$SECONDS phases=()
phase() {
  [ -z "${t_name:-}" ] || phases+=("$(printf '%5d s  %s' $((SECONDS - t_phase)) "$t_name")")
  t_name=$1 t_phase=$SECONDS
  [ -z "$1" ] || echo "== $1"
}
phase "set-up: packages and the default model"
bash scripts/setup.sh
bash scripts/fetch_model.sh || echo "test: the default model could not be fetched; the tests that need it will skip"

phase "build (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
phase "test (Release)"
ctest --test-dir build --output-on-failure -j"$jobs"

phase "SDK: install into a temporary prefix, build the out-of-tree example plugins, run them"
bash scripts/test_sdk.sh build

phase "build under AddressSanitizer + UndefinedBehaviorSanitizer"
# the CUDA plugin (no GPU here: it loads, and its probe says why) for Hopper alone: the Release
# build compiled every architecture, and nvcc is a third of this build's time with all four
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHC_SANITIZE=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build-asan -j"$jobs"
phase "test under AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 HC_TEST_SANITIZED=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

phase "fuzzing: every libFuzzer harness of tests/fuzz for ${FUZZ_SECONDS:-15} s (clang, ASan + UBSan)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
phase ""
echo "== all tests passed in $((SECONDS - t_start)) s"
printf '%s\n' "${phases[@]}"
