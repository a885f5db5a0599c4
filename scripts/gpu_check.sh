#!/usr/bin/env bash
# gpu_check.sh: the one prepared run on an NVIDIA GPU machine (no internet): build with CUDA against the
# packages of gpu-deps/, CUDA test suites, cuda-vs-cpu logits, bench; JSON lines and a table to $OUT.
#
# Usage: scripts/gpu_check.sh [--dry-run] [--build DIR] [--deps DIR] [--skip-8b]
#   --dry-run      (or HC_GPU_CHECK_CPU=1) the same pipeline without a GPU: shapes are tiny, no build, no
#                  nvidia-smi; the logits come from the cuda plugin built on the CPU emulator
#                  (tests/cuda_emu) when the build has it, the bench from the cpu device (claiming
#                  memory of its own); its numbers are no GPU figures and are labelled so
#   --build DIR    the build folder (default build-gpu; with --dry-run an existing build, default build)
#   --deps DIR     the folder scripts/gpu_deps.sh filled (default gpu-deps)
#   --skip-8b      leave out the Llama-3-8B shape
# Environment: OUT (results; default gpu-results/), HC_GPU_CHECK_BUDGET_S (an optional step -- the bandwidth
# probe, the GEMV benchmark, the 8B shape, the extras, the 30B-A3B shape, a failed step's diagnostic
# rerun -- starts only before this many seconds, else it is skipped and said so; default 300, and 0 in
# a dry run under the sanitizers, HC_TEST_SANITIZED=1),
# HC_GPU_CHECK_DEADLINE_S (the optional steps' commands are stopped at this many seconds; default 450:
# the run, summary included, ends before its 8 minutes), HC_GPU_CHECK_STEP_S (a comparison, bench,
# GEMV benchmark or the bandwidth probe still running after this many seconds is taken for hung: its
# stacks are logged, it is stopped, its step fails; default 240, 120 in a dry run), HC_GPU_BW_GBS (the
# GPU's memory bandwidth when its name is not in the table below), HC_DEPS_PREFIX (the packages' prefix).
# It fails (exit 1) when nvidia-smi or nvcc is missing, the build lacks the cuda plugin, a CUDA test
# fails (the cuda plugin's test fails instead of skipping: HC_REQUIRE_CUDA=1), or a comparison fails
# (limits in section 6), or decode steps fail as CUDA graphs (the run then goes on without them:
# HC_CUDA_GRAPH_OPS=0), with x in int8 (then on with x in f32: HC_CUDA_GEMV_INT8=0) or with the wide rtn
# GEMV (then on with the plain one: HC_QRTN_CUDA_GEMV=plain); a failed test suite or comparison is rerun
# once with CUDA_LAUNCH_BLOCKING=1 and under compute-sanitizer's memcheck (when there is one), into
# gpu_check.log, to name the failing kernel.
# SIGTERM or SIGINT (a time limit) still writes summary.md, with the interruption as a failure.
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
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$dry" = 1 ] && build=${build:-$root/build} || build=${build:-$root/build-gpu}
budget=${HC_GPU_CHECK_BUDGET_S:-300}
# the dry run under the sanitizers (ctest's second pass, HC_TEST_SANITIZED=1) leaves the optional steps
# out unless a budget is given: the pass without them runs them, and their cost there is ten times
[ "$dry" = 1 ] && [ "${HC_TEST_SANITIZED:-0}" = 1 ] && budget=${HC_GPU_CHECK_BUDGET_S:-0}
deadline=${HC_GPU_CHECK_DEADLINE_S:-450}
step_s=${HC_GPU_CHECK_STEP_S:-$([ "$dry" = 1 ] && echo 120 || echo 240)}
seconds() { # NAME VALUE [MIN]: VALUE a whole number of seconds, at least MIN (default 0), else exit 2
  [[ $2 =~ ^(0|[1-9][0-9]{0,5})$ ]] && [ "$2" -ge "${3:-0}" ] && return
  echo "gpu_check: $1='$2': give a whole number of seconds, ${3:-0} to 999999" >&2
  exit 2
}
seconds HC_GPU_CHECK_BUDGET_S "$budget"
seconds HC_GPU_CHECK_DEADLINE_S "$deadline"
seconds HC_GPU_CHECK_STEP_S "$step_s" 1
out=${OUT:-$root/gpu-results}
mkdir -p "$out"
jsonl=$out/results.jsonl
log=$out/gpu_check.log
: > "$jsonl"
: > "$log"
# The GPU run has 8 minutes in all: the build and the required steps take about 4 (an estimate: this
# script has not run on a GPU yet), the 8B shape (synth, compress on all cores, two benches) about 2.
work=$(mktemp -d "${TMPDIR:-/tmp}/hc-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0
finished=0

say() { echo "== gpu_check [$(( $(date +%s) - t_start ))s] $*" | tee -a "$log" >&2; }
json_str() { printf '"%s"' "$(printf '%s' "$*" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }
# a failure: said, kept for the summary, and the run's exit status
fail() { say "FAIL: $*"; record failure "$(json_str "$*")"; failed=1; }
die() { fail "$*"; finish; exit 1; }
elapsed() { echo $(( $(date +%s) - t_start )); }
# JSON line: label, then a JSON object (the tool's output) or an error string
record() { printf '{"label": "%s", "dry_run": %s, "result": %s}\n' "$1" "$([ "$dry" = 1 ] && echo true || echo false)" "$2" >> "$jsonl"; }
over_budget() { [ "$(elapsed)" -ge "$budget" ]; }
# bounded CMD...: CMD, stopped (exit 124) at the deadline when an optional step runs it (optional=1)
optional=0
bounded() {
  [ "$optional" = 1 ] || { "$@"; return; }
  local left=$(( deadline - $(elapsed) ))
  [ "$left" -gt 0 ] || return 124
  timeout --foreground -k 5 "$left" "$@"
}
# watched CMD...: a device program (a comparison, a bench, the GEMV benchmark, the bandwidth probe), bounded,
# and in any step stopped once it has run HC_GPU_CHECK_STEP_S seconds (default 240, 120 in a dry run; each
# takes seconds): one that hangs (a wait that never ends) then fails its step (exit 125) with its threads
# (/proc's view: state, wait channel, system call and library; gdb's or cuda-gdb's stacks where one can
# attach) in gpu_check.log and on stderr, instead of holding the run until its time limit
. "$root/scripts/watch_step.sh"
exec 3>&2 # the stacks' stderr: the script's own, where a step's stderr goes to the log
watched() {
  if [ "$optional" = 1 ] && [ $(( deadline - $(elapsed) )) -le "$step_s" ]; then bounded "$@"; return; fi
  watch_step "$step_s" "$log" "$@"
}
# not_done LABEL RC WHAT: a watched command that did not succeed (exit RC) recorded under LABEL: stopped at
# the deadline (no failure: returns 124), hung or failed (a failure naming WHAT)
not_done() {
  local why=""
  case $2 in
    124) why="stopped at the deadline of ${deadline}s" ;;
    125) why="hung: still running after ${step_s}s (HC_GPU_CHECK_STEP_S), stopped; its stacks are in gpu_check.log" ;;
  esac
  record "$1" "$(json_str "${why:-failed}")"
  [ "$2" = 124 ] && return 124
  fail "$3 ${why:-failed (see gpu_check.log)}"
}
# seconds for a diagnostic rerun: 120, less near the deadline
rerun_limit() { local t=$(( deadline - $(elapsed) )); [ "$t" -lt 120 ] && echo $(( t > 1 ? t : 1 )) || echo 120; }

