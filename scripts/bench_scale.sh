#!/bin/bash
# bench_scale.sh: hcinfer at the shapes people run on consumer hardware (random weights from
# `hcinfer synth`): each model compressed to W3 g128 + 10% on 512 calibration tokens, with the
# compression's wall and CPU time and split, its peak resident and anonymous memory, then decode
# speed and bytes read per token at 1 and 2 threads without and with branches. One JSON line per
# shape (appended to $OUT) and a markdown table at the end. Results: scripts/RESULTS-scale.md.
#
# usage: scripts/bench_scale.sh [SHAPE...]     shapes: l1b l3b l8b q30b (default: all four)
#        scripts/bench_scale.sh --table FILE.jsonl   the table of earlier lines
# env:   HCINFER   the program (default build/bin/hcinfer)
#        DIR       where the models go (default /tmp/hc-scale-models; sources ~3-16 GB each)
#        CALIB     calibration text (default ../shared/eval/wiki.valid.tokens)
#        TOKENS    calibration tokens (default 512)
#        Q30B_LAYERS  layers of the Qwen3-30B-A3B shape (default 12 of its 48)
#        KEEP      1: keep the models afterwards (default: the source and output are deleted)
#        OUT       JSON lines (default scripts/results/scale.jsonl)
#        DECODE    decoded tokens per bench run (default 16)
set -euo pipefail
cd "$(dirname "$0")/.."
HCINFER=${HCINFER:-build/bin/hcinfer}
DIR=${DIR:-/tmp/hc-scale-models}
CALIB=${CALIB:-../shared/eval/wiki.valid.tokens}
TOKENS=${TOKENS:-512}
Q30B_LAYERS=${Q30B_LAYERS:-12}
KEEP=${KEEP:-0}
OUT=${OUT:-scripts/results/scale.jsonl}
DECODE=${DECODE:-16}
SAMPLE="python3 scripts/scale_sample.py"
# the markdown table of JSON lines on stdin
table() {
    python3 -c '
import json, sys
print("| shape | source GiB | compress wall s (CPU s) | load | calib / source / factor / write s | peak RSS GiB | peak anon GiB | decode tok/s t1 none/branches | t2 none/branches | bytes/token MiB none/branches |")
print("|---|---|---|---|---|---|---|---|---|---|")
G = 1 << 30
for line in sys.stdin:
    d = json.loads(line)
    c, s = d["compress"], d["seconds"]
    def dec(b):
        r = {x["sched"]: x for x in b["results"]}
        return r["none"]["decode_tok_s"], r["inline"]["decode_tok_s"], r["none"]["bytes_per_token"], r["inline"]["bytes_per_token"]
    a1, b1, n1, m1 = dec(d["bench_t1"])
    a2, b2, _, _ = dec(d["bench_t2"])
    print("| %s | %.2f | %.0f (%.0f) | %.1f-%.1f | %.0f / %.0f / %.0f / %.0f | %.2f | %.2f | %.2f / %.2f | %.2f / %.2f | %.0f / %.0f |" % (
        d["shape"], d["source_bytes"] / G, c["wall_s"], c["user_s"] + c["sys_s"], d["loadavg"][0], d["loadavg"][1], s["calibration"], s.get("source", 0), s["factorization"], s["writing"],
        c["peak_rss_kib"] / (1 << 20), c["peak_anon_kib"] / (1 << 20), a1, b1, a2, b2, n1 / 2**20, m1 / 2**20))
'
}

if [ "${1:-}" = --table ]; then table < "$2"; exit 0; fi
mkdir -p "$DIR" "$(dirname "$OUT")"
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(l1b l3b l8b q30b)

synth_args() {
    case $1 in
    l1b) echo "--arch llama --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --vocab 128256" ;;
    l3b) echo "--arch llama --dim 3072 --layers 28 --heads 24 --kv-heads 8 --ffn 8192 --vocab 128256" ;;
    l8b) echo "--arch llama --dim 4096 --layers 32 --heads 32 --kv-heads 8 --ffn 14336 --vocab 128256" ;;
    q30b) echo "--arch qwen3moe --dim 2048 --layers $Q30B_LAYERS --heads 32 --kv-heads 4 --ffn 6144 --experts 128 --top-k 8 --expert-ffn 768 --vocab 151936" ;;
    *) echo "unknown shape $1" >&2; exit 2 ;;
    esac
}

rows=()
for shape in "${shapes[@]}"; do
    src=$DIR/$shape.gguf out=$DIR/$shape.w3.gguf log=$DIR/$shape
    echo "== $shape: $(synth_args "$shape")" >&2
    if [ ! -s "$src" ]; then
        $SAMPLE --out "$log.synth.json" -- $HCINFER synth $(synth_args "$shape") --type f16 -o "$src" >&2
    fi
    free -g >&2
    # the compression: wall and CPU time, split, peak memory sampled from /proc; the machine's load
    # (other processes share its 2 cores: CPU seconds / 2 is the wall time it would take alone)
    load0=$(cut -d' ' -f1 /proc/loadavg)
    $SAMPLE --out "$log.compress.json" -- $HCINFER compress -m "$src" -o "$out" --quant rtn:bits=3,group=128 --budget 10 \
        --calib "$CALIB" --calib-tokens "$TOKENS" -t 2 2> "$log.compress.log" >&2 || { cat "$log.compress.log" >&2; exit 1; }
    load1=$(cut -d' ' -f1 /proc/loadavg)
    # decode: backbone alone (none) and with its branches (inline: the device's threads run them)
    for t in 1 2; do
        $SAMPLE --out "$log.bench$t.json" --stdout "$log.bench$t.out" -- $HCINFER bench -m "$out" --sched none,inline \
            -n "$DECODE" -p 32 -r 1 -t $t --json 2> "$log.bench$t.log" >&2
    done
    line=$(python3 - "$shape" "$log" "$src" "$out" "$TOKENS" "$load0" "$load1" "$(synth_args "$shape")" <<'PY'
import json, os, re, sys
shape, log, src, out, tokens, load0, load1, synth = sys.argv[1:9]
rep = open(log + ".compress.log").read()
num = lambda k: float(re.search(k + r" ([0-9.]+) s", rep).group(1))
line = {"shape": shape, "synth": synth, "calib_tokens": int(tokens), "loadavg": [float(load0), float(load1)],
        "compress": json.load(open(log + ".compress.json")),
        "seconds": {"total": num(" in"), "calibration": num("calibration"), "source": num("source read"),
                    "factorization": num("factorization"), "writing": num("writing")},
        "branches": re.search(r"branches +(.*)", rep).group(1).strip(),
        "source_bytes": os.path.getsize(src), "output_bytes": os.path.getsize(out)}
for t in (1, 2):
    line["bench_t%d" % t] = json.load(open(log + ".bench%d.out" % t))
    line["bench_t%d_cost" % t] = json.load(open(log + ".bench%d.json" % t))
print(json.dumps(line))
PY
)
    echo "$line" >> "$OUT"
    rows+=("$line")
    [ "$KEEP" = 1 ] || rm -f "$src" "$out"
done

# the table, from this run's lines
printf '%s\n' "${rows[@]}" | table
