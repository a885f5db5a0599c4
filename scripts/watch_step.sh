# watch_step.sh (sourced): a step's command run under a watchdog; one that outlives its limit is taken
# for hung, its threads' stacks are written out (gdb, when there is one), and it is killed.
#
# watch_step LIMIT_S STACKS_FILE CMD...: CMD in the background, its output the caller's; CMD's own exit
# status, or 125 when it was still running after LIMIT_S seconds (its stacks then appended to STACKS_FILE
# and to the caller's fd 3 when that is open). CMD takes SIGINT as a command in the foreground would (a
# script's background command ignores it): a ^C stops it.

# watch_step_stacks PID: every thread's stack of PID (gdb attached for a moment), or why there are none
watch_step_stacks() {
  echo "---- the stacks of pid $1: $(tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | cut -c1-300)"
  if command -v gdb > /dev/null; then
    timeout -k 5 60 gdb -p "$1" -batch -nx -ex "set pagination off" -ex "thread apply all bt" 2>&1 \
      | grep -E '^(Thread |#[0-9]+ )' || echo "(gdb could not read them)"
  else
    echo "(no gdb on PATH: no stacks)"
  fi
}

watch_step() {
  local limit=$1 stacks_file=$2 mark dog rc cancel pid
  shift 2
  mark=$(mktemp -d "${TMPDIR:-/tmp}/hc-watch.XXXXXX") || return 1
  mkfifo "$mark/cancel" && exec {cancel}<> "$mark/cancel" || { rm -rf "$mark"; return 1; }
  ( trap - INT QUIT; exec "$@" {cancel}>&- ) &
  pid=$!
  # the watchdog waits on a fifo kept open here (a builtin read, no process to outlive it) for a line
  # that cancels it; its output goes nowhere near the caller's (a command substitution would wait for it)
  ( read -r -t "$limit" _ <&"$cancel" && exit 0
    kill -0 "$pid" 2> /dev/null || exit 0
    watch_step_stacks "$pid" > "$mark/part"
    kill -0 "$pid" 2> /dev/null || exit 0 # it ended while they were read: no hang
    mv "$mark/part" "$mark/stacks"
    kill -KILL "$pid" 2> /dev/null ) > /dev/null 2>&1 &
  dog=$!
  wait "$pid"
  rc=$?
  echo cancel >&"$cancel"
  wait "$dog"
  exec {cancel}>&-
  if [ -f "$mark/stacks" ]; then
    rc=125
    cat "$mark/stacks" >> "$stacks_file"
    { true >&3; } 2> /dev/null && cat "$mark/stacks" >&3
  fi
  rm -rf "$mark"
  return "$rc"
}