# A kill (the run's time limit, ^C) still leaves summary.md: the run so far, the interruption a failure.
# Bash runs the trap once the running command has ended: it ends at once when the whole process group
# is signalled (as timeout and ^C do), hence timeout --foreground here, which keeps commands in this group.
interrupted() {
  trap - TERM INT
  [ "$finished" = 1 ] && exit 1
  fail "interrupted by SIG$1 after $(elapsed)s: the steps from here on did not run"
  finish
  exit 1
}
trap 'interrupted TERM' TERM
trap 'interrupted INT' INT

finish() {
  [ "$finished" = 1 ] && return
  finished=1
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
  # compute-sanitizer (diagnose, below) ships beside nvcc or in the toolkit's compute-sanitizer/
  for d in "$(dirname "$(command -v nvcc)")" /usr/local/cuda/compute-sanitizer; do
    [ -x "$d/compute-sanitizer" ] && PATH=$PATH:$d
  done
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
record meta "{\"gpu\": \"$gpu_name\", \"bandwidth_nominal_gbs\": $bw_nominal}"

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
  # what the kernels ask of the GPU (registers, stack frames: spills), for the summary; cuobjdump ships with nvcc
  co=$(command -v cuobjdump || echo "$(dirname "$(command -v nvcc)")/cuobjdump")
  sos=("$build/lib/hcinfer/plugins/hc-device-cuda.so" "$build/lib/hcinfer/plugins/kernels/hc-qrtn-cuda.so")
  if [ -x "$co" ] && res=$(for so in "${sos[@]}"; do "$co" -res-usage "$so" || exit; done 2>> "$log" |
                           python3 "$root/scripts/cuda_resources.py"); then # (one file a call: cuobjdump prints nothing for two)
    record resources "$res"
  else record resources '"no cuobjdump, or no kernels in its output"'
  fi
fi
hc=$build/bin/hcinfer
cmp=$build/bin/hc-compare-devices
[ -x "$cmp" ] || die "$cmp is missing"

# diagnose STEP CMD...: a failed step once more, into gpu_check.log: with CUDA_LAUNCH_BLOCKING=1 (each
# launch waits, so the error is reported by the op that launched the failing kernel), then under
# compute-sanitizer's memcheck when there is one (the kernel, thread and address of a bad access). An
# optional step: only within the budget, each rerun stopped after 120 s or at the deadline. The first
# lines of memcheck's report go to the summary too.
diagnose() {
  local step=$1 rc1 rc2="" found=""
  shift
  if over_budget; then
    record "diagnose-$step" "\"skipped: $(elapsed)s spent, over the budget of ${budget}s\""
    say "diagnose $step: skipped, over the budget of ${budget}s"
    return
  fi
  say "diagnose $step: rerun with CUDA_LAUNCH_BLOCKING=1"
  { echo "---- diagnose $step: CUDA_LAUNCH_BLOCKING=1 $*"; CUDA_LAUNCH_BLOCKING=1 timeout --foreground -k 5 "$(rerun_limit)" "$@"
    rc1=$?; echo "---- diagnose $step: exit $rc1"; } >> "$log" 2>&1
  local san=$(command -v compute-sanitizer || true)
  if [ -z "$san" ]; then
    rc2="no compute-sanitizer on PATH"
    say "diagnose $step: $rc2"
  elif over_budget; then
    rc2="skipped, over the budget"
  else
    say "diagnose $step: rerun under compute-sanitizer --tool memcheck"
    { echo "---- diagnose $step: $san --tool memcheck $*"
      CUDA_LAUNCH_BLOCKING=1 timeout --foreground -k 5 "$(rerun_limit)" "$san" --tool memcheck "$@"
      echo "---- diagnose $step: exit $?"; } > "$work/sanitizer.log" 2>&1
    rc2=$(tail -1 "$work/sanitizer.log" | grep -o 'exit [0-9]*')
    found=$(grep -m 4 -E '^========= +(Invalid|at |Program hit|ERROR SUMMARY)' "$work/sanitizer.log" | sed 's/^=* *//' | paste -sd'|' -)
    cat "$work/sanitizer.log" >> "$log"
  fi
  record "diagnose-$step" "$(json_str "CUDA_LAUNCH_BLOCKING=1: exit $rc1; memcheck: ${rc2:-?}${found:+: $found} (see gpu_check.log)")"
}

# ---------------- 4. the CUDA test suites ----------------
if [ "$dry" = 1 ]; then
  say "tests: skipped in a dry run (ctest runs them on the CPU)"
else
  say "tests: the CUDA suites (HC_REQUIRE_CUDA=1: the cuda plugin's test fails rather than skips)"
  # each suite takes seconds: 120 s each at most, so that a hang cannot eat the run
  if (cd "$build" && HC_REQUIRE_CUDA=1 ctest --timeout 120 -R 'cuda|device_handoff|qrtn' -E 'emu' --output-on-failure) >> "$log" 2>&1; then
    record ctest '{"suites": "cuda|device_handoff|qrtn", "passed": true}'
  else
    record ctest '{"suites": "cuda|device_handoff|qrtn", "passed": false}'
    fail "a CUDA test suite failed (see gpu_check.log)"
    # ctest's list of the failed tests: "N:name" lines; each is a program of bin/
    for t in $(cut -d: -f2 "$build/Testing/Temporary/LastTestsFailed.log" 2>/dev/null); do
      [ -x "$build/bin/$t" ] && HC_REQUIRE_CUDA=1 diagnose "$t" "$build/bin/$t"
    done
  fi
fi

# ---------------- 5. models: stories260K travels, the others are synthesised and compressed here ----------------
models=$work/models
mkdir -p "$models"
dev=cuda
cmp_dev=(--device cuda)
threads=$(nproc)
ctl_budget=0.9 # the controller's host budget: a job's host time may be 90% of its overlap window
if [ "$dry" = 1 ]; then
  dev=cpu
  cmp_dev=(--device cpu --separate)
  # the cuda plugin built on the CPU emulator (tests/cuda_emu), when this build has it: the logits then
  # come from the cuda device's own code, on the CPU
  [ -f "$build/cuda-emu/plugins/hc-device-cuda.so" ] && cmp_dev=(--device cuda --plugin-dir "$build/cuda-emu/plugins")
  threads=2
  smol=(--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 160 --vocab 512)
  moe=(--arch qwen2moe --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --experts 4 --top-k 2 --vocab 512)
  big=(--dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 320 --vocab 1024)
  q30=(--arch qwen3moe --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --experts 16 --top-k 8 --expert-ffn 32 --vocab 512)
  n_gen=8 n_dec=4 n_pre=8 reps=1 hthreads=1 p_long=20 n_ctl=16
else
  smol=(--dim 576 --layers 30 --heads 9 --kv-heads 3 --ffn 1536 --vocab 49152)
  # a small qwen2moe (16 experts, 4 per token, a gated shared expert): experts routed on the device,
  # without branches and with W3 + 10% (the routed experts' branches on the host, their jobs taking
  # the experts' ids with their input)
  moe=(--arch qwen2moe --dim 512 --layers 4 --heads 8 --kv-heads 2 --ffn 1024 --experts 16 --top-k 4 --vocab 32000)
  big=(--dim 4096 --layers 8 --heads 32 --kv-heads 8 --ffn 14336 --vocab 128256)
  # Qwen3-30B-A3B: 128 experts of width 768, 8 per token, 32/4 heads, cut to 4 of its 48 layers
  q30=(--arch qwen3moe --dim 2048 --layers 4 --heads 32 --kv-heads 4 --ffn 6144 --experts 128 --top-k 8 --expert-ffn 768 --vocab 151936)
  n_gen=64 n_dec=64 n_pre=128 reps=3 n_ctl=256
  p_long=400 # a prompt of 400: batches above 8 tokens (the f16 tensor-core GEMM of quantized weights),
             # then decoding over 401..464 keys (attention's keys in 3 splits for 9 heads)
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
  bounded "$hc" synth --arch llama "$@" --seed 1 --type f16 -o "$models/$name.gguf" >> "$log" 2>&1 || return
  bounded "$hc" compress -m "$models/$name.gguf" -o "$models/$name.w3.gguf" --quant rtn:bits=3,group=128 --budget 10 \
    -t "$threads" >> "$log" 2>&1 || return
  record "compress-$name" "{\"seconds_since_start\": $(elapsed), \"f16_bytes\": $(stat -c %s "$models/$name.gguf"), \"w3_bytes\": $(stat -c %s "$models/$name.w3.gguf")}"
}
# depth NAME FULL SYNTH-ARGS...: the layers a cut shape has and the model it stands for has (the summary
# scales its per-layer figures to that depth)
depth() {
  local name=$1 full=$2
  shift 2
  while [ $# -gt 1 ] && [ "$1" != --layers ]; do shift; done
  record "depth-$name" "{\"layers\": ${2:-0}, \"full_layers\": $full}"
}
make_model smollm2 "${smol[@]}" || fail "the SmolLM2-shaped model could not be made (see gpu_check.log)"
make_model moe "${moe[@]}" || fail "the qwen2moe-shaped model could not be made (see gpu_check.log)"

# ---------------- 6. logits: the device against the cpu device ----------------
# hc-compare-devices gives max_abs_diff (the largest |device - cpu| over every logit of every step; null
# when a logit is inf or NaN), max_abs_ref_logit and top1_agree. A comparison fails the run when
#  float (f16 and f32 weights: stories260K, the f16 model; W3 with x in f32 on both devices, the -f32act
#    comparisons, whose two ways of summing a group differ by 2e-5 of the logits on the emulator):
#    max_abs_diff > 1e-3 (1 + max |reference logit|) or top-1 < 0.95. Both devices do f32 arithmetic on
#    the same numbers (f16 weights widened to f32, f32 activations, KV cache and sums), in other orders
#    and with the GPU's own expf, so they differ by rounding only: the cpu device's AVX2 and AVX-512 f16
#    kernels (other summation orders) differ by 4.8e-6 on the f16 model here (max |logit| 5.0; 30
#    layers), a thousandth of the limit, which leaves the GPU's orders and cuBLAS room while a wrong row,
#    element, position or scale, errors of the logits' own size, is far beyond it;
#  w3 (the W3 + 10% branches model): top-1 < 0.80, or, where the cpu device's own int8 error is known
#    (base: its mean abs diff with x in int8 against x in f32, --ref-f32act, on the same model and tokens),
#    mean_abs_diff > 2 base -- both devices quantize the activations of the packed matmuls to int8
#    there, each in a scheme of its own, a rounding that flips near-tied greedy tokens of random weights:
#    on the emulator, a SmolLM2-shaped W3 + 10% (vocab 8192) gives top-1 92.3% for cuda against cpu, and
#    92.3% for each device's int8 against the exact product, mean abs diffs 0.021, 0.016 (cuda) and
#    0.018 (cpu), so two schemes' errors add up to 1.2 times one; a flipped token more or less is
#    chance, an int8 kernel's error twice the cpu's is not;
#  base (the cpu device's int8 against its f32, the base above): no limit but finite logits;
#  any: non-finite logits (max_abs_diff null), or output that is not the tool's JSON.
check_logits() { # kind (float|w3|base), the tool's JSON line[, base] -> that JSON with "check" added; exit 1: failed
  python3 - "$1" "$2" "${3:-}" <<'PY'
import json, sys
kind = sys.argv[1]
try:
    base = float(sys.argv[3]) if sys.argv[3] else None
except ValueError:
    base = None
try:
    res = json.loads(sys.argv[2])
    d, ref, top1 = res["max_abs_diff"], res["max_abs_ref_logit"], float(res["top1_agree"])
except (ValueError, KeyError, TypeError) as e:
    print(json.dumps("unreadable output of hc-compare-devices (%s): %.200s" % (e, sys.argv[2])))
    sys.exit(1)
limits = {"top1_min": {"float": 0.95, "w3": 0.80}.get(kind, 0.0)}
why = []
if not isinstance(ref, (int, float)):
    why.append("non-finite logits on the reference (cpu) device")
elif not isinstance(d, (int, float)):
    why.append("non-finite logits on the device")
elif kind == "float":
    limits["max_abs_diff_max"] = 1e-3 * (1 + ref)
    if d > limits["max_abs_diff_max"]:
        why.append("max_abs_diff %.4g > %.4g = 1e-3 (1 + max |reference logit| %.4g)" % (d, limits["max_abs_diff_max"], ref))
elif kind == "w3" and base is not None:
    limits["mean_abs_diff_max"] = 2.0 * base
    m = res.get("mean_abs_diff")
    if not isinstance(m, (int, float)) or m > limits["mean_abs_diff_max"]:
        why.append("mean_abs_diff %s > %.4g = 2 x the cpu device's own int8 error %.4g" % (m, limits["mean_abs_diff_max"], base))
if top1 < limits["top1_min"]:
    why.append("top-1 agreement %.4f < %.2f" % (top1, limits["top1_min"]))
res["check"] = dict(limits, kind=kind, passed=not why, why="; ".join(why))
print(json.dumps(res))
sys.exit(1 if why else 0)
PY
}
compare() { # label, kind (float|w3|base), model, options... (kind w3 with $w3_base set: that base)
  local label=$1 kind=$2 model=$3
  shift 3
  [ -f "$model" ] || { record "logits-$label" '"no model"'; fail "$label: no model"; return; }
  say "compare: $label"
  local res checked # (no local may shadow a global of finish: the trap may run it inside a function)
  local run=("$cmp" -m "$model" "${cmp_dev[@]}" -n "$n_gen" --threads "$threads" "$@")
  compared_ok=0
  if res=$(watched "${run[@]}" 2>> "$log"); then
    if checked=$(check_logits "$kind" "$res" "${w3_base:-}"); then
      record "logits-$label" "$checked"
      compared_ok=1
      return
    fi
    record "logits-$label" "${checked:-\"unreadable output\"}"
    fail "compare $label: $(echo "$checked" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["check"]["why"] if isinstance(r, dict) else r)' 2>&1)"
  else
    local rc=$?
    not_done "logits-$label" "$rc" "compare $label"
    case $rc in 124|125) return ;; esac # stopped at the deadline, or hung: a rerun would hang as well
  fi
  diagnose "logits-$label" "${run[@]}"
}
if [ -n "$stories" ]; then compare stories260K float "$stories" --no-comp
elif [ "$dry" = 1 ]; then record logits-stories260K '"skipped: no stories260K here (dry run)"'
else record logits-stories260K '"stories260K not carried (gpu-deps/models)"'; fail "stories260K is missing: carry gpu-deps"
fi
compare smollm2-f16 float "$models/smollm2.gguf" --no-comp
if [ "$compared_ok" = 0 ] && [ -z "${HC_CUDA_GRAPH_OPS:-}" ]; then
  # decode steps run as CUDA graphs by default: when plain launches pass, the rest goes without graphs
  HC_CUDA_GRAPH_OPS=0 compare smollm2-f16-nographs float "$models/smollm2.gguf" --no-comp
  if [ "$compared_ok" = 1 ]; then
    export HC_CUDA_GRAPH_OPS=0
    fail "CUDA graphs: smollm2-f16 fails with them and passes without (HC_CUDA_GRAPH_OPS=0 from here on)"
  fi
