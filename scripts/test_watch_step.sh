#!/usr/bin/env bash
# test_watch_step.sh: watch_step (gpu_check's watchdog) passes a command's output and status through at
# once, and stops one that hangs after its limit with exit 125, its stacks written out and no process left.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/watch_step.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hc-test-watch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp/tmp # watch_step's own temporary folders, apart from other runs'
mkdir "$TMPDIR"
failed=0
check() { # what, condition...
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failed=1; fi
}
now() { date +%s%N; }
ms_since() { echo $(( ($(now) - $1) / 1000000 )); }

# a command that ends: its output and status, without waiting for the limit (30 s)
t0=$(now)
out=$(watch_step 30 "$tmp/stacks" sh -c 'echo hello; exit 7')
rc=$?
check "output passed through ('$out')" [ "$out" = hello ]
check "exit status passed through ($rc)" [ "$rc" = 7 ]
out=$(watch_step 30 "$tmp/stacks" true)
check "exit 0 passed through ($?)" [ "$?" = 0 ]
ms=$(ms_since "$t0")
check "two commands that end at once take ${ms} ms (< 5000: the watchdog was cancelled)" [ "$ms" -lt 5000 ]
check "no stacks written for them" [ ! -e "$tmp/stacks" ]

# a command that hangs (a sleep with a number of its own, to find it): stopped after 1 s, exit 125
t0=$(now)
out=$(exec 3> "$tmp/fd3"; watch_step 1 "$tmp/stacks" sh -c 'echo started; exec sleep 987')
rc=$?
ms=$(ms_since "$t0")
check "a hang stopped with exit 125 ($rc)" [ "$rc" = 125 ]
check "its output so far passed through ('$out')" [ "$out" = started ]
check "stopped in ${ms} ms (1 s limit, gdb's attach, < 30000)" [ "$ms" -lt 30000 ]
check "the hung process is gone" bash -c '! pgrep -f "^sleep 987$" > /dev/null'
check "its stacks written, naming it" grep -q '^---- the stacks of pid [0-9]*: sleep 987' "$tmp/stacks"
check "and the same to fd 3" cmp -s "$tmp/stacks" "$tmp/fd3"
check "its thread as /proc shows it (waiting in nanosleep, in libc)" \
  grep -Eq '^thread [0-9]+ \(sleep\): state S, wait channel .*, system call (clock_)?nanosleep in /.*libc' "$tmp/stacks"
if command -v gdb > /dev/null; then
  check "gdb's stack of its thread (a frame in nanosleep)" grep -q '^#[0-9].*nanosleep' "$tmp/stacks"
else
  check "no gdb: said so" grep -q 'no gdb or cuda-gdb on PATH' "$tmp/stacks"
fi

# without a debugger (none there, or one not let attach): the /proc view alone, and why no stacks
sleep 986 &
pid=$!
sleep 0.2
HC_WATCH_STEP_GDB=none watch_step_stacks "$pid" > "$tmp/none"
HC_WATCH_STEP_GDB=false watch_step_stacks "$pid" > "$tmp/false"
kill "$pid"
check "HC_WATCH_STEP_GDB=none: its thread from /proc, no debugger's frames" \
  bash -c "grep -q '^thread $pid (sleep): state S' '$tmp/none' && grep -q 'no debugger' '$tmp/none' && ! grep -q '^#' '$tmp/none'"
check "a debugger that cannot attach: said so, the /proc view kept" \
  bash -c "grep -q 'false could not read them' '$tmp/false' && grep -q '^thread $pid ' '$tmp/false'"
check "no temporary folder left" [ -z "$(ls -A "$TMPDIR")" ]

[ "$failed" = 0 ] && echo "test_watch_step: OK" || echo "test_watch_step: FAILED"
exit "$failed"
