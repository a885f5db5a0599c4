#!/usr/bin/env python3
# compare_draws.py: two configurations (A, B), each compressed with several calibration draws
# (compress --calib-skip, --calib-seed), on the same multiple-choice rows (`hcinfer eval --items`).
# Usage: scripts/compare_draws.py SET A1,A2,... B1,B2,... [SET A1,... B1,... ...]
#   For each set: each draw's paired difference (B_k - A_k; draws beyond the shorter list are not
#   paired one to one), and the difference of the draws' means, its standard error taken over rows
#   (each row's right answers averaged over the draws, so that the rows' own difficulty is paired
#   out); with several sets the last line is the mean of the sets' differences (as "mean of
#   ARC-Easy and PIQA accuracy").
import json
import math
import sys


def read_items(path):
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                rows[r["row"]] = (r["gold"], r["pick"])
            except (ValueError, KeyError) as e:
                sys.exit("compare_draws: %s: line %d is not an items row (%s)" % (path, n, e))
    return rows


def right(rows_list, keys):
    """Per row: the share of the files that picked the gold answer."""
    return [sum(rows[k][1] == rows[k][0] for rows in rows_list) / len(rows_list) for k in keys]


def mean_se(d):
    n = len(d)
    m = sum(d) / n
    v = sum((x - m) ** 2 for x in d) / (n - 1)
    return m, math.sqrt(v / n)


def compare_set(name, a_files, b_files):
    a = [read_items(p) for p in a_files]
    b = [read_items(p) for p in b_files]
    keys = sorted(a[0])
    for p, rows in zip(a_files + b_files, a + b):
        if sorted(rows) != keys or any(rows[k][0] != a[0][k][0] for k in keys):
            sys.exit("compare_draws: %s does not hold the rows of %s" % (p, a_files[0]))
    for i, (pa, pb) in enumerate(zip(a_files, b_files)):
        ra, rb = right([a[i]], keys), right([b[i]], keys)
        m, se = mean_se([y - x for x, y in zip(ra, rb)])
        print("| %s | draw %d | %.2f | %.2f | %+.2f | %.2f | %+.2f |" % (name, i, 100 * sum(ra) / len(keys),
              100 * sum(rb) / len(keys), 100 * m, 100 * se, m / se if se else 0))
    ra, rb = right(a, keys), right(b, keys)
    m, se = mean_se([y - x for x, y in zip(ra, rb)])
    draws = "%d draws" % len(a) if len(a) == len(b) else "%d and %d draws" % (len(a), len(b))
    print("| %s | mean of %s | %.2f | %.2f | **%+.2f** | %.2f | %+.2f |" % (name, draws, 100 * sum(ra) / len(keys),
          100 * sum(rb) / len(keys), 100 * m, 100 * se, m / se if se else 0))
    return m, se


def main(argv):
    if len(argv) < 3 or len(argv) % 3:
        usage = [line[2:] for line in open(__file__).read().split("\n")[1:9]]
        sys.exit("\n".join(usage))
    print("| set | draw | A acc | B acc | B - A | paired s.e. | z |")
    print("|---|---|---|---|---|---|---|")
    res = []
    for i in range(0, len(argv), 3):
        a_files, b_files = argv[i + 1].split(","), argv[i + 2].split(",")
        res.append(compare_set(argv[i], a_files, b_files))
    if len(res) > 1:
        m = sum(x for x, _ in res) / len(res)
        se = math.sqrt(sum(s * s for _, s in res)) / len(res)
        print("| mean of the %d sets | | | | **%+.2f** | %.2f | %+.2f |" % (len(res), 100 * m, 100 * se, m / se if se else 0))


if __name__ == "__main__":
    main(sys.argv[1:])
