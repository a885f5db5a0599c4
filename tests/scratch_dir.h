/* scratch_dir.h: one scratch folder per process for the test suites and the fuzz harnesses, made
 * on first use and removed with its files at exit. */
#ifndef HC_SCRATCH_DIR_H
#define HC_SCRATCH_DIR_H

/* The path of name inside the process's scratch folder, base/prefix-PID-XXXXXX (made on the first
 * call; base: $TMPDIR when use_tmpdir and it is set, else /tmp). A static buffer, overwritten by the
 * next call; NULL (with perror) when the folder cannot be made. */
const char *hc_scratch_path(const char *prefix, int use_tmpdir, const char *name);

#endif
