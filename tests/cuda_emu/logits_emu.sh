#!/usr/bin/env bash
# logits_emu.sh BUILD [SHARED]: whole models on the cuda device built on the CPU emulator (BUILD/cuda-emu/
# plugins) against the cpu device, with hc-compare-devices: the runtime's GPU path end to end (weights
# uploaded, KV cache, branches handed off through pinned memory and the copy queue, MoE routing,
# gemma's GeGLU and sliding window). Limits as scripts/gpu_check.sh's: float weights max |diff| <= 1e-3
# (1 + max |logit|) and top-1 >= 0.95; W3 + branches (the cpu device's int8 activations) top-1 >= 0.90.
set -euo pipefail
build=$(cd "$1" && pwd)
shared=${2:-}
hc=$build/bin/hcinfer
cmp=$build/bin/hc-compare-devices
plugins=$build/cuda-emu/plugins
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hc-logits-emu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

synth() { # name, synth arguments...
  local name=$1
  shift
  "$hc" synth "$@" --seed 1 --type f16 -o "$tmp/$name.gguf" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
}
w3() { # name, group: W3 + 10% branches of the f16 model
  "$hc" compress -m "$tmp/$1.gguf" -o "$tmp/$1.w3.gguf" --quant "rtn:bits=3,group=$2" --budget 10 -t 2 > "$tmp/log" 2>&1 \
    || { cat "$tmp/log"; exit 1; }
}
compare() { # label, kind (float|w3), model, options...
  local label=$1 kind=$2 model=$3 res
  shift 3
  if ! res=$("$cmp" -m "$model" --plugin-dir "$plugins" --device cuda --threads 2 "$@" 2> "$tmp/err"); then
    echo "FAIL $label: hc-compare-devices failed: $(cat "$tmp/err")"
    failed=1
    return
  fi
  if python3 - "$kind" "$res" <<'PY'; then echo "ok   $label: $res"; else echo "FAIL $label: $res"; failed=1; fi
import json, sys
r = json.loads(sys.argv[2])
d, ref, top1 = r["max_abs_diff"], r["max_abs_ref_logit"], r["top1_agree"]
ok = isinstance(d, (int, float)) and isinstance(ref, (int, float))
if sys.argv[1] == "float":
    ok = ok and d <= 1e-3 * (1 + ref) and top1 >= 0.95
else:
    ok = ok and top1 >= 0.90
sys.exit(0 if ok else 1)
PY
}

synth llama --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 160 --vocab 512
w3 llama 128
synth moe --arch qwen2moe --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --experts 4 --top-k 2 --vocab 512
w3 moe 64
synth gemma --arch gemma3 --dim 64 --layers 3 --heads 4 --kv-heads 1 --ffn 160 --window 16 --swa-period 2 --vocab 512

if [ -n "$shared" ] && [ -f "$shared/models/stories260K/stories260K.bin" ]; then
  compare stories260K float "$shared/models/stories260K/stories260K.bin" --no-comp -n 16
else
  echo "skip stories260K: not found under '${shared:-(no shared folder)}'"
fi
compare llama-f16 float "$tmp/llama.gguf" --no-comp -n 16
# 300 keys over 4 heads: attention's keys in 2 splits; the prompt's batches of 128 tokens
compare llama-f16-long float "$tmp/llama.gguf" --no-comp -n 8 -p 300
compare llama-w3-async w3 "$tmp/llama.w3.gguf" -n 32 -p 40
compare llama-w3-serial-kvf16 w3 "$tmp/llama.w3.gguf" -n 32 --sched serial --kv-type f16
compare moe-f16 float "$tmp/moe.gguf" --no-comp -n 16 -p 20
compare moe-w3-async w3 "$tmp/moe.w3.gguf" -n 32 -p 20
compare gemma-f16 float "$tmp/gemma.gguf" --no-comp -n 16 -p 40
exit $failed
