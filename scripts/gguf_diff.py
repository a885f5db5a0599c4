#!/usr/bin/env python3
"""gguf_diff.py: compare two GGUF files tensor by tensor and key by key (stdlib only).

Usage: gguf_diff.py A.gguf B.gguf [--quiet]
Prints the tensors whose bytes differ (with the largest element difference for f32/f16 ones),
the keys whose values differ, and those in only one file; exit status 0 when they hold the same
tensors and keys (hc.header_padding, the streaming writer's filler, is ignored)."""
import struct, sys

TYPES = {0: ('f', 4), 1: ('e', 2), 24: ('b', 1), 30: ('e', 2)}
SCALAR = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}


def read(path):
    data = open(path, 'rb').read()
    pos = [0]

    def take(fmt):
        v = struct.unpack_from('<' + fmt, data, pos[0])
        pos[0] += struct.calcsize('<' + fmt)
        return v[0]

    def string():
        n = take('Q')
        s = data[pos[0]:pos[0] + n]
        pos[0] += n
        return s.decode('utf-8', 'replace')

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            at, n = take('I'), take('Q')
            return tuple(value(at) for _ in range(n))
        return take(SCALAR[t])

    assert data[:4] == b'GGUF', path
    pos[0] = 4
    take('I')
    nt, nkv = take('Q'), take('Q')
    kv = {}
    for _ in range(nkv):
        k = string()
        kv[k] = value(take('I'))
    infos = []
    for _ in range(nt):
        name = string()
        nd = take('I')
        ne = [take('Q') for _ in range(nd)]
        t = take('I')
        off = take('Q')
        infos.append((name, ne, t, off))
    align = kv.get('general.alignment', 32)
    base = (pos[0] + align - 1) // align * align
    offs = sorted(o for _, _, _, o in infos) + [len(data) - base]
    tensors = {}
    for name, ne, t, off in infos:
        nxt = min(o for o in offs if o > off) if any(o > off for o in offs) else len(data) - base
        tensors[name] = (ne, t, data[base + off:base + nxt])
    kv.pop('hc.header_padding', None)
    return kv, tensors


def main():
    a, b = sys.argv[1], sys.argv[2]
    quiet = '--quiet' in sys.argv
    ka, ta = read(a)
    kb, tb = read(b)
    bad = 0
    for k in sorted(set(ka) | set(kb)):
        if k not in ka or k not in kb:
            print('key only in %s: %s' % (a if k in ka else b, k))
            bad += 1
        elif ka[k] != kb[k]:
            bad += 1
            if not quiet:
                va, vb = ka[k], kb[k]
                if isinstance(va, tuple) and va and isinstance(va[0], float):
                    d = max(abs(x - y) / max(abs(x), 1e-30) for x, y in zip(va, vb)) if len(va) == len(vb) else float('inf')
                    print('key differs: %s (largest relative difference %.3g)' % (k, d))
                elif isinstance(va, float):
                    print('key differs: %s %r %r (relative %.3g)' % (k, va, vb, abs(va - vb) / max(abs(va), 1e-30)))
                else:
                    print('key differs: %s %.60r %.60r' % (k, va, vb))
    for n in sorted(set(ta) | set(tb)):
        if n not in ta or n not in tb:
            print('tensor only in %s: %s' % (a if n in ta else b, n))
            bad += 1
            continue
        (nea, tya, da), (neb, tyb, db) = ta[n], tb[n]
        size = min(len(da), len(db))
        if nea != neb or tya != tyb:
            print('tensor %s: shape/type %s %s vs %s %s' % (n, nea, tya, neb, tyb))
            bad += 1
            continue
        elems = 1
        for x in nea:
            elems *= x
        if tya in TYPES:
            size = elems * TYPES[tya][1]
        if da[:size] != db[:size]:
            bad += 1
            msg = 'tensor differs: %s' % n
            if tya in TYPES and not quiet:
                f = TYPES[tya][0]
                xa = struct.unpack_from('<%d%s' % (elems, f), da)
                xb = struct.unpack_from('<%d%s' % (elems, f), db)
                m = max(abs(x) for x in xa) or 1
                d = max(abs(x - y) for x, y in zip(xa, xb))
                msg += ' (largest difference %.3g of largest element %.3g)' % (d, m)
            print(msg)
    print('%d differences' % bad)
    sys.exit(1 if bad else 0)


main()