fi
# the cpu device's own int8 error on the W3 model (x in int8 against x in f32, the same tokens): the base
# of the W3 comparisons with the default prompt (w3_base: their mean abs diff may be twice it)
w3_base=""
compare smollm2-w3-b10-cpu-int8-vs-exact base "$models/smollm2.w3.gguf" --device cpu --separate --ref-f32act
[ "$compared_ok" = 1 ] &&
  w3_base=$(tail -1 "$jsonl" | python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["mean_abs_diff"])')
compare smollm2-w3-b10 w3 "$models/smollm2.w3.gguf"
if [ "$compared_ok" = 0 ] && [ -z "${HC_CUDA_GEMV_INT8:-}" ] && [ "${cmp_dev[1]}" != cpu ]; then
  # the decode GEMVs take x quantized to int8 by default: when they pass with x in f32, the rest goes so
  HC_CUDA_GEMV_INT8=0 compare smollm2-w3-b10-f32x w3 "$models/smollm2.w3.gguf"
  if [ "$compared_ok" = 1 ]; then
    export HC_CUDA_GEMV_INT8=0
    fail "x in int8: smollm2-w3-b10 fails with it and passes with x in f32 (HC_CUDA_GEMV_INT8=0 from here on)"
  fi
fi
if [ "$compared_ok" = 0 ] && [ -z "${HC_QRTN_CUDA_GEMV:-}" ] && [ "${cmp_dev[1]}" != cpu ]; then
  # the rtn/gptq decode GEMVs are the wide kernels by default: when the plain ones pass, the rest goes with them
  HC_QRTN_CUDA_GEMV=plain compare smollm2-w3-b10-plaingemv w3 "$models/smollm2.w3.gguf"
  if [ "$compared_ok" = 1 ]; then
    export HC_QRTN_CUDA_GEMV=plain
    fail "the wide rtn GEMV: smollm2-w3-b10 fails with it and passes with the plain one (HC_QRTN_CUDA_GEMV=plain from here on)"
  fi
