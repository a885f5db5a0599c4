#!/usr/bin/env python3
"""sass_loops.py: the loops of a CUDA kernel's SASS (cuobjdump -sass output on stdin): each loop's
instructions, and the blocks inside it that a predicated forward branch may skip (with their sizes),
so that what one iteration executes can be counted for a given path. Used for tests/cuda_emu/README.md.

  pip download --no-deps nvidia-cuda-cuobjdump   # the wheel holds nvidia/cu13/bin/cuobjdump
  nvcc -O3 -arch=sm_90 -Ikernels/cuda -Isdk/include -c plugins/quant_rtn/cuda/qrtn_cuda.cu -o q.o
  cuobjdump -sass -fun '_Z21qrtn_gemv_wide_kernelILi3ELi1ELi1EEvPKhillPKfPfPKimi' q.o | scripts/sass_loops.py"""
import re
import sys


def main():
    ins = []
    for line in sys.stdin:
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*(?:/\*|$)", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2)))
    if not ins:
        sys.exit("sass_loops: no SASS instructions on stdin (cuobjdump -sass -fun NAME OBJ)")
    for addr, text in ins:
        m = re.search(r"\bBRA (?:!?U?P\w+, )?0x([0-9a-f]+)", text)
        if not m or int(m.group(1), 16) >= addr:
            continue
        top = int(m.group(1), 16)
        body = [(a, t) for a, t in ins if top <= a <= addr]
        skips = []
        for a, t in body:
            g = re.match(r"@!?P\d+ BRA 0x([0-9a-f]+)", t)
            if g and a < int(g.group(1), 16) <= addr:
                skips.append("%x: %d" % (a, (int(g.group(1), 16) - a) // 16 - 1))
        print("loop %x..%x: %d instructions; skippable blocks (at: size): %s" % (top, addr, len(body), ", ".join(skips) or "none"))


if __name__ == "__main__":
    main()
