#!/usr/bin/env python3
"""cuda_resources.py: what the built kernels ask of the GPU, from `cuobjdump -res-usage` output on stdin:
per architecture the functions, the most registers a thread and the stack frames (spills and local
arrays), as one JSON object for scripts/gpu_check.sh's results (gpu_summary.py prints it).

  cuobjdump -res-usage build-gpu/lib/hcinfer/plugins/hc-device-cuda.so | scripts/cuda_resources.py"""
import json
import re
import subprocess
import sys


def demangle(names):
    """The C++ names of mangled ones (as given where c++filt is missing or fails)."""
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
        lines = out.splitlines()
        return lines if len(lines) == len(names) else names
    except (OSError, subprocess.CalledProcessError):
        return names


def main():
    rows, arch, fn = [], None, None
    for line in sys.stdin:
        m = re.match(r"\s*arch = (sm_\w+)", line)
        if m:
            arch = m.group(1)
        m = re.match(r"\s*Function (\S+):\s*$", line)
        if m:
            fn = m.group(1)
            continue
        m = re.match(r"\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
        if m and fn and arch:
            rows.append((arch, fn) + tuple(int(g) for g in m.groups()))
            fn = None
    if not rows:
        print(json.dumps("no kernels in the cuobjdump output"))
        sys.exit(1)
    mangled = [r[1] for r in rows]
    names = dict(zip(mangled, demangle(mangled)))
    archs = {}
    for a, f, reg, stack, shared, local in rows:
        s = archs.setdefault(a, {"functions": 0, "max_reg": -1, "max_stack": 0, "stack_functions": 0, "max_local": 0})
        s["functions"] += 1
        if reg > s["max_reg"]:
            s["max_reg"], s["max_reg_function"] = reg, names[f]
        if stack:
            s["stack_functions"] += 1
        if stack > s["max_stack"]:
            s["max_stack"], s["max_stack_function"] = stack, names[f]
        s["max_local"] = max(s["max_local"], local)
    print(json.dumps({"archs": archs}))


if __name__ == "__main__":
    main()
