#!/usr/bin/env bash
# bench_roofline.sh: decode and prefill speed against this machine's read bandwidth (the memory
# roofline of decoding) at SmolLM2-135M and the Llama-3.2-1B, 3B and Llama-3-8B shapes, beside llama.cpp.
#
# Usage: scripts/bench_roofline.sh [BUILD_DIR]      (on an otherwise idle machine)
# Environment:
#   SHAPES         which models, from: smollm2 (the shipped Q4_1), smollm2-q4_0 (it requantized to
#                  Q4_0 by llama-quantize), 1b 3b 8b (default: all five; smollm2-q4_0 with llama.cpp);
#                  and our own backbones with 10% branches: smollm2-w3, smollm2-w4 (models/frontier's
#                  w3-10.gguf, w4-10.gguf) and 1b-w3, 1b-w4, 3b-w3, ... (the shape's f16 synth made
#                  rtn:bits=N,group=128 + 10% by hcinfer compress (uniform f16 branches); a suffix
#                  gG picks groups of G = 32 or 64 instead, as in 8b-w3g32), calibrated
#                  on 512 tokens of wiki.valid; the output head in HEAD_QUANT, default rtn:bits=8,group=128: 8.25
#                  bits a weight against the 6.56 of llama.cpp's Q6_K head). These run hcinfer
#                  bench --sched none,inline (the branches on the device's own threads): the
#                  figures are with the branches, the backbone alone in brackets;
#                  llama.cpp runs the Q4_0 file of the same shape beside them.
#   THREADS        thread counts (default "1 2")
#   N_DECODE, N_PROMPT, REPS   decoded tokens, prompt tokens, repetitions (default 64, 128, 3)
#   PAIRS          run hcinfer bench and llama-bench one after the other this many times per model
#                  and thread count (default 1); medians are printed, the ratios are the medians of
#                  the pairs' ratios (on a busy machine: a drift touches both sides of a pair alike)
#   MODELS_DIR     where the synthetic models are made and kept (default: models/); an 8B f16
#                  intermediate needs 16 GB free there for a while (the *-w3/w4 shapes keep it,
#                  as synth-llama-SHAPE.f16.gguf, for both bit widths)
#   CALIB          calibration text of the *-w3/w4 shapes (default ../shared/eval/wiki.valid.tokens)
#   LLAMA_CPP_BIN  a folder with llama.cpp's llama-bench and llama-quantize (default: the first of
#                  ../llama.cpp/build/bin, /tmp/llama.cpp/build/bin that has them). Without it the
#                  synthetic shapes are written in Q8_0 by hcinfer synth and there is no comparison.
#   OUT            JSON lines, one per model and thread count (default models/bench_roofline.jsonl)
#   PREPARE_ONLY   1: make the models of SHAPES (the slow part: an 8B shape takes many minutes) and
#                  stop, so that a later run times an idle machine
# llama.cpp beside the project, as the figures were made: llama-cpp-python 0.3.36's sdist holds
# it (pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36, untar), built with
#   cmake -S vendor/llama.cpp -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
#   cmake --build build -j2 --target llama-bench llama-quantize
#
# The synthetic models have random weights shaped like the real ones (hcinfer synth, f16), made
# Q4_0 by llama-quantize (which keeps the output head in Q6_K): hcinfer and llama-bench read the
# same file. The bandwidth is hc-bench-membw's (anonymous memory, huge pages, 16 KiB software
# prefetch, passes over 1 GiB), read before each pair at that thread count (the median of 3
# passes): this VM's bandwidth moves with its neighbours (2 threads: 50 to 83 GB/s within
# minutes). GB/s achieved = decode tok/s x the bytes a token reads; share = that / the median
# reading of the row.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
membw=$build/bin/hc-bench-membw
models=${MODELS_DIR:-$root/models}
shapes=${SHAPES:-smollm2 smollm2-q4_0 1b 3b 8b}
threads=${THREADS:-1 2}
n_decode=${N_DECODE:-64}
n_prompt=${N_PROMPT:-128}
reps=${REPS:-3}
pairs=${PAIRS:-1}
out=${OUT:-$root/models/bench_roofline.jsonl}
for f in "$hc" "$membw"; do
  [ -x "$f" ] || { echo "bench_roofline: $f is missing (build the project first)" >&2; exit 1; }
