#!/usr/bin/env bash
# eval_table.sh: the accuracy table of the README: SmolLM2-135M-Instruct (reference: the Q4_1 GGUF
# dequantized to f32) against W3/W2 RTN backbones with plain and activation-aware branches at
# several budgets: WikiText-2 perplexity, ARC-Easy, PIQA and LAMBADA. Writes one JSON line per
# configuration to $OUT (default eval_table.jsonl) and prints a Markdown table at the end.
# Usage: scripts/eval_table.sh [BUILD_DIR]   (env: LIMIT_PPL, LIMIT_MC, LIMIT_LAMBADA, THREADS, CONFIGS,
#        CALIB_TOKENS, CALIB_SKIP: another draw of the calibration text, WORK: where the models go)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
shared=${HC_SHARED_DIR:-$root/../shared}
out=${OUT:-$root/eval_table.jsonl}
work=${WORK:-$root/models/eval}
lp=${LIMIT_PPL:-20} lm=${LIMIT_MC:-400} ll=${LIMIT_LAMBADA:-400} t=${THREADS:-1}
src=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$src" ] || bash "$root/scripts/fetch_model.sh"
[ -d "$shared/eval" ] || { echo "eval_table: $shared/eval is absent" >&2; exit 1; }
mkdir -p "$work"
calib=(--calib "$shared/eval/wiki.valid.tokens" --calib-tokens "${CALIB_TOKENS:-4096}" --calib-skip "${CALIB_SKIP:-0}")
selfcal=(--calib self --calib-tokens "${CALIB_TOKENS:-4096}")

# name | compress arguments ("" = the reference) | run arguments
configs=${CONFIGS:-"ref w3 w3-plain-5 w3-plain-10 w3-plain-20 w3-aware-5 w3-aware-10 w3-aware-20 w3-greedy-5 w3-greedy-10 w3-measured-5 w3-measured-10 w3-self-5 w3-self-10 w2 w2-plain-10 w2-aware-10 w2-aware-20"}

compress_args() {
  case $1 in
    ref) echo "";;
    w3) echo "--quant rtn:bits=3,group=128 --budget 0";;
    w2) echo "--quant rtn:bits=2,group=128 --budget 0";;
    w3-plain-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --whitening none";;
    w3-aware-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} ${calib[*]}";;
    w3-q8-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --branch-dtype q8_0 ${calib[*]}";;
    w3-q8measured-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --branch-dtype q8_0 --policy greedy --sens-tokens ${SENS_TOKENS:-256} ${calib[*]}";;
    w3-greedy-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --policy greedy ${calib[*]}";;
    w3-selfcal-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} ${selfcal[*]}";;
    w3-selfcalgreedy-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --policy greedy ${selfcal[*]}";;
    w3-measured-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --policy greedy --sens-tokens ${SENS_TOKENS:-256} ${calib[*]}";;
    w3-self-*) echo "--quant rtn:bits=3,group=128 --budget ${1##*-} --policy greedy --sens-tokens ${SENS_TOKENS:-512} --sens-source self ${calib[*]}";;
    w2-greedy-*) echo "--quant rtn:bits=2,group=128 --budget ${1##*-} --policy greedy ${calib[*]}";;
    w2-plain-*) echo "--quant rtn:bits=2,group=128 --budget ${1##*-} --whitening none";;
    w2-aware-*) echo "--quant rtn:bits=2,group=128 --budget ${1##*-} ${calib[*]}";;
    *) echo "eval_table: unknown configuration $1" >&2; exit 1;;
  esac
}

field() { grep -o "\"$1\": [0-9.e+-]*" | head -1 | cut -d' ' -f2; }

for name in $configs; do
  if [ "$name" = ref ]; then model=$src; run=(--f32)
  else
    model=$work/$name.gguf; run=()
    # shellcheck disable=SC2046
    [ -f "$model" ] || $hc compress -m "$src" -o "$model" $(compress_args "$name") -t "$t" 2> "$work/$name.log"
  fi
  ppl=$($hc eval -m "$model" "${run[@]}" --ppl "$shared/eval/wiki.test.tokens" --limit "$lp" --json --no-progress -t "$t" | field ppl)
  arc=$($hc eval -m "$model" "${run[@]}" --mc "$shared/eval/arc_easy.jsonl" --limit "$lm" --json --no-progress -t "$t")
  piqa=$($hc eval -m "$model" "${run[@]}" --mc "$shared/eval/piqa.jsonl" --limit "$lm" --json --no-progress -t "$t")
  lam=$($hc eval -m "$model" "${run[@]}" --lambada "$shared/eval/lambada_openai.jsonl" --limit "$ll" --json --no-progress -t "$t")
  bytes=$(stat -c %s "$model")
  printf '{"config": "%s", "file_bytes": %s, "ppl": %s, "arc_acc": %s, "arc_acc_norm": %s, "piqa_acc": %s, "piqa_acc_norm": %s, "lambada_acc": %s}\n' \
    "$name" "$bytes" "$ppl" "$(echo "$arc" | field acc)" "$(echo "$arc" | field acc_norm)" "$(echo "$piqa" | field acc)" \
    "$(echo "$piqa" | field acc_norm)" "$(echo "$lam" | field acc)" | tee -a "$out"
done

echo
echo "| config | file MiB | WikiText-2 ppl | ARC-Easy acc | PIQA acc | mean(ARC,PIQA) | LAMBADA acc |"
echo "|---|---|---|---|---|---|---|"
awk -F'[:,}]' '{ for (i = 1; i < NF; i++) { gsub(/[ "{]/, "", $i); v[$i] = $(i+1) } gsub(/[ "]/, "", v["config"]);
  printf "| %s | %.1f | %.2f | %.1f | %.1f | %.1f | %.1f |\n", v["config"], v["file_bytes"]/1048576, v["ppl"], 100*v["arc_acc"],
  100*v["piqa_acc"], 50*(v["arc_acc"]+v["piqa_acc"]), 100*v["lambada_acc"] }' "$out"
