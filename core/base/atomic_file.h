/* atomic_file.h: a text file written under PATH.tmp and renamed into place only when complete, so
 * that a failure leaves no file behind (the Chrome trace, eval's --items). */
#ifndef HC_ATOMIC_FILE_H
#define HC_ATOMIC_FILE_H

#include <stdio.h>

#include "hc/hc_status.h"

typedef struct hc_atomic_file {
    const char *path;   /* where the file goes */
    const char *what;   /* its name in messages: "trace", "items file" */
    char *tmp;          /* PATH.tmp, written first */
    FILE *f;            /* open on tmp; write to it */
} hc_atomic_file;

/* Opens PATH.tmp for writing (an unwritable path fails here, before any work). */
HC_API hc_status hc_atomic_open(hc_atomic_file *a, const char *path, const char *what);
/* ok: closes the file and renames it into place (a write, close or rename error is HC_E_IO and
 * leaves no file); !ok: closes and removes it. Does nothing on a zeroed, never opened file. */
HC_API hc_status hc_atomic_close(hc_atomic_file *a, int ok);

#endif
