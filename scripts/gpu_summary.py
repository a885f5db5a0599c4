#!/usr/bin/env python3
"""gpu_summary.py: the summary table of scripts/gpu_check.sh from its JSON lines (results.jsonl): its
failures, logits of the device against the cpu device, bench per scheduler, bytes per token against bandwidth."""
import json
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def num(v):
    """A number of the tool's JSON; None: it was inf or NaN."""
    return "non-finite" if v is None else "%.4g" % v


def main():
    rows = load(sys.argv[1])
    by = {r["label"]: r["result"] for r in rows}
    dry = any(r.get("dry_run") for r in rows)
    meta = by.get("meta", {}) if isinstance(by.get("meta"), dict) else {}
    bw_nom = float(meta.get("bandwidth_nominal_gbs", 0) or 0)
    bw = by.get("bandwidth")
    bw_meas = bw.get("copy_gbs_read_plus_write", 0) if isinstance(bw, dict) else 0
    out = []
    title = "gpu_check: " + (meta.get("gpu") or "?")
    if dry:
        title += " -- DRY RUN: the cpu device with tiny shapes, not GPU figures"
    out.append("# " + title)
    out.append("")
    failures = [r["result"] for r in rows if r["label"] == "failure"]
    if failures:
        out.append("## FAILED")
        out.append("")
        out += ["- %s" % f for f in failures]
        out += ["- rerun of %s: %s" % (r["label"][len("diagnose-"):], r["result"]) for r in rows if r["label"].startswith("diagnose-")]
        out.append("")
    if bw_nom or bw_meas:
        out.append("memory bandwidth: nominal %.0f GB/s; device-to-device copy %.0f GB/s (read + write)" % (bw_nom, bw_meas))
        out.append("")
    out.append("## logits against the cpu device")
    out.append("")
    out.append("| model | branches | steps | max abs diff | max abs logit | top-1 agreement | check |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        res = r["result"]
        if isinstance(res, dict) and "top1_agree" in res:
            c = res.get("check", {})
            check = "-" if not c else "ok" if c.get("passed") else "FAILED: " + c.get("why", "")
            out.append("| %s | %s | %d | %s | %s | %.1f%% | %s |" % (r["label"][len("logits-"):], res.get("sched", "?"), res["steps"],
                                                                   num(res["max_abs_diff"]), num(res["max_abs_ref_logit"]),
                                                                   100 * res["top1_agree"], check))
        elif r["label"].startswith("logits-") and not isinstance(res, dict):
            out.append("| %s | | | | | | %s |" % (r["label"], res))
    out.append("")
    out.append("## bench (decode and prefill; per decoded token: device and wait ms, bytes)")
    out.append("")
    out.append("| model | sched | decode tok/s | prefill tok/s | device ms | device-wait ms | overlap | MiB/token | "
               "GB/s | of nominal | vs none |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        res = r["result"]
        if not (isinstance(res, dict) and "results" in res):
            if r["label"].startswith("bench-") and not isinstance(res, dict):
                out.append("| %s | | | | | | | | | | %s |" % (r["label"], res))
            continue
        base = None
        for s in res["results"]:
            if s["sched"] == "none":
                base = s["decode_tok_s"]
        for s in res["results"]:
            backbone = res.get("backbone_bytes_per_token", 0)
            gbs = backbone * s["decode_tok_s"] / 1e9
            of = "%.0f%%" % (100 * gbs / bw_nom) if bw_nom else "-"
            vs = "%.3f" % (s["decode_tok_s"] / base) if base else "-"
            sched = s["sched"]
            if s["sched"] != "none" and s.get("rank_share_end", 1.0) < 0.995:  # the controller shrank the ranks
                sched += " (ranks %.0f%% at the end)" % (100 * s["rank_share_end"])
            out.append("| %s | %s | %.1f | %.1f | %.3f | %.3f | %.0f%% | %.2f | %.0f | %s | %s |" % (
                r["label"][len("bench-"):], sched, s["decode_tok_s"], s["prompt_tok_s"], s["device_ms"], s["device_wait_ms"],
                100 * s["overlap"], s["bytes_per_token"] / 1048576.0, gbs, of, vs))
    out.append("")
    out.append("GB/s: backbone bytes per token x decode tok/s (branches are read on the host).")
    for r in rows:
        if r["label"] == "ctest":
            out.append("CUDA test suites: %s" % ("passed" if r["result"].get("passed") else "FAILED"))
        if r["label"] == "total":
            out.append("total: %d s%s" % (r["result"]["seconds"], ", FAILED" if r["result"]["failed"] else ""))
        names = {"llama3-8b-shape": "Llama-3-8B shape", "qwen3-30b-a3b-shape": "Qwen3-30B-A3B shape", "extras": "extras",
                 "bandwidth": "bandwidth probe"}
        if r["label"] in names and not isinstance(r["result"], dict):
            out.append("%s: %s" % (names[r["label"]], r["result"]))
    print("\n".join(out))


if __name__ == "__main__":
    main()