done
command -v jq > /dev/null || { echo "bench_roofline: needs jq" >&2; exit 1; }

llama_bin=${LLAMA_CPP_BIN:-}
if [ -z "$llama_bin" ]; then
  for d in "$root/../llama.cpp/build/bin" /tmp/llama.cpp/build/bin; do
    [ -x "$d/llama-bench" ] && [ -x "$d/llama-quantize" ] && { llama_bin=$d; break; }
  done
fi
[ -n "$llama_bin" ] && [ ! -x "$llama_bin/llama-bench" ] && { echo "bench_roofline: no llama-bench in $llama_bin" >&2; exit 1; }
[ -z "$llama_bin" ] && shapes=${shapes//smollm2-q4_0/}
mkdir -p "$models" "$(dirname "$out")"

# the arguments of hcinfer synth for a synthetic shape
synth_args() {
  case $1 in
    1b) echo "--dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --vocab 128256" ;;
    3b) echo "--dim 3072 --layers 28 --heads 24 --kv-heads 8 --ffn 8192 --vocab 128256" ;;
    8b) echo "--dim 4096 --layers 32 --heads 32 --kv-heads 8 --ffn 14336 --vocab 128256" ;;
    *) echo "bench_roofline: unknown shape $1 (1b 3b 8b)" >&2; exit 1 ;;
  esac
}

# our own backbone of a shape (smollm2-w3, 1b-w4, 8b-w3g32, ...): its file (made when missing)
ours_of() {
  local shape=$1 base=${1%-w*} spec=${1##*-w} bits group=128
  bits=${spec%%g*}
  [[ $spec == *g* ]] && group=${spec#*g}
  case $bits in 3|4) ;; *) echo "bench_roofline: unknown shape $shape (BASE-w3 or BASE-w4, then gGROUP)" >&2; exit 1 ;; esac
  case $group in 32|64|128) ;; *) echo "bench_roofline: $shape: the group must be 32, 64 or 128" >&2; exit 1 ;; esac
  if [ "$base" = smollm2 ]; then
    [ "$group" = 128 ] || { echo "bench_roofline: $shape: SmolLM2's backbones are models/frontier's, in groups of 128" >&2; exit 1; }
    echo "$root/models/frontier/w$bits-10.gguf"
    return
  fi
  local f16=$models/synth-llama-$base.f16.gguf head=${HEAD_QUANT:-rtn:bits=8,group=128}
  local f=$models/synth-llama-$base.w${bits}g${group}-h$(echo "$head" | tr -c 'a-z0-9\n' '-')-10.gguf
  if [ ! -f "$f" ]; then
    if [ ! -f "$f16" ]; then
      echo "== making $f16 (hcinfer synth f16, kept for the other bit width)" >&2
      # shellcheck disable=SC2046
      "$hc" synth --arch llama $(synth_args "$base") --type f16 -o "$f16" >&2
    fi
    echo "== making $f (hcinfer compress rtn:bits=$bits,group=$group, head $head, 10% branches)" >&2
    "$hc" compress -m "$f16" -o "$f" --quant "rtn:bits=$bits,group=$group" --head-quant "$head" --budget 10 \
      --policy uniform --branch-dtype f16 \
      --calib "${CALIB:-$root/../shared/eval/wiki.valid.tokens}" --calib-tokens 512 >&2
  fi
  echo "$f"
}

