#!/usr/bin/env bash
# gpu_check.sh: the one prepared run on an NVIDIA GPU machine (no internet): build with CUDA against the
# packages of gpu-deps/, CUDA test suites, cuda-vs-cpu logits, bench; JSON lines and a table to $OUT.
#
# Usage: scripts/gpu_check.sh [--dry-run] [--build DIR] [--deps DIR] [--skip-8b]
#   --dry-run      (or HC_GPU_CHECK_CPU=1) the same pipeline without a GPU: the cpu device (claiming
#                  memory of its own) stands in, shapes are tiny, no build, no nvidia-smi; its numbers
#                  are no GPU figures and are labelled so
#   --build DIR    the build folder (default build-gpu; with --dry-run an existing build, default build)
#   --deps DIR     the folder scripts/gpu_deps.sh filled (default gpu-deps)
#   --skip-8b      leave out the Llama-3-8B shape
# Environment: OUT (results; default gpu-results/), HC_GPU_CHECK_BUDGET_S (seconds after which the
# optional steps are skipped and said so; default 420), HC_GPU_BW_GBS (the GPU's memory bandwidth
# when its name is not in the table below), HC_DEPS_PREFIX (where the packages are unpacked).
# It fails (exit 1) when nvidia-smi or nvcc is missing, the build lacks the cuda plugin, a CUDA test
# fails (the cuda plugin's test fails instead of skipping: HC_REQUIRE_CUDA=1), or a comparison fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t_start=$(date +%s)
dry=${HC_GPU_CHECK_CPU:-0}
build=""
deps=$root/gpu-deps
skip8b=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --build) build=$2; shift ;;
    --deps) deps=$2; shift ;;
    --skip-8b) skip8b=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$dry" = 1 ] && build=${build:-$root/build} || build=${build:-$root/build-gpu}
out=${OUT:-$root/gpu-results}
mkdir -p "$out"
jsonl=$out/results.jsonl
log=$out/gpu_check.log
: > "$jsonl"
: > "$log"
budget=${HC_GPU_CHECK_BUDGET_S:-420}
work=$(mktemp -d "${TMPDIR:-/tmp}/hc-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0

say() { echo "== gpu_check [$(( $(date +%s) - t_start ))s] $*" | tee -a "$log" >&2; }
fail() { say "FAIL: $*"; failed=1; }
die() { say "FAIL: $*"; finish; exit 1; }
elapsed() { echo $(( $(date +%s) - t_start )); }
# JSON line: label, then a JSON object (the tool's output) or an error string
record() { printf '{"label": "%s", "dry_run": %s, "result": %s}\n' "$1" "$([ "$dry" = 1 ] && echo true || echo false)" "$2" >> "$jsonl"; }
over_budget() { [ "$(elapsed)" -ge "$budget" ]; }

finish() {
  local t=$(elapsed)
  printf '{"label": "total", "dry_run": %s, "result": {"seconds": %d, "failed": %s}}\n' \
    "$([ "$dry" = 1 ] && echo true || echo false)" "$t" "$([ "$failed" = 1 ] && echo true || echo false)" >> "$jsonl"
  python3 "$root/scripts/gpu_summary.py" "$jsonl" > "$out/summary.md" 2>> "$log" || echo "(no summary: python3 failed)" > "$out/summary.md"
  cat "$out/summary.md" >&2
  say "done in ${t}s; results in $out (results.jsonl, summary.md, gpu_check.log)"
}

# ---------------- 1. the machine ----------------
if [ "$dry" = 1 ]; then
  say "dry run: the cpu device stands in for the GPU, tiny shapes (no GPU figures)"
  gpu_name="dry-run (cpu)"
  gpu_cc=""
else
  command -v nvidia-smi > /dev/null || die "nvidia-smi is missing: no NVIDIA driver on this machine"
  command -v nvcc > /dev/null || for d in /usr/local/cuda/bin /usr/local/cuda-13/bin; do [ -x $d/nvcc ] && export PATH=$d:$PATH && break; done
  command -v nvcc > /dev/null || die "nvcc is missing (looked on PATH and in /usr/local/cuda/bin)"
  nvidia-smi 2>&1 | tee -a "$log" >&2 || die "nvidia-smi failed"
  nvcc --version 2>&1 | tee -a "$log" >&2
  gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  gpu_cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
  record machine "{\"gpu\": \"$gpu_name\", \"compute_cap\": \"$gpu_cc\", \"cpus\": $(nproc), \"nvcc\": \"$(nvcc --version | grep -o 'release [0-9.]*' | cut -d' ' -f2)\"}"
fi
# nominal memory bandwidth (GB/s) by name, for bytes per token against it
case "$gpu_name" in
  *H200*) bw_nominal=4800 ;;
  *H100*PCIe*) bw_nominal=2000 ;;
  *H100*NVL*) bw_nominal=3900 ;;
  *H100*) bw_nominal=3350 ;;
  *A100*80GB*) bw_nominal=2039 ;;
  *A100*) bw_nominal=1555 ;;
  *) bw_nominal=${HC_GPU_BW_GBS:-0} ;;
