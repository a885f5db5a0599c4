#!/usr/bin/env bash
# accuracy_table.sh: the backbone methods of issue 24 at W3 and W4 g128 (rtn, rtn with the grid
# search, GPTQ, GPTQ with search, --joint, q8_0 branches, greedy ranks): perplexity, device bytes,
# compression time, ARC/PIQA.
# Each configuration is compressed once (10% branches, 8192 tokens of WikiText-2 *validation*) and
# measured with and without its branches (--no-comp): WikiText-2 test perplexity over LIMIT_PPL
# chunks of 512, and with MC=1 ARC-Easy and PIQA on the full sets (acc). One JSON line per
# configuration and mode goes to $OUT (default scripts/results/accuracy.jsonl); a Markdown table
# is printed at the end. Usage: scripts/accuracy_table.sh [BUILD_DIR]
# (env: CONFIGS, MC=0|1, MC_CONFIGS, LIMIT_PPL, THREADS, WORK: where the models go, default
# /tmp/acc-models; a model already there is measured, not compressed again)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
shared=${HC_SHARED_DIR:-$root/../shared}
out=${OUT:-$root/scripts/results/accuracy.jsonl}
work=${WORK:-/tmp/acc-models}
lp=${LIMIT_PPL:-20} t=${THREADS:-2} mc=${MC:-0}
src=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$src" ] || bash "$root/scripts/fetch_model.sh"
[ -d "$shared/eval" ] || { echo "accuracy_table: $shared/eval is absent" >&2; exit 1; }
mkdir -p "$work" "$(dirname "$out")"
calib=(--calib "$shared/eval/wiki.valid.tokens" --calib-tokens 8192)

configs=${CONFIGS:-"w3-rtn w3-rtn-s w3-gptq w3-gptq-s w3-rtn-s-j2 w3-gptq-s-j2 w3-gptq-s-j2-q8-g w3-gptq-s-j2-q8-g2048-r256
  w4-rtn w4-rtn-s w4-gptq w4-gptq-s w4-gptq-s-j2 w4-gptq-s-q8-g w4-gptq-s-q8-g2048-r256"}
mc_configs=${MC_CONFIGS:-$configs}   # with MC=1: the configurations that also get ARC-Easy and PIQA

# name -> compress arguments: w<bits>-<method>[-s: search=1][-j<N>: --joint N][-q8: q8_0 branches,
# else f16][-g: the greedy policy on relative errors, else uniform][-g<N>: greedy on losses measured on
# N tokens][-r<N>: --rank-max N][-G<N>: quantization groups of N columns, else 128][-a: --awq]
# [-M<B><letters>: the layers named by the letters (q k v o: attn_q/k/v/output, g u d: ffn_gate/up/down)
# in B bits, the rest of the spec alike: --tensor-quant, e.g. -M4vd]
compress_args() {
  local name=$1 bits=${1:1:1} method spec extra="" part dtype=f16 policy=uniform group=128 search="" mixed="" mbits="" l
  method=$(echo "$name" | cut -d- -f2)
  case $method in
    rtn|gptq) ;;
    *) echo "accuracy_table: unknown configuration $name" >&2; exit 1;;
  esac
  for part in $(echo "$name" | cut -d- -f3- | tr - ' '); do
    case $part in
      s) search=",search=1";;
      j[0-9]*) extra="$extra --joint ${part#j}";;
      q8) dtype=q8_0;;
      g) policy=greedy;;
      g[0-9]*) policy=greedy extra="$extra --sens-tokens ${part#g}";;
      r[0-9]*) extra="$extra --rank-max ${part#r}";;
      G[0-9]*) group=${part#G};;
      a) extra="$extra --awq";;
      M[2-8]*) mbits=${part:1:1} mixed=${part:2};;
      *) echo "accuracy_table: unknown part $part of $name" >&2; exit 1;;
    esac
  done
  spec="$method:bits=$bits,group=$group"
  [ "$method" = gptq ] && spec="$spec,act_order=1"
  spec="$spec$search"
  for ((l = 0; l < ${#mixed}; l++)); do
    local tensor
    case ${mixed:$l:1} in
      q) tensor=attn_q;; k) tensor=attn_k;; v) tensor=attn_v;; o) tensor=attn_output;;
      g) tensor=ffn_gate;; u) tensor=ffn_up;; d) tensor=ffn_down;;
      *) echo "accuracy_table: unknown layer letter ${mixed:$l:1} in $name" >&2; exit 1;;
    esac
    extra="$extra --tensor-quant $tensor=${spec/bits=$bits/bits=$mbits}"
  done
  echo "--quant $spec --budget 10 --branch-dtype $dtype --policy $policy$extra ${calib[*]}"
}

field() { grep -o "\"$1\": [0-9.e+-]*" | head -1 | cut -d' ' -f2; }

for name in $configs; do
  model=$work/$name.gguf
  # shellcheck disable=SC2046
  [ -f "$model" ] || $hc compress -m "$src" -o "$model" $(compress_args "$name") -t "$t" 2> "$work/$name.log"
  secs=$(grep -o 'in [0-9.]* s (calibration [0-9.]* s' "$work/$name.log" | awk '{ print $2, $5 }')
  for mode in comp bare; do
    run=()
    [ $mode = bare ] && run=(--no-comp)
    line=$($hc eval -m "$model" "${run[@]}" --ppl "$shared/eval/wiki.test.tokens" --limit "$lp" --json --no-progress -t "$t")
    arc=null piqa=null
    if [ "$mc" = 1 ] && [[ " $mc_configs " == *" $name "* ]]; then
      arc=$($hc eval -m "$model" "${run[@]}" --mc "$shared/eval/arc_easy.jsonl" --json --no-progress -t "$t" | field acc)
      piqa=$($hc eval -m "$model" "${run[@]}" --mc "$shared/eval/piqa.jsonl" --json --no-progress -t "$t" | field acc)
    fi
    printf '{"config": "%s", "mode": "%s", "args": "%s", "backbone_bytes": %s, "branch_bytes": %s, "ppl": %s, "seconds_total": %s, "seconds_calib": %s, "arc_acc": %s, "piqa_acc": %s}\n' \
      "$name" "$mode" "$(compress_args "$name")" "$(echo "$line" | field backbone_bytes)" "$(echo "$line" | field branch_bytes)" \
      "$(echo "$line" | field ppl)" "${secs% *}" "${secs#* }" "$arc" "$piqa" | tee -a "$out"
  done
done

echo
echo "| config | mode | device MB | ppl (20 chunks) | compress s (of which calib) | ARC-Easy | PIQA | mean |"
echo "|---|---|---|---|---|---|---|---|"
python3 - "$out" <<'EOF'
import json, sys
rows = {}   # the last line of each configuration and mode, in the order they first came
for l in open(sys.argv[1]):
    r = json.loads(l)
    rows[(r["config"], r["mode"])] = r
for r in rows.values():
    mc = r["arc_acc"] is not None
    mean = 50 * (r["arc_acc"] + r["piqa_acc"]) if mc else None
    print("| %s | %s | %.1f | %.2f | %.0f (%.0f) | %s | %s | %s |" % (r["config"], r["mode"], r["backbone_bytes"] / 1e6, r["ppl"],
          r["seconds_total"], r["seconds_calib"], "%.2f" % (100 * r["arc_acc"]) if mc else "-",
          "%.2f" % (100 * r["piqa_acc"]) if mc else "-", "%.2f" % mean if mc else "-"))
EOF