# the synthetic model of a shape: its file (made when missing)
model_of() {
  local shape=$1 args
  case $shape in
    smollm2)
      local f=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
      [ -f "$f" ] || bash "$root/scripts/fetch_model.sh" >&2
      echo "$f"
      return ;;
    smollm2-q4_0)   # the shipped Q4_1 requantized to Q4_0 by llama-quantize: llama.cpp's fastest 4-bit type
      local src=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf f=$models/SmolLM2-135M-Instruct.q4_0-requant.gguf
      [ -n "$llama_bin" ] || { echo "bench_roofline: smollm2-q4_0 needs llama-quantize" >&2; exit 1; }
      [ -f "$src" ] || bash "$root/scripts/fetch_model.sh" >&2
      [ -f "$f" ] || "$llama_bin/llama-quantize" --allow-requantize "$src" "$f" Q4_0 > /dev/null 2>&1 ||
        { rm -f "$f"; echo "llama-quantize failed" >&2; exit 1; }
      echo "$f"
      return ;;
    1b|3b|8b) args=$(synth_args "$shape") ;;
    *) echo "bench_roofline: unknown shape $shape (smollm2 smollm2-q4_0 1b 3b 8b, BASE-w3, BASE-w4)" >&2; exit 1 ;;
  esac
  local q=$models/synth-llama-$shape.q4_0.gguf q8=$models/synth-llama-$shape.q8_0.gguf
  if [ -n "$llama_bin" ]; then
    if [ ! -f "$q" ]; then
      local f16=$models/synth-llama-$shape.f16.tmp.gguf
      echo "== making $q (hcinfer synth f16, llama-quantize Q4_0)" >&2
      # shellcheck disable=SC2086
      "$hc" synth --arch llama $args --type f16 -o "$f16" >&2
      "$llama_bin/llama-quantize" "$f16" "$q" Q4_0 > /dev/null 2>&1 || { rm -f "$f16" "$q"; echo "llama-quantize failed" >&2; exit 1; }
      rm -f "$f16"
    fi
    echo "$q"
  else
    if [ ! -f "$q8" ]; then
      echo "== making $q8 (hcinfer synth q8_0: no llama-quantize for Q4_0)" >&2
      # shellcheck disable=SC2086
      "$hc" synth --arch llama $args --type q8_0 -o "$q8" >&2
    fi
    echo "$q8"
  fi
}

# the models of every shape, made before any timing (PREPARE_ONLY=1 stops here)
for shape in $shapes; do
  case $shape in
    *-w3|*-w4|*-w3g*|*-w4g*)
      ours_of "$shape" > /dev/null
      base=${shape%-w*}
      [ "$base" = smollm2 ] && base=smollm2-q4_0
      [ -n "$llama_bin" ] && model_of "$base" > /dev/null ;;
    *) model_of "$shape" > /dev/null ;;
  esac
done
[ "${PREPARE_ONLY:-0}" = 1 ] && { echo "bench_roofline: the models of $shapes are ready in $models" >&2; exit 0; }
: > "$out"

echo "== read bandwidth (hc-bench-membw)" >&2
bw_json=$("$membw" --threads "$(echo $threads | tr ' ' ',')" --json)
bw_of() { jq -r --argjson t "$1" '.gbs[.threads | index($t)]' <<< "$bw_json"; }
echo "{\"membw\": $bw_json, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >> "$out"