esac
[ -n "${HC_GPU_BW_GBS:-}" ] && bw_nominal=$HC_GPU_BW_GBS

# ---------------- 2. dependencies: the packages of gpu-deps/, unpacked into a prefix ----------------
. "$root/scripts/gpu_deps_env.sh" # use_deps: the packages unpacked into a prefix, pkg-config pointed there

pkgconfig_exe=""
if [ -d "$deps/debs" ] && ls "$deps"/debs/*.deb > /dev/null 2>&1; then
  say "dependencies: unpacking $(ls "$deps"/debs/*.deb | wc -l) packages from $deps"
  use_deps >> "$log" 2>&1 || { tail -5 "$log" >&2; die "the packages of $deps could not be used"; }
elif command -v pkg-config > /dev/null && pkg-config --exists openblas lapacke lua5.4 cunit; then
  say "dependencies: the system's (no $deps/debs)"
  pkgconfig_exe=$(command -v pkg-config)
else
  die "no $deps/debs and the system lacks OpenBLAS/LAPACKE/Lua 5.4/CUnit: run scripts/gpu_deps.sh where there is internet and carry gpu-deps"
fi

# ---------------- 3. build ----------------
if [ "$dry" = 1 ]; then
  [ -x "$build/bin/hcinfer" ] || die "--dry-run needs a built tree: $build/bin/hcinfer is missing"
  say "build: the existing $build (dry run)"
else
  gen=()
  command -v ninja > /dev/null && gen=(-G Ninja)
  [ -f "$build/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}" "$build/CMakeCache.txt" && rm -rf "$build"
  arch=${gpu_cc:+$gpu_cc}
  say "build: Release with CUDA for sm_${arch:-default} in $build"
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release ${arch:+-DCMAKE_CUDA_ARCHITECTURES=$arch} \
    ${pkgconfig_exe:+-DPKG_CONFIG_EXECUTABLE=$pkgconfig_exe} >> "$log" 2>&1 || die "cmake configure failed (see gpu_check.log)"
  cmake --build "$build" -j"$(nproc)" >> "$log" 2>&1 || { tail -40 "$log" >&2; die "the build failed (see gpu_check.log)"; }
  [ -f "$build/lib/hcinfer/plugins/hc-device-cuda.so" ] || die "the cuda device plugin was not built (see the CUDA lines of gpu_check.log)"
  [ -f "$build/lib/hcinfer/plugins/kernels/hc-qrtn-cuda.so" ] || die "the rtn/gptq CUDA kernels were not built"
fi
hc=$build/bin/hcinfer
cmp=$build/bin/hc-compare-devices
[ -x "$cmp" ] || die "$cmp is missing"

# ---------------- 4. the CUDA test suites ----------------
if [ "$dry" = 1 ]; then
  say "tests: skipped in a dry run (ctest runs them on the CPU)"
else
  say "tests: the CUDA suites (HC_REQUIRE_CUDA=1: the cuda plugin's test fails rather than skips)"
  (cd "$build" && HC_REQUIRE_CUDA=1 ctest -R 'cuda|device_handoff|qrtn' --output-on-failure) >> "$log" 2>&1 \
    && record ctest '{"suites": "cuda|device_handoff|qrtn", "passed": true}' \
    || { record ctest '{"suites": "cuda|device_handoff|qrtn", "passed": false}'; fail "a CUDA test suite failed (see gpu_check.log)"; }
fi

# ---------------- 5. models: stories260K travels, the others are synthesised and compressed here ----------------
models=$work/models
mkdir -p "$models"
dev=cuda
cmp_dev=(--device cuda)
threads=$(nproc)
if [ "$dry" = 1 ]; then
  dev=cpu
  cmp_dev=(--device cpu --separate)
  threads=2
  smol=(--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 160 --vocab 512)
  big=(--dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 320 --vocab 1024)
  n_gen=8 n_dec=4 n_pre=8 reps=1 hthreads=1
else
  smol=(--dim 576 --layers 30 --heads 9 --kv-heads 3 --ffn 1536 --vocab 49152)
  big=(--dim 4096 --layers 8 --heads 32 --kv-heads 8 --ffn 14336 --vocab 128256)
  n_gen=64 n_dec=64 n_pre=128 reps=3
  hthreads=$(( $(nproc) / 2 > 8 ? 8 : $(nproc) / 2 )) # host threads for the branches: half the cores, at most 8
  [ "$hthreads" -ge 1 ] || hthreads=1
fi
stories=""
for d in "$deps/models" "${HC_SHARED_DIR:-$root/../shared}/models/stories260K"; do
  [ -f "$d/stories260K.bin" ] && [ -f "$d/tok512.bin" ] && stories=$d/stories260K.bin && break
done
make_model() { # name, synth arguments...: f16 synth, then W3 g128 + 10% branches
  local name=$1
  shift
  say "models: $name: synth (f16) and compress (rtn:bits=3,group=128, branches 10%)"
  "$hc" synth --arch llama "$@" --seed 1 --type f16 -o "$models/$name.gguf" >> "$log" 2>&1 || return 1
  "$hc" compress -m "$models/$name.gguf" -o "$models/$name.w3.gguf" --quant rtn:bits=3,group=128 --budget 10 \
    -t "$threads" >> "$log" 2>&1 || return 1
  record "compress-$name" "{\"seconds_since_start\": $(elapsed), \"f16_bytes\": $(stat -c %s "$models/$name.gguf"), \"w3_bytes\": $(stat -c %s "$models/$name.w3.gguf")}"
}
make_model smollm2 "${smol[@]}" || fail "the SmolLM2-shaped model could not be made (see gpu_check.log)"

# ---------------- 6. logits: the device against the cpu device ----------------
compare() { # label, model, options...
  local label=$1 model=$2
  shift 2
  [ -f "$model" ] || { record "logits-$label" '"no model"'; fail "$label: no model"; return; }
  say "compare: $label"
  local res
  if res=$("$cmp" -m "$model" "${cmp_dev[@]}" -n "$n_gen" --threads "$threads" "$@" 2>> "$log"); then
    record "logits-$label" "$res"
    local agree=$(echo "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["top1_agree"])')
    python3 -c "import sys; sys.exit(0 if $agree >= 0.95 else 1)" || say "note: $label: top-1 agreement $agree is below 0.95"
  else
    record "logits-$label" '"failed"'
    fail "compare $label failed (see gpu_check.log)"
  fi
}
if [ -n "$stories" ]; then compare stories260K "$stories" --no-comp
elif [ "$dry" = 1 ]; then record logits-stories260K '"skipped: no stories260K here (dry run)"'
else record logits-stories260K '"stories260K not carried (gpu-deps/models)"'; fail "stories260K is missing: carry gpu-deps"
fi
compare smollm2-f16 "$models/smollm2.gguf" --no-comp
compare smollm2-w3-b10 "$models/smollm2.w3.gguf"
compare smollm2-w3-b10-kvf16 "$models/smollm2.w3.gguf" --kv-type f16

# ---------------- 7. bench ----------------
if [ "$dry" != 1 ]; then
  res=$("$cmp" --device cuda --bandwidth 2>> "$log") && record bandwidth "$res" || fail "the bandwidth probe failed"
fi
bench() { # label, model, bench options...
  local label=$1 model=$2
  shift 2
  [ -f "$model" ] || { record "bench-$label" '"no model"'; fail "$label: no model"; return; }
  say "bench: $label"
  local res
  if res=$("$hc" bench -m "$model" --device "$dev" -n "$n_dec" -p "$n_pre" -r "$reps" --host-threads "$hthreads" --json "$@" 2>> "$log"); then
    record "bench-$label" "$(echo "$res" | tr -d '\n')"
  else
    record "bench-$label" '"failed"'
    fail "bench $label failed (see gpu_check.log)"
  fi
}
bench smollm2-w3-b10 "$models/smollm2.w3.gguf" --sched none,serial,async
bench smollm2-f16 "$models/smollm2.gguf" --sched none
if [ "$skip8b" = 1 ]; then
  record llama3-8b-shape '"skipped (--skip-8b)"'
elif over_budget; then
  record llama3-8b-shape "\"skipped: $(elapsed)s spent before it, over the budget of ${budget}s\""
  say "the Llama-3-8B shape is skipped: $(elapsed)s spent, over the budget of ${budget}s"
else
  if make_model llama3-8b-8l "${big[@]}"; then
    bench llama3-8b-8l-f16 "$models/llama3-8b-8l.gguf" --sched none
    bench llama3-8b-8l-w3-b10 "$models/llama3-8b-8l.w3.gguf" --sched none,serial,async
  else
    fail "the Llama-3-8B-shaped model could not be made (see gpu_check.log)"
  fi
fi
record meta "{\"gpu\": \"$gpu_name\", \"bandwidth_nominal_gbs\": $bw_nominal}"
# every step left its result: a missing or failed one fails the run
python3 - "$jsonl" "$skip8b" <<'PY' >> "$log" 2>&1 || fail "results.jsonl lacks results (see gpu_check.log)"
import json, sys
got = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    got[r["label"]] = r["result"]
want = ["compress-smollm2", "logits-smollm2-f16", "logits-smollm2-w3-b10", "logits-smollm2-w3-b10-kvf16",
        "bench-smollm2-w3-b10", "bench-smollm2-f16"]
if sys.argv[2] != "1" and not isinstance(got.get("llama3-8b-shape"), str):
    want += ["compress-llama3-8b-8l", "bench-llama3-8b-8l-f16", "bench-llama3-8b-8l-w3-b10"]
bad = [w for w in want if not isinstance(got.get(w), dict)]
if bad:
    print("gpu_check: no result for", ", ".join(bad))
    sys.exit(1)
PY
finish
exit $failed
