#!/usr/bin/env bash
# demo.sh: the main job on a fresh machine: install the build dependencies, build hcinfer, fetch
# SmolLM2-135M-Instruct, compress it to a 3-bit backbone (GPTQ with act order and searched scales,
# two rounds quantized knowing the branch) + 8-bit low-rank branches within a 10% budget, ranked
# by each layer's measured loss (about 7 minutes on 2 cores; HC_DEMO_QUANT=SPEC compresses with
# that backbone and compress's defaults instead, e.g. in a minute), answer
# a question with and without the branches, and report perplexity with and without.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${HC_SHARED_DIR:-$root/../shared}
quant=${HC_DEMO_QUANT:-}
budget=${HC_DEMO_BUDGET:-10}
threads=${HC_DEMO_THREADS:-2}

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bash scripts/fetch_model.sh
hc=build/bin/hcinfer
src=models/SmolLM2-135M-Instruct.Q4_1.gguf
out=models/SmolLM2-135M-Instruct.hc.gguf
label=${quant:-W3 GPTQ g128 (joint 2)}

calib=()
if [ -f "$shared/eval/wiki.valid.tokens" ]; then
  calib=(--calib "$shared/eval/wiki.valid.tokens")
  sens=(--sens-tokens 2048)
else
  echo "demo: $shared/eval is absent: calibrating on text the model samples itself (--calib self)"
  calib=(--calib self)
  sens=(--sens-tokens 2048 --sens-source self)
fi
if [ -n "$quant" ]; then
  qargs=(--quant "$quant")
else  # the best 3-bit configuration of scripts/RESULTS-accuracy.md (73.6 MB on the device)
  qargs=(--quant gptq:bits=3,group=128,act_order=1,search=1 --joint 2 --branch-dtype q8_0 --policy greedy
         "${sens[@]}" --rank-max 256)
fi
echo "== compress: $label + branches within ${budget}% of it"
$hc compress -m "$src" -o "$out" "${qargs[@]}" --budget "$budget" "${calib[@]}" -t "$threads"

q="What is the capital of France?"
echo "== run: $q (greedy, 48 tokens at most)"
echo "-- the source model (Q4_1):"
$hc run -m "$src" --chat -p "$q" -n 48 --temp 0
echo "-- $label alone (--no-comp):"
$hc run -m "$out" --chat -p "$q" -n 48 --temp 0 --no-comp
echo "-- $label + branches (default scheduler: inline, the device threads compute them):"
$hc run -m "$out" --chat -p "$q" -n 48 --temp 0

if [ -f "$shared/eval/wiki.test.tokens" ]; then
  echo "== report: WikiText-2 test perplexity on a slice (4 chunks of 512 tokens)"
  ppl() { $hc eval -m "$1" "${@:2}" --ppl "$shared/eval/wiki.test.tokens" --limit 4 --json --no-progress \
            | grep -o '"ppl": [0-9.]*' | cut -d' ' -f2; }
  ref=$(ppl "$src" --f32)
  bare=$(ppl "$out" --no-comp)
  comp=$(ppl "$out")
  printf '  %-44s %8s\n' "reference (Q4_1 dequantized to f32)" "$ref" "$label alone (--no-comp)" "$bare" \
    "$label + branches" "$comp"
  awk -v r="$ref" -v b="$bare" -v c="$comp" 'BEGIN { if (b > r) printf "  the branches close %.0f%% of the gap to the reference\n", 100 * (b - c) / (b - r) }'
else
  echo "demo: $shared/eval is absent: no perplexity report"
fi