rows=()
for shape in $shapes; do
  ours=0 sched=none lm=
  case $shape in
    *-w3|*-w4|*-w3g*|*-w4g*)   # our backbone + branches; llama.cpp runs the same shape's Q4_0
      ours=1 sched=none,inline
      m=$(ours_of "$shape")
      base=${shape%-w*}
      [ "$base" = smollm2 ] && base=smollm2-q4_0
      [ -n "$llama_bin" ] && lm=$(model_of "$base") ;;
    *) m=$(model_of "$shape") lm=$m ;;
  esac
  for t in $threads; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    decs=() pres=() ldecs=() lpres=() bdecs=() bpres=() bws=()
    for ((p = 0; p < pairs; p++)); do
      # the bandwidth this machine gives now: it moves with its neighbours (2 threads: 50-74 GB/s)
      bws+=("$("$membw" --threads "$t" --reps 3 --json | jq -r '.gbs[0]')")
      echo "== $shape, $t thread(s): hcinfer bench --sched $sched (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      hj=$("$hc" bench -m "$m" --sched "$sched" -t "$t" -n "$n_decode" -p "$n_prompt" -r "$reps" --json 2> /dev/null)
      sel='.results[-1]'   # with branches when there are any (inline), else the backbone
      decs+=("$(jq -r "$sel.decode_tok_s" <<< "$hj")")
      pres+=("$(jq -r "$sel.prompt_tok_s" <<< "$hj")")
      bdecs+=("$(jq -r '.results[0].decode_tok_s' <<< "$hj")")
      bpres+=("$(jq -r '.results[0].prompt_tok_s' <<< "$hj")")
      bpt=$(jq -r "$sel.bytes_per_token" <<< "$hj")
      if [ -n "$llama_bin" ]; then
        echo "== $shape, $t thread(s): llama-bench on $(basename "$lm") (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        lj=$("$llama_bin/llama-bench" -m "$lm" -t "$t" -p "$n_prompt" -n "$n_decode" -r "$reps" -o json 2> /dev/null)
        ldecs+=("$(jq -r '[.[] | select(.n_gen > 0)][0].avg_ts' <<< "$lj")")
        lpres+=("$(jq -r '[.[] | select(.n_prompt > 0)][0].avg_ts' <<< "$lj")")
      fi
    done
    load="$load .. $(cut -d' ' -f1-3 /proc/loadavg)"
    med() { printf '%s\n' "$@" | jq -s 'sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end'; }
    ratios() { local -n a=$1 b=$2; for i in "${!a[@]}"; do jq -n --argjson x "${a[$i]}" --argjson y "${b[$i]}" '$x / $y'; done; }
    dec=$(med "${decs[@]}") pre=$(med "${pres[@]}") bdec=$(med "${bdecs[@]}") bpre=$(med "${bpres[@]}")
    bw=$(med "${bws[@]}")
    gbs=$(jq -n --argjson d "$dec" --argjson b "$bpt" '$d * $b / 1e9')
    ldec=null lpre=null rdec=null rpre=null
    if [ -n "$llama_bin" ]; then
      ldec=$(med "${ldecs[@]}") lpre=$(med "${lpres[@]}")
      rdec=$(med $(ratios decs ldecs)) rpre=$(med $(ratios pres lpres))
    fi
    line=$(jq -nc --arg shape "$shape" --arg model "$(basename "$m")" --argjson t "$t" --argjson dec "$dec" \
      --argjson pre "$pre" --argjson bpt "$bpt" --argjson gbs "$gbs" --argjson bw "$bw" --argjson ldec "$ldec" \
      --argjson lpre "$lpre" --argjson rdec "$rdec" --argjson rpre "$rpre" --argjson pairs "$pairs" --arg load "$load" \
      --argjson ours "$ours" --argjson bdec "$bdec" --argjson bpre "$bpre" --argjson bws "$(printf '%s\n' "${bws[@]}" | jq -s -c .)" --arg lmodel "$(basename "${lm:-}")" \
      '{shape: $shape, model: $model, threads: $t, decode_tok_s: $dec, prefill_tok_s: $pre, bytes_per_token: $bpt,
        gbs: $gbs, membw_gbs: $bw, membw_readings: $bws, share: ($gbs / $bw), llama_model: $lmodel, llama_decode_tok_s: $ldec,
        llama_prefill_tok_s: $lpre, decode_ratio: $rdec, prefill_ratio: $rpre, pairs: $pairs, load: $load}
       + (if $ours == 1 then {branches: true, backbone_decode_tok_s: $bdec, backbone_prefill_tok_s: $bpre} else {} end)')
    echo "$line" >> "$out"
    rows+=("$line")
  done
done

echo
echo "read bandwidth at the start: $(for t in $threads; do printf '%s thread(s) %s GB/s  ' "$t" "$(bw_of "$t")"; done)"
echo "(share: of the median of the readings taken before each pair of that row)"
printf '%-12s %3s %9s %9s %8s %6s %9s %9s %8s %8s %7s %s\n' shape thr "dec t/s" "MB/token" "GB/s" share \
  "pre t/s" "llama dec" "x llama" "llama pp" "x llama" load
for r in "${rows[@]}"; do
  jq -r '[.shape, .threads, .decode_tok_s, .bytes_per_token / 1e6, .gbs, .share * 100, .prefill_tok_s,
          (.llama_decode_tok_s // "-"), (.decode_ratio // "-"), (.llama_prefill_tok_s // "-"), (.prefill_ratio // "-"), .load]
         | @tsv' <<< "$r" |
    awk -F'\t' '{ f = "%-12s %3s %9.1f %9.0f %8.1f %5.0f%% %9.1f "; printf f, $1, $2, $3, $4, $5, $6, $7;
                 if ($8 == "-") printf "%9s %8s %8s %7s", "-", "-", "-", "-";
                 else printf "%9.1f %7.2fx %8.1f %6.2fx", $8, $9, $10, $11;
                 printf " %s\n", $12 }'
  jq -r 'select(.branches) | "             (with 10% branches; the backbone alone: decode \(.backbone_decode_tok_s), prefill \(.backbone_prefill_tok_s); llama.cpp on \(.llama_model))"' <<< "$r"
done
echo "(JSON lines: $out)"
