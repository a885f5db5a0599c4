#!/usr/bin/env bash
# compare_items.sh: paired comparison of two models on the same multiple-choice rows, from the files
# `hcinfer eval --mc SET --items FILE` writes: the difference of accuracy (B - A) with its paired
# standard error, and the rows only one of them got right.
# Usage: scripts/compare_items.sh A1.jsonl B1.jsonl [A2.jsonl B2.jsonl ...]
#   Each pair is one data set (A and B: two models); with several pairs the last line is the mean of
#   the sets' differences (as "mean of ARC-Easy and PIQA accuracy"), its standard error combining
#   theirs. Exit status 1 when a pair does not hold the same rows.
set -euo pipefail
if [ $# -lt 2 ] || [ $(($# % 2)) -ne 0 ]; then
  sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
for f in "$@"; do [ -r "$f" ] || { echo "compare_items: $f: cannot read" >&2; exit 1; }; done

# one pair: prints "acc_a acc_b diff se n a_only b_only" for pick and for pick_norm (two lines)
pair() {
  awk -v A="$1" -v B="$2" '
    function field(line, key,   m) { if (match(line, "\"" key "\": -?[0-9]+")) { m = substr(line, RSTART, RLENGTH); sub(/.*: /, "", m); return m + 0 } return "x" }
    FNR == NR { r = field($0, "row"); if (r == "x") { print A ": line " FNR ": not an items row" > "/dev/stderr"; bad = 1; exit 1 }
                ga[r] = field($0, "gold"); pa[r] = field($0, "pick"); na[r] = field($0, "pick_norm"); n_a++; next }
    { r = field($0, "row"); if (r == "x" || !(r in ga) || field($0, "gold") != ga[r]) {
        print B ": row " r " is not the same row as in " A > "/dev/stderr"; bad = 1; exit 1 }
      g = ga[r]; n++
      for (k = 0; k < 2; k++) {
        a = (k ? na[r] : pa[r]) == g; b = (k ? field($0, "pick_norm") : field($0, "pick")) == g
        sa[k] += a; sb[k] += b; d = b - a; sd[k] += d; sd2[k] += d * d; ao[k] += a && !b; bo[k] += b && !a } }
    END { if (bad) exit 1
          if (n != n_a || n < 2) { print A " and " B ": " n_a " and " n " rows, not the same set" > "/dev/stderr"; exit 1 }
          for (k = 0; k < 2; k++) { m = sd[k] / n; v = (sd2[k] - n * m * m) / (n - 1)
            printf "%.6f %.6f %.6f %.6f %d %d %d\n", sa[k] / n, sb[k] / n, m, sqrt(v / n), n, ao[k], bo[k] } }' "$1" "$2"
}

printf '| B file | metric | rows | A | B | B - A | paired s.e. | z | only A right | only B right |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
sum_d=(0 0) sum_v=(0 0) sets=0
while [ $# -gt 0 ]; do
  out=$(pair "$1" "$2") || exit 1
  k=0
  while read -r aa bb d se n ao bo; do
    metric=$([ $k = 0 ] && echo acc || echo acc_norm)
    awk -v s="$(basename "$2")" -v m="$metric" -v aa="$aa" -v bb="$bb" -v d="$d" -v se="$se" -v n="$n" -v ao="$ao" -v bo="$bo" 'BEGIN {
      printf "| %s | %s | %d | %.2f | %.2f | %+.2f | %.2f | %+.2f | %d | %d |\n", s, m, n, 100 * aa, 100 * bb, 100 * d, 100 * se,
             (se > 0 ? d / se : 0), ao, bo }'
    sum_d[k]=$(awk -v x="${sum_d[k]}" -v d="$d" 'BEGIN { printf "%.9f", x + d }')
    sum_v[k]=$(awk -v x="${sum_v[k]}" -v se="$se" 'BEGIN { printf "%.9f", x + se * se }')
    k=$((k + 1))
  done <<< "$out"
  sets=$((sets + 1))
  shift 2
done
if [ $sets -gt 1 ]; then
  for k in 0 1; do
    awk -v m="$([ $k = 0 ] && echo acc || echo acc_norm)" -v s="${sum_d[k]}" -v v="${sum_v[k]}" -v n="$sets" 'BEGIN {
      d = s / n; se = sqrt(v) / n
      printf "| mean of the %d sets | %s | | | | %+.2f | %.2f | %+.2f | | |\n", n, m, 100 * d, 100 * se, (se > 0 ? d / se : 0) }'
  done
fi
