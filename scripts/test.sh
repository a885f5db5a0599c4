#!/usr/bin/env bash
# test.sh: the whole test suite on a fresh machine: installs the build dependencies, fetches the
# default model, builds, runs every CUnit suite and the SDK check, then the suites again under
# ASan + UBSan, then every fuzzer for 15 s (FUZZ_SECONDS). Fails on any failure or finding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
bash scripts/setup.sh
bash scripts/fetch_model.sh || echo "test: the default model could not be fetched; the tests that need it will skip"

echo "== build and test (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== SDK: install into a temporary prefix, build the out-of-tree example plugins, run them"
bash scripts/test_sdk.sh build

echo "== build and test under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHC_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 HC_TEST_SANITIZED=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzzing: every libFuzzer harness of tests/fuzz for ${FUZZ_SECONDS:-15} s (clang, ASan + UBSan)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
echo "== all tests passed"
