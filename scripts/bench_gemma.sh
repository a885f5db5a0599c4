#!/usr/bin/env bash
# bench_gemma.sh: decode and prompt speed of Gemma 3 270M in hcinfer against llama.cpp's llama-bench on
# the same file, alternated in one run (ROUNDS rounds of each, THREADS threads); prints uptime around.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-$root/models/gemma-3-270m-q4_k_m.gguf}
llama_bench=${LLAMA_BENCH:-$(command -v llama-bench || true)}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
n=${N_DECODE:-128}
p=${N_PROMPT:-128}
[ -f "$model" ] || { echo "bench_gemma: skipped: $model is absent (scripts/fetch_model.sh gemma3)"; exit 0; }
[ -x "$llama_bench" ] || { echo "bench_gemma: skipped: no llama-bench (set LLAMA_BENCH=/path/to/llama-bench)"; exit 0; }
echo "bench_gemma: $(uptime)"
for r in $(seq "$rounds"); do
  echo "--- round $r: hcinfer bench -m $model --sched none -t $threads -n $n -p $p"
  "$root/build/bin/hcinfer" bench -m "$model" --sched none -t "$threads" -n "$n" -p "$p" 2>&1 | grep -E "^none|decode|prompt" || true
  echo "--- round $r: llama-bench -m $model -t $threads -n $n -p $p"
  "$llama_bench" -m "$model" -t "$threads" -n "$n" -p "$p" -r 3 2>/dev/null | grep -E "gemma|model" || true
done
echo "bench_gemma: $(uptime)"
