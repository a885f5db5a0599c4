#!/usr/bin/env bash
# frontier.sh: the accuracy frontier of SmolLM2-135M-Instruct: WikiText-2 test perplexity (20 chunks
# of 512) against the bytes the device holds, for hcinfer's backbones with and without branches and,
# when llama.cpp's llama-quantize is found, llama.cpp's Q4_0 and Q3_K_M of the same model. Writes
# one JSON line per configuration to scripts/results/frontier.jsonl, then draws it (scripts/plot.py).
# Usage: scripts/frontier.sh [BUILD_DIR]  (env: CONFIGS, LLAMA_QUANTIZE, WORK, THREADS, LIMIT_PPL;
# KEEP=1: the rows of configurations not in CONFIGS stay in frontier.jsonl, those in it are replaced)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
shared=${HC_SHARED_DIR:-$root/../shared}
work=${WORK:-$root/models/frontier}
out=$root/scripts/results/frontier.jsonl
t=${THREADS:-2} lp=${LIMIT_PPL:-20}
src=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -x "$hc" ] || { echo "frontier: $hc is not built (cmake --build build)" >&2; exit 1; }
[ -f "$src" ] || bash "$root/scripts/fetch_model.sh"
[ -f "$shared/eval/wiki.test.tokens" ] || { echo "frontier: $shared/eval is absent" >&2; exit 1; }
quantize=${LLAMA_QUANTIZE:-$(find /tmp -maxdepth 7 -name llama-quantize -type f -perm -u+x 2>/dev/null | head -n 1)}
mkdir -p "$work" "$(dirname "$out")"
configs=${CONFIGS:-"source llama-q4_0 llama-q3_k_m w4 w4-10 w3 w3-10 g4 g4-10 g3j g3j-10 g3l g3l-10 g3l32 g3l32-10 g3m g3m-10 g3mu g3mu-10"}
calib=(--calib "$shared/eval/wiki.valid.tokens" --calib-tokens 4096)
# w3, w4: rtn g128; g4: the default backbone (gptq W4 g128, act order, scale search); g3j: gptq W3
# g128 with search and --joint 2 (both on 8192 calibration tokens, as scripts/accuracy_table.sh
# makes them: its w4-gptq-s and w3-gptq-s-j2); g3l, g3l32: g3j with q8_0 branches ranked greedily on
# losses measured on 2048 tokens, up to rank 256, in groups of 128 and 32 (w3-gptq-s-j2-q8-g2048-r256
# and its -G32); g3m, g3mu: g3l with attn_k, attn_v, attn_output, ffn_down (and ffn_up) in 4 bits
# (--tensor-quant; accuracy_table's -M4vodk, -M4vodku). A name without -10 is its file with --no-comp.
gptq_args() {
  local best="--joint 2 --branch-dtype q8_0 --policy greedy --sens-tokens 2048 --rank-max 256"
  local w4=gptq:bits=4,group=128,act_order=1,search=1 t
  case $1 in
    g3m|g3mu)
      echo -n "--quant gptq:bits=3,group=128,act_order=1,search=1 $best"
      for t in attn_v attn_output ffn_down attn_k $([ "$1" = g3mu ] && echo ffn_up); do echo -n " --tensor-quant $t=$w4"; done
      echo;;
    g4) echo "--quant gptq:bits=4,group=128,act_order=1,search=1";;
    g3j) echo "--quant gptq:bits=3,group=128,act_order=1,search=1 --joint 2";;
    g3l) echo "--quant gptq:bits=3,group=128,act_order=1,search=1 $best";;
    g3l32) echo "--quant gptq:bits=3,group=32,act_order=1,search=1 $best";;
  esac
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for c in $configs; do
  model=$work/$c.gguf run=()
  case $c in
    source) model=$src;;
    llama-*)
      if [ -z "$quantize" ]; then echo "frontier: $c skipped: no llama-quantize (set LLAMA_QUANTIZE)" >&2; continue; fi
      type=${c#llama-}
      [ -f "$model" ] || "$quantize" --allow-requantize "$src" "$model" "${type^^}" "$t" >/dev/null 2>&1;;
    w4|w3) model=$work/$c-10.gguf run=(--no-comp);;&
    w4*|w3*)
      bits=${c:1:1}
      [ -f "$model" ] || "$hc" compress -m "$src" -o "$model" --quant "rtn:bits=$bits,group=128" --budget 10 "${calib[@]}" -t "$t" >&2;;
    g4|g3j|g3l|g3l32|g3m|g3mu) model=$work/$c-10.gguf run=(--no-comp);;&
    g4*|g3j*|g3l*|g3m*)
      # shellcheck disable=SC2046
      [ -f "$model" ] || "$hc" compress -m "$src" -o "$model" $(gptq_args "${c%-10}") --budget 10 \
        --calib "$shared/eval/wiki.valid.tokens" --calib-tokens 8192 -t "$t" >&2;;
    *) echo "frontier: unknown configuration $c" >&2; exit 1;;
  esac
  echo "frontier: $c" >&2
  line=$("$hc" eval -m "$model" "${run[@]}" --ppl "$shared/eval/wiki.test.tokens" --limit "$lp" -t "$t" --json 2>/dev/null)
  printf '{"config": "%s", %s\n' "$c" "${line#\{}" >>"$tmp"
done
if [ "${KEEP:-0}" = 1 ] && [ -f "$out" ]; then   # the other configurations' rows kept, in their order
  python3 - "$out" "$tmp" <<'EOF2'
import json, sys
old = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
new = {r["config"]: r for r in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
rows = [new.pop(r["config"], r) for r in old] + list(new.values())
with open(sys.argv[2], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
EOF2
fi
mv "$tmp" "$out"
trap - EXIT
echo "frontier: wrote $out" >&2
python3 "$root/scripts/plot.py" frontier "$out" "$root/scripts/results/frontier.png"