fi
compare smollm2-w3-b10-kvf16 w3 "$models/smollm2.w3.gguf" --kv-type f16
# the device's int8 against the exact product (the cpu device with x in f32), beside the cpu's own (the base)
compare smollm2-w3-b10-int8-vs-exact w3 "$models/smollm2.w3.gguf" --ref-f32act
# x in f32 on both devices (HC_CPU_ACT_INT8=0 on the cpu device): the W3 GEMVs, dense and per expert, held
# to the float limits, which a group's scale 2e-4 off fails (with x in int8 the devices' two schemes differ
# by more); a prompt of 8 tokens, which the GEMVs take, not the f16 GEMM
HC_CPU_ACT_INT8=0 HC_CUDA_GEMV_INT8=0 compare smollm2-w3-b10-f32act float "$models/smollm2.w3.gguf" -p 8
HC_CPU_ACT_INT8=0 HC_CUDA_GEMV_INT8=0 compare moe-w3-b10-f32act float "$models/moe.w3.gguf" -p 8
flags_ok=1
if [ "${cmp_dev[1]}" = cpu ]; then record logits-smollm2-w3-b10-flags '"skipped: the cpu device has no hand-off by flags (dry run without the emulator)"'
else
  # a flag the device never sees would make it wait: 5 s of patience here, not the default 30
  HC_CUDA_HANDOFF_PATIENCE_MS=5000 compare smollm2-w3-b10-flags w3 "$models/smollm2.w3.gguf" --handoff flags
  flags_ok=$compared_ok
