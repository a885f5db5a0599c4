#!/usr/bin/env python3
# plot.py: the figures of the results, drawn from the JSON the scripts write (installs matplotlib
# with pip when it is missing):
#   plot.py frontier FRONTIER.jsonl OUT.png   device MB against WikiText-2 perplexity, per configuration
#   plot.py sched BENCH.jsonl OUT.png         decode tok/s by scheduler, from `hcinfer bench --json` lines
import json
import os
import subprocess
import sys


def pyplot():
    try:
        import matplotlib
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"])
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read_values(path):
    """Every JSON value in the file: JSON lines, or objects spread over lines (bench --json)."""
    with open(path) as f:
        text = f.read()
    dec, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return values
        v, i = dec.raw_decode(text, i)
        values.append(v)


def frontier(rows, out):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    kinds = {"theirs": ("s", "tab:gray", "llama.cpp types, the source file"),
             "bare": ("o", "tab:blue", "hcinfer backbone alone"),
             "branches": ("*", "tab:red", "hcinfer backbone + branches (on the host)")}
    used = set()
    for r in rows:
        mb = r["backbone_bytes"] / 1e6
        kind = "branches" if r.get("branch_bytes") else \
            "theirs" if r["config"].startswith("llama-") or r["config"] == "source" else "bare"
        marker, color, label = kinds[kind]
        ax.scatter(mb, r["ppl"], marker=marker, color=color, s=120 if marker == "*" else 50, zorder=3,
                   label=None if kind in used else label)
        used.add(kind)
        text = "%s  %.2f" % (r["config"], r["ppl"])
        ax.annotate(text, (mb, r["ppl"]), textcoords="offset points", fontsize=8,
                    xytext=(8, -12) if kind == "branches" else (6, 5))
    ax.set_yscale("log")
    ax.margins(x=0.06)
    ax.set_xlabel("bytes on the device (MB): the backbone; branches stay in host memory")
    ax.set_ylabel("WikiText-2 test perplexity (20 chunks of 512), log scale")
    ax.set_title("SmolLM2-135M-Instruct: device memory against perplexity (lower left is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("plot: wrote", out)


def sched(rows, out):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels, values, colors = [], [], []
    for r in rows:
        model = os.path.basename(r["model"])
        for res in r["results"]:
            labels.append("%s\n%s, %d+%d thr" % (model, res["sched"], r["device_threads"], r["host_threads"]))
            values.append(res["decode_tok_s"])
            colors.append("tab:gray" if res["sched"] == "none" else "tab:blue")
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("decode tok/s (median of the bench's repetitions)")
    ax.set_title("decode speed by scheduler (hcinfer bench)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("plot: wrote", out)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("frontier", "sched"):
        sys.stderr.write("usage: plot.py frontier|sched IN.jsonl OUT.png\n")
        return 2
    rows = read_values(argv[2])
    if not rows:
        sys.stderr.write("plot.py: %s has no rows\n" % argv[2])
        return 1
    (frontier if argv[1] == "frontier" else sched)(rows, argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
