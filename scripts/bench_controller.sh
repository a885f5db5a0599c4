#!/usr/bin/env bash
# bench_controller.sh: the dynamic-rank controller under a synthetically slowed host: async decode of
# the W3 + 10% SmolLM2 model against the backbone alone, without and with --host-budget, at several
# host slowdowns. JSON lines to $OUT, then a Markdown table.
# Usage: scripts/bench_controller.sh [BUILD_DIR]   (env: SLOWDOWNS, BUDGET, REPS, N; run it on an idle machine)
# Each row: none and async in one process, REPS repetitions interleaved, medians; and the paired
# ratio (each async repetition over the none repetition run just before it): median and quartiles.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
hc=$build/bin/hcinfer
out=${OUT:-$root/models/bench_controller.jsonl}
w3=${W3_MODEL:-$root/models/SmolLM2-135M-Instruct.w3.hc.gguf}
[ -f "$w3" ] || { echo "bench_controller: $w3 is absent (scripts/demo.sh makes it)" >&2; exit 1; }
: > "$out"
for s in ${SLOWDOWNS:-3 10 20}; do
  for budget in 0 "${BUDGET:-0.9}"; do
    args=(-m "$w3" --sched none,async -t 1 --host-threads 1 -n "${N:-512}" -r "${REPS:-7}" --host-slowdown "$s")
    [ "$budget" = 0 ] || args+=(--host-budget "$budget")
    echo "== hcinfer bench ${args[*]}" >&2
    printf '{"slowdown": %s, "host_budget": %s, "bench": ' "$s" "$budget" >> "$out"
    "$hc" bench "${args[@]}" --json | tr -d '\n' >> "$out"
    echo "}" >> "$out"
  done
done

python3 - "$out" <<'PY'
import json, sys
print("| host slowdown | controller | none tok/s | async tok/s | async / none | paired async / none: median (quartiles) | device waited ms/token | active rank at the end (mean, lowest share) |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    res = {x["sched"]: x for x in r["bench"]["results"]}
    a, n = res["async"], res["none"]
    ctl = "--host-budget %g" % r["host_budget"] if r["host_budget"] else "off"
    rank = "%.0f%%, %.0f%%" % (100 * a["rank_share_end"], 100 * a["rank_share_min"]) if r["host_budget"] else "100%"
    q = a["paired_vs_first"]
    print("| %g | %s | %.1f | %.1f | %.3f | %.3f (%.3f-%.3f) | %.2f | %s |" % (r["slowdown"], ctl, n["decode_tok_s"],
          a["decode_tok_s"], a["decode_tok_s"] / n["decode_tok_s"], q[1], q[0], q[2], a["device_wait_ms"], rank))
PY
