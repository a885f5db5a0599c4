#!/usr/bin/env python3
"""scale_sample.py: runs a command and reports what it cost, as one JSON object on stdout.

Usage: scale_sample.py [--out FILE] [--stdout FILE] -- CMD [ARGS...]
Samples /proc/PID/status every 0.1 s (VmRSS, RssAnon, RssFile: peaks in KiB) and reports the
wall time, user and system CPU seconds (getrusage of the child) and the exit status. The
command's stdout goes to --stdout FILE (default: this script's stderr); its stderr is passed
through. RssAnon is the memory the process allocated; RssFile the mapped file pages it touched
(the source model, mapped, counts there)."""
import json, os, resource, subprocess, sys, time


def main():
    args = sys.argv[1:]
    out = stdout_path = None
    while args and args[0] != '--':
        if args[0] == '--out':
            out, args = args[1], args[2:]
        elif args[0] == '--stdout':
            stdout_path, args = args[1], args[2:]
        else:
            sys.exit('usage: scale_sample.py [--out FILE] [--stdout FILE] -- CMD...')
    cmd = args[1:]
    sink = open(stdout_path, 'w') if stdout_path else sys.stderr
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=sink)
    peak = {'VmRSS': 0, 'RssAnon': 0, 'RssFile': 0}
    while p.poll() is None:
        try:
            for line in open('/proc/%d/status' % p.pid):
                k = line.split(':')[0]
                if k in peak:
                    peak[k] = max(peak[k], int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.1)
    wall = time.time() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {'rc': p.returncode, 'wall_s': round(wall, 2), 'user_s': round(ru.ru_utime, 2), 'sys_s': round(ru.ru_stime, 2),
           'peak_rss_kib': peak['VmRSS'], 'peak_anon_kib': peak['RssAnon'], 'peak_file_kib': peak['RssFile']}
    text = json.dumps(res)
    if out:
        open(out, 'w').write(text + '\n')
    print(text)
    sys.exit(p.returncode)


main()