fi
w3_base="" # other prompts and models: top-1 alone
compare smollm2-f16-long float "$models/smollm2.gguf" --no-comp -p "$p_long"
compare smollm2-w3-b10-long w3 "$models/smollm2.w3.gguf" -p "$p_long"
compare moe-f16 float "$models/moe.gguf" --no-comp
compare moe-w3-b10 w3 "$models/moe.w3.gguf"
# a prompt of 30 tokens: 120 routed rows (16 experts, 4 a token; the device routes up to 8 an expert),
# routed on the device and sorted by expert there; the experts' branches take the ids with their input
compare moe-f16-p30 float "$models/moe.gguf" --no-comp -p 30
compare moe-w3-b10-p30 w3 "$models/moe.w3.gguf" -p 30
# a long prompt: more routed rows than the device routes, routed on the host and combined on the device
compare moe-f16-long float "$models/moe.gguf" --no-comp -p "$p_long"
if [ "$flags_ok" = 1 ] && [ "${cmp_dev[1]}" != cpu ]; then # the experts' jobs by events among jobs by flags
  HC_CUDA_HANDOFF_PATIENCE_MS=5000 compare moe-w3-b10-flags w3 "$models/moe.w3.gguf" --handoff flags
fi

# ---------------- 7. bench ----------------
# skip_optional LABEL WHAT: 0 (and the step recorded as skipped) when the budget is spent
skip_optional() {
  over_budget || return 1
  record "$1" "\"skipped: $(elapsed)s spent before it, over the budget of ${budget}s\""
  say "$2 is skipped: $(elapsed)s spent, over the budget of ${budget}s"
}
if [ "$dry" != 1 ] && ! skip_optional bandwidth "the bandwidth probe"; then
  optional=1
  if res=$(watched "$cmp" --device cuda --bandwidth 2>> "$log"); then record bandwidth "$res"
  else not_done bandwidth "$?" "the bandwidth probe"
  fi
  optional=0
