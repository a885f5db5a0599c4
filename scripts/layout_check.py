#!/usr/bin/env python3
# layout_check.py: checks the layout the core promises and prints its figures: lines per room, the
# share of production lines linked into libhc.so, libhc's exported functions (each declared HC_API),
# and that rooms include each other in one direction only (no circles). Exit 1 on a violation.
# Usage: layout_check.py [BUILD_DIR]   (without a build, the export check is skipped)
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The rooms and what each may include (besides the SDK headers and itself).
ALLOWED = {
    "base": [],
    "kernels/cpu": ["base"],
    "runtime": ["base", "kernels/cpu"],
    "script": ["base", "kernels/cpu", "runtime"],
    "model": ["base"],
    "text": ["base", "model"],
    "compress": ["base", "script", "runtime", "kernels/cpu", "model", "text"],
    "eval": ["base", "script", "runtime", "kernels/cpu", "model", "text"],
    "cli": ["base", "script", "runtime", "kernels/cpu", "model", "text", "compress", "eval"],
}
LIBHC = ["base", "runtime", "kernels/cpu"]
SOURCE_EXT = (".c", ".h", ".cu", ".cuh")


def room_dir(room):
    return os.path.join(ROOT, room if room.startswith("kernels/") else os.path.join("core", room))


def count_lines(path):
    with open(path, errors="replace") as f:
        return sum(1 for _ in f)


def production_files():
    for top in ("core", "kernels", "plugins", "schedulers", os.path.join("sdk", "include")):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith(SOURCE_EXT):
                    yield os.path.join(d, name)


def main(argv):
    build = argv[1] if len(argv) > 1 else os.path.join(ROOT, "build")
    failures = []
    total = sum(count_lines(p) for p in production_files())
    header_room = {}
    room_lines = {}
    for room in ALLOWED:
        d = room_dir(room)
        files = [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(SOURCE_EXT)]
        room_lines[room] = sum(count_lines(p) for p in files)
        for p in files:
            if p.endswith(".h"):
                header_room.setdefault(os.path.basename(p), room)
    libhc = sum(room_lines[r] for r in LIBHC)
    print("production lines: %d (core, kernels, plugins, schedulers, sdk/include)" % total)
    for room in ALLOWED:
        print("  %-12s %6d%s" % (room, room_lines[room], "  (libhc)" if room in LIBHC else ""))
    share = 100.0 * libhc / total
    print("libhc.so: %d lines = %.1f%% of production lines (limit 35%%)" % (libhc, share))
    if share > 35.0:
        failures.append("libhc holds %.1f%% of the production lines, more than 35%%" % share)

    # includes between rooms
    edges = {}
    for room in ALLOWED:
        d = room_dir(room)
        for name in sorted(os.listdir(d)):
            if not name.endswith(SOURCE_EXT):
                continue
            with open(os.path.join(d, name), errors="replace") as f:
                for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M):
                    other = header_room.get(os.path.basename(inc))
                    if other and other != room and os.path.dirname(inc) in ("", "."):
                        edges.setdefault((room, other), []).append("%s -> %s" % (name, inc))
    for (a, b), where in sorted(edges.items()):
        if b not in ALLOWED[a]:
            failures.append("room %s includes room %s, against the order: %s" % (a, b, "; ".join(where[:3])))
    # a circle between rooms would need an edge both ways somewhere along it: check reachability
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def reaches(a, b, seen):
        for n in graph.get(a, ()):
            if n == b or (n not in seen and (seen.add(n) or reaches(n, b, seen))):
                return True
        return False

    for room in ALLOWED:
        if reaches(room, room, set()):
            failures.append("rooms include each other in a circle through %s" % room)
    print("room includes: %d directed pairs, no circle" % len(edges) if not any("circle" in f for f in failures) else "room includes: circle!")

    # exports
    lib = os.path.join(build, "lib", "libhc.so")
    if os.path.exists(lib):
        out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
        exported = sorted({l.split()[-1] for l in out.splitlines() if re.search(r" [TDBR] ", l)})
        declared = set()
        for p in production_files():
            if p.endswith((".h", ".cuh")):
                with open(p, errors="replace") as f:
                    for m in re.finditer(r"^HC_API\b[^;]*?\b(hc_\w+)\s*\(", f.read(), re.M | re.S):
                        declared.add(m.group(1))
        stray = [s for s in exported if s not in declared and not s.startswith("_")]
        print("libhc.so exports %d symbols, %d functions declared HC_API" % (len(exported), len(declared)))
        if stray:
            failures.append("libhc.so exports symbols not declared HC_API: %s" % ", ".join(stray[:10]))
    else:
        print("libhc.so: not built at %s, export check skipped" % lib)

    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
