#!/usr/bin/env bash
# bench_speed.sh: the README's speed figures: SmolLM2-135M decode/prompt tok/s at 1 and 2 threads,
# the W3 + 10% branch model under each scheduler, the same with a 4-bit output head, a MoE model
# (the controller: bench_controller.sh).
# Usage: scripts/bench_speed.sh [BUILD_DIR]   (run it on an otherwise idle machine; JSON lines to $OUT)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
shared=${HC_SHARED_DIR:-$root/../shared}
out=${OUT:-$root/models/bench_speed.jsonl}
src=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
w3=${W3_MODEL:-$root/models/SmolLM2-135M-Instruct.w3.hc.gguf}
w3h4=${W3H4_MODEL:-$root/models/SmolLM2-135M-Instruct.w3h4.hc.gguf}
moe=$root/models/synth-qwen3moe-1024.w4.hc.gguf
[ -f "$src" ] || bash "$root/scripts/fetch_model.sh"
mkdir -p "$(dirname "$out")"
: > "$out"

run() { # label, bench arguments...
  local label=$1
  shift
  echo "== $label: hcinfer bench $*" >&2
  printf '{"label": "%s", "bench": ' "$label" >> "$out"
  "$hc" bench "$@" --json | tr -d '\n' >> "$out"
  echo "}" >> "$out"
}

run q4_1-t1 -m "$src" --sched none -t 1 -n 128 -p 128
run q4_1-t2 -m "$src" --sched none -t 2 -n 128 -p 128
run q4_1-f32-t1 -m "$src" --sched none -t 1 -n 64 -p 64 --f32

calib=()
[ -f "$shared/eval/wiki.valid.tokens" ] && calib=(--calib "$shared/eval/wiki.valid.tokens" --calib-tokens 4096)
if [ ! -f "$w3" ]; then
  t0=$(date +%s.%N)
  "$hc" compress -m "$src" -o "$w3" --quant rtn:bits=3,group=128 --budget 10 "${calib[@]}" -t 2
  echo "compress: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
fi
run w3-b10-t1h1 -m "$w3" --sched none,serial,async,inline -t 1 --host-threads 1 -n 128
run w3-b10-t2-inline -m "$w3" --sched none,inline -t 2 -n 128
# the same with the output head (the tied embedding, 30 MB in Q8_0: 40% of the bytes a token reads)
# in 4 bits, groups of 32; branches within 10% of this smaller backbone (the head gets one too)
[ -f "$w3h4" ] || "$hc" compress -m "$src" -o "$w3h4" --quant rtn:bits=3,group=128 --head-quant rtn:bits=4,group=32 \
  --budget 10 "${calib[@]}" -t 2
run w3h4-b10-t1h1 -m "$w3h4" --sched none,serial,async,inline -t 1 --host-threads 1 -n 128
run w3h4-b10-t2-inline -m "$w3h4" --sched none,inline -t 2 -n 128
# the rank controller with a slowed host: scripts/bench_controller.sh

if [ ! -f "$moe" ]; then   # random weights shaped like a small MoE (16 experts, top-2, dim 1024), W4 + 10% branches
  "$hc" synth --arch qwen3moe --dim 1024 --layers 4 --experts 16 --top-k 2 --expert-ffn 512 --heads 16 --kv-heads 4 \
    --vocab 32000 --seed 1 --type f16 -o "${moe%.w4.hc.gguf}.gguf"
  "$hc" compress -m "${moe%.w4.hc.gguf}.gguf" -o "$moe" --quant rtn:bits=4,group=128 --budget 10 -t 2
fi
run moe-t1h1 -m "$moe" --sched none,serial,async,inline -t 1 --host-threads 1 -n 64 -p 32
echo "bench_speed: results in $out" >&2