fi
# the GEMV kernels alone at a Llama-3-8B layer's shapes, timed by the device's events (hc-bench-device-gemv):
# f16, W3 and W4 g128 by the wide rtn kernel with x in int8, W3 by the plain one too
# (HC_QRTN_CUDA_GEMV=plain), GGUF's Q3_K, Q4_K and Q6_K with x in int8 and 4 rows a warp, with 1
# (HC_CUDA_GEMV_ROWS), and W3, W4 and those with x in f32 (HC_CUDA_GEMV_INT8=0; random blocks: the
# kernels' speed does not depend on the values): GB/s of weights read, the ">= 50% of bandwidth" and
# ">= 4x f16" targets at the kernels' level. The dry run: small shapes, on the cuda plugin built on the
# emulator when the build has it (the kernels' own code), else on the cpu device
gemv_opts=()
if [ "$dry" = 1 ]; then
  gemv_opts=(--device cpu)
  [ "${cmp_dev[1]}" = cuda ] && gemv_opts=("${cmp_dev[@]}")
  gemv_opts+=(--shape 256x512 --shape 64x1024 --cold-mib 1 --busy-mib 1 --reps 8)
fi
gemv() { # label, options...: one JSON array of the tool's lines
  local label=$1 res rc
  shift
  res=$(watched "$build/bin/hc-bench-device-gemv" "${gemv_opts[@]}" "$@" 2>> "$log")
  rc=$?
  if [ "$rc" = 0 ] && [ -n "$res" ]; then
    record "$label" "[$(echo "$res" | paste -sd, -)]"
  else
    not_done "$label" "$rc" "$label: hc-bench-device-gemv"
  fi
}
if ! skip_optional gemv "the GEMV benchmark"; then
  optional=1
  say "gemv: f16, W3, W4 g128, Q3_K, Q4_K and Q6_K at a Llama-3-8B layer's shapes"
  HC_QRTN_CUDA_GEMV=wide HC_CUDA_GEMV_ROWS=4 HC_CUDA_GEMV_INT8=1 gemv gemv --format f16 --format rtn:bits=3,group=128 \
      --format rtn:bits=4,group=128 --format q3_K --format q4_K --format q6_K \
    && HC_QRTN_CUDA_GEMV=plain gemv gemv-plain --format rtn:bits=3,group=128 \
    && HC_CUDA_GEMV_ROWS=1 gemv gemv-rows1 --format q3_K --format q4_K --format q6_K \
    && HC_CUDA_GEMV_INT8=0 gemv gemv-f32x --format rtn:bits=3,group=128 --format rtn:bits=4,group=128 \
      --format q3_K --format q4_K --format q6_K
  optional=0
