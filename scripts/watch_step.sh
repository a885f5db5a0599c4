# watch_step.sh (sourced): a step's command run under a watchdog; one that outlives its limit is taken
# for hung, its threads are written out (where /proc says each waits, and their stacks when a debugger
# can attach), and it is killed.
#
# watch_step LIMIT_S STACKS_FILE CMD...: CMD in the background, its output the caller's; CMD's own exit
# status, or 125 when it was still running after LIMIT_S seconds (its stacks then appended to STACKS_FILE
# and to the caller's fd 3 when that is open). CMD takes SIGINT as a command in the foreground would (a
# script's background command ignores it): a ^C stops it.

# watch_step_syscall NR: an x86-64 system call's name, for those a waiting thread is found in (else NR)
watch_step_syscall() {
  case $1 in
  0) echo read ;; 1) echo write ;; 7) echo poll ;; 16) echo ioctl ;; 23) echo select ;; 24) echo sched_yield ;;
  35) echo nanosleep ;; 61) echo wait4 ;; 202) echo futex ;; 230) echo clock_nanosleep ;; 232) echo epoll_wait ;;
  270) echo pselect6 ;; 271) echo ppoll ;; 281) echo epoll_pwait ;; *) echo "$1" ;;
  esac
}

# watch_step_threads PID: each thread of PID as /proc shows it, without a debugger (none, or one not let
# attach): its name, state (R runs, S and D wait), the kernel's wait channel, the system call it waits in
# and the file its user code was in then (from the program counter and /proc/PID/maps)
watch_step_threads() {
  local t m name state wchan sc pc where lo hi range perms path rest
  local -a maps=() # "first last+1 file", the addresses as numbers
  while read -r range perms _ _ _ path; do # the executable mappings of files
    [[ $perms == *x* && $path == /* ]] && maps+=("$((16#${range%-*})) $((16#${range#*-})) $path")
  done < "/proc/$1/maps" 2> /dev/null
  for t in /proc/"$1"/task/*; do
    [ -d "$t" ] || continue
    name=$(cat "$t/comm" 2> /dev/null) || continue
    state=$(sed 's/.*) //; s/ .*//' "$t/stat" 2> /dev/null)
    wchan=$(cat "$t/wchan" 2> /dev/null)
    read -r sc rest < "$t/syscall" 2> /dev/null || sc=unreadable
    where=
    if [[ $sc =~ ^[0-9]+$ ]]; then
      pc=$((16#${rest##* 0x}))
      for m in "${maps[@]}"; do
        read -r lo hi path <<< "$m"
        if (( pc >= lo && pc < hi )); then where=" in $path"; break; fi
      done
      sc="$(watch_step_syscall "$sc")$where"
    fi
    echo "thread ${t##*/} ($name): state ${state:-?}, wait channel ${wchan:-0}, system call $sc"
  done
}

# watch_step_stacks PID: PID's threads as /proc shows them, then every thread's stack (a debugger attached for a
# moment: HC_WATCH_STEP_GDB, else gdb, else cuda-gdb; HC_WATCH_STEP_GDB=none: none), or why there are none
watch_step_stacks() {
  local gdb=${HC_WATCH_STEP_GDB:-}
  echo "---- the stacks of pid $1: $(tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | cut -c1-300)"
  watch_step_threads "$1"
  if [ -z "$gdb" ]; then
    gdb=$(command -v gdb || command -v cuda-gdb || ls /usr/local/cuda/bin/cuda-gdb 2> /dev/null) || gdb=
  fi
  if [ "$gdb" = none ]; then
    echo "(HC_WATCH_STEP_GDB=none: no debugger)"
  elif [ -z "$gdb" ]; then
    echo "(no gdb or cuda-gdb on PATH: no stacks)"
  else
    timeout -k 5 60 "$gdb" -p "$1" -batch -nx -ex "set pagination off" -ex "thread apply all bt" 2>&1 \
      | grep -E '^(Thread |#[0-9]+ )' || echo "($gdb could not read them: not let attach?)"
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
