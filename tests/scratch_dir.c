/* scratch_dir.c: the per-process scratch folder of the test suites and the fuzz harnesses
 * (scratch_dir.h): made with mkdtemp on first use, emptied and removed by an atexit handler. */
#include "scratch_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void remove_dir(void)
{
    if (!dir[0]) return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

const char *hc_scratch_path(const char *prefix, int use_tmpdir, const char *name)
{
    static char path[600];
    if (!dir[0]) {
        const char *base = use_tmpdir && getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/%s-%d-XXXXXX", base, prefix, (int)getpid());
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            dir[0] = '\0';
            return NULL;
        }
        atexit(remove_dir);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}