fi
bench() { # label, model, bench options...; the bench's exit status (124: stopped at the deadline)
  local label=$1 model=$2
  shift 2
  [ -f "$model" ] || { record "bench-$label" '"no model"'; fail "$label: no model"; return; }
  say "bench: $label"
  local res
  if res=$(watched "$hc" bench -m "$model" --device "$dev" -n "$n_dec" -p "$n_pre" -r "$reps" --host-threads "$hthreads" --json "$@" 2>> "$log"); then
    record "bench-$label" "$(echo "$res" | tr -d '\n')"
  else
    not_done "bench-$label" "$?" "bench $label"
  fi
}
# bench_flags: the branches handed off by flags (the device waits for the host; the step's graphs hold
# the hand-off); the dry run's cpu device has no flags
bench_flags() { # label, model, bench options...
  if [ "$dry" = 1 ]; then record "bench-$1" '"skipped: the dry run benches the cpu device, which has no hand-off by flags"'; return 0; fi
  if [ "$flags_ok" != 1 ]; then record "bench-$1" '"skipped: the comparison by flags failed"'; return 0; fi
  HC_CUDA_HANDOFF_PATIENCE_MS=5000 bench "$@" --handoff flags
}
bench smollm2-w3-b10 "$models/smollm2.w3.gguf" --sched none,serial,async
bench smollm2-f16 "$models/smollm2.gguf" --sched none
# the dynamic-rank controller (--host-budget): the active ranks shrink until the host keeps up with the
# device, the paper's "near-zero overhead" (the issue's target: async within 5% of none on the 8B shape);
# it starts each repetition at the full rank and acts on every 8th pass: 4 times the tokens
bench smollm2-w3-b10-ctl "$models/smollm2.w3.gguf" --sched none,async --host-budget "$ctl_budget" -n "$n_ctl"
if [ "$skip8b" = 1 ]; then
  record llama3-8b-shape '"skipped (--skip-8b)"'
elif ! skip_optional llama3-8b-shape "the Llama-3-8B shape"; then
  optional=1 # each command stopped at the deadline: then the shape is reported as stopped, not as failed
  make_model llama3-8b-8l "${big[@]}"
  rc=$?
  if [ "$rc" = 0 ]; then
    depth llama3-8b-8l 32 "${big[@]}"
    # last, the backbone alone with x in f32 for its GEMVs (HC_CUDA_GEMV_INT8=0), the default's alternative
    bench llama3-8b-8l-f16 "$models/llama3-8b-8l.gguf" --sched none \
      && bench llama3-8b-8l-w3-b10 "$models/llama3-8b-8l.w3.gguf" --sched none,serial,async \
      && bench llama3-8b-8l-w3-b10-ctl "$models/llama3-8b-8l.w3.gguf" --sched none,async --host-budget "$ctl_budget" -n "$n_ctl" \
      && bench_flags llama3-8b-8l-w3-b10-flags "$models/llama3-8b-8l.w3.gguf" --sched none,async \
      && HC_CUDA_GRAPH_OPS=0 bench llama3-8b-8l-w3-b10-nographs "$models/llama3-8b-8l.w3.gguf" --sched none \
      && HC_CUDA_GEMV_INT8=0 bench llama3-8b-8l-w3-b10-f32x "$models/llama3-8b-8l.w3.gguf" --sched none
    rc=$?
  elif [ "$rc" != 124 ]; then
    fail "the Llama-3-8B-shaped model could not be made (see gpu_check.log)"
  fi
  optional=0
  if [ "$rc" = 124 ]; then
    record llama3-8b-shape "\"stopped at the deadline of ${deadline}s (HC_GPU_CHECK_DEADLINE_S)\""
    say "the Llama-3-8B shape was stopped at the deadline of ${deadline}s"
  fi
