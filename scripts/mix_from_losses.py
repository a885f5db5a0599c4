#!/usr/bin/env python3
"""mix_from_losses.py: --tensor-quant options that put the linear layers with the largest measured losses
in more bits, as many weights as a by-kind mix puts there. MODEL must carry measured losses (compressed
with --sens-tokens N: hc.sens.<layer>.loss, the KL from the source with only that layer quantized).

  python3 scripts/mix_from_losses.py MODEL [--kinds vodk] [--bits 4] [--rank excess|total|per-weight]

--kinds: the by-kind mix whose weight count is the budget (letters q k v o g u d as accuracy_table.sh's
-M part); --rank: excess (default: loss above the smallest layer's, per weight), total (loss), per-weight
(loss per weight). The spec is the model's hc.quant with bits=BITS. Prints the options on stdout and the
choice's summary on stderr. Results: scripts/RESULTS-accuracy.md."""
import argparse
import collections
import os
import re
import subprocess
import sys

KINDS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "g": "ffn_gate", "u": "ffn_up", "d": "ffn_down"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--kinds", default="vodk")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--rank", choices=["excess", "total", "per-weight"], default="excess")
    ap.add_argument("--hcinfer", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin", "hcinfer"))
    a = ap.parse_args()
    text = subprocess.run([a.hcinfer, "inspect", a.model], capture_output=True, text=True, check=True).stdout
    loss, weights, spec = {}, {}, None
    for line in text.splitlines():
        m = re.match(r"\s+(blk\.\d+\.\w+)\.weight\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+([-0-9.e+]+)$", line)
        if m:
            loss[m.group(1)] = float(m.group(2))
        m = re.match(r'\s+hc\.tensor\.(blk\.\d+\.\w+)\.weight\.shape\s+array\s+\[(\d+), (\d+)\]', line)
        if m:
            weights[m.group(1)] = int(m.group(2)) * int(m.group(3))
        m = re.match(r'\s+hc\.quant\s+string\s+"(.*)"', line)
        if m:
            spec = m.group(1)
    if not loss:
        sys.exit("mix_from_losses: %s has no measured losses (compress it with --sens-tokens N)" % a.model)
    if not spec or "bits=" not in spec:
        sys.exit("mix_from_losses: %s names no quant spec with bits= (hc.quant)" % a.model)
    missing = [n for n in loss if n not in weights]
    if missing:
        sys.exit("mix_from_losses: no shape for %s" % missing[0])
    bad = [c for c in a.kinds if c not in KINDS]
    if bad:
        sys.exit("mix_from_losses: unknown kind letter %s (q k v o g u d)" % bad[0])
    kinds = {KINDS[c] for c in a.kinds}
    budget = sum(w for n, w in weights.items() if n.split(".")[2] in kinds and n in loss)
    floor = min(loss.values())
    key = {"excess": lambda n: (loss[n] - floor) / weights[n], "total": lambda n: loss[n],
           "per-weight": lambda n: loss[n] / weights[n]}[a.rank]
    chosen, used = [], 0
    for n in sorted(loss, key=key, reverse=True):
        if used + weights[n] <= budget:
            chosen.append(n)
            used += weights[n]
    out = re.sub(r"bits=\d+", "bits=%d" % a.bits, spec)
    print(" ".join("--tensor-quant %s=%s" % (n, out) for n in chosen))
    by = collections.Counter(n.split(".")[2] for n in chosen)
    print("mix_from_losses: %d layers, %.1fM of the %.1fM weights of -M%d%s; by kind: %s" %
          (len(chosen), used / 1e6, budget / 1e6, a.bits, a.kinds, dict(by)), file=sys.stderr)


main()