fi
# extras, after the 8B shape (optional, within the budget): graphs between the branches' hand-offs
# (stretches of 2 ops; the default needs 8), and the SmolLM2 shape by flags, without graphs, and with
# a launch per op (HC_CUDA_FUSE=0: no add_rmsnorm, rope_qk, rope_store, matmul_set, add_set or merge_set,
# no merge or publish folded into the ops beside it: 6 launches and 2 copies more a layer, 9 more with
# branches by events, 16 by flags)
if ! skip_optional extras "the extras (comparisons and benches)"; then
  optional=1
  [ -z "${HC_CUDA_GRAPH_OPS:-}" ] && HC_CUDA_GRAPH_OPS=2 compare smollm2-w3-b10-serial-graphs2 w3 "$models/smollm2.w3.gguf" --sched serial
  bench_flags smollm2-w3-b10-flags "$models/smollm2.w3.gguf" --sched none,async
  HC_CUDA_GRAPH_OPS=0 bench smollm2-w3-b10-nographs "$models/smollm2.w3.gguf" --sched none
  HC_CUDA_FUSE=0 bench smollm2-w3-b10-unfused "$models/smollm2.w3.gguf" --sched none
  optional=0
fi
# the Qwen3-30B-A3B shape (optional, last, within the budget): a MoE of the size people run, its experts
# routed on the device and the routed experts' branches on the host
if ! skip_optional qwen3-30b-a3b-shape "the Qwen3-30B-A3B shape"; then
  optional=1
  make_model q30b-4l "${q30[@]}"
  rc=$?
  if [ "$rc" = 0 ]; then
    depth q30b-4l 48 "${q30[@]}"
    compare q30b-4l-w3-b10 w3 "$models/q30b-4l.w3.gguf" -n 16
    # a prompt of 100 tokens: 800 rows, routed on the device and sorted by expert (up to 1024 rows)
    compare q30b-4l-w3-b10-p100 w3 "$models/q30b-4l.w3.gguf" -n 8 -p 100
    # the prefill of 128 tokens (1024 rows) routed on the device (the default), and on the host
    # (--moe-device-rows 64): their tok/s say which is faster (HC_MOE_DEVICE_ROWS_PER_EXPERT, moe.h)
    bench q30b-4l-f16 "$models/q30b-4l.gguf" --sched none \
      && bench q30b-4l-w3-b10 "$models/q30b-4l.w3.gguf" --sched none,serial,async \
      && bench q30b-4l-w3-b10-hostrouted "$models/q30b-4l.w3.gguf" --sched none --moe-device-rows 64 \
      && bench q30b-4l-w3-b10-ctl "$models/q30b-4l.w3.gguf" --sched none,async --host-budget "$ctl_budget" -n "$n_ctl"
    rc=$?
  elif [ "$rc" != 124 ]; then
    fail "the Qwen3-30B-A3B-shaped model could not be made (see gpu_check.log)"
  fi
  optional=0
  [ "$rc" = 124 ] && record qwen3-30b-a3b-shape "\"stopped at the deadline of ${deadline}s (HC_GPU_CHECK_DEADLINE_S)\""
fi
# every step left its result: a missing or failed one fails the run
python3 - "$jsonl" "$skip8b" <<'PY' >> "$log" 2>&1 || fail "results.jsonl lacks results (see gpu_check.log)"
import json, sys
got = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    got[r["label"]] = r["result"]
want = ["compress-smollm2", "logits-smollm2-f16", "logits-smollm2-w3-b10", "logits-smollm2-w3-b10-kvf16",
        "logits-smollm2-f16-long", "logits-smollm2-w3-b10-long", "bench-smollm2-w3-b10", "bench-smollm2-f16",
        "compress-moe", "logits-moe-f16", "logits-moe-w3-b10", "logits-moe-f16-p30", "logits-moe-w3-b10-p30"]
if sys.argv[2] != "1" and not isinstance(got.get("llama3-8b-shape"), str):
    want += ["compress-llama3-8b-8l", "bench-llama3-8b-8l-f16", "bench-llama3-8b-8l-w3-b10"]
bad = [w for w in want if not isinstance(got.get(w), dict)]
if bad:
    print("gpu_check: no result for", ", ".join(bad))
    sys.exit(1)
PY
finish
exit $failed
