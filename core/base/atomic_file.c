/* atomic_file.c: a text file written under PATH.tmp and renamed into place only when complete. */
#include "atomic_file.h"

#include <stdlib.h>
#include <string.h>

hc_status hc_atomic_open(hc_atomic_file *a, const char *path, const char *what)
{
    *a = (hc_atomic_file){ .path = path, .what = what };
    if (!(a->tmp = malloc(strlen(path) + 5))) return hc_error(HC_E_NOMEM, "%s: out of memory", path);
    sprintf(a->tmp, "%s.tmp", path);
    if (!(a->f = fopen(a->tmp, "w"))) return hc_error(HC_E_IO, "%s: cannot write the %s", path, what);
    return HC_OK;
}

hc_status hc_atomic_close(hc_atomic_file *a, int ok)
{
    hc_status st = HC_OK;
    if (a->f) {
        int bad = ferror(a->f);
        if ((fclose(a->f) != 0 || bad) && ok) st = hc_error(HC_E_IO, "%s: write error", a->path);
        else if (ok && rename(a->tmp, a->path) != 0) st = hc_error(HC_E_IO, "%s: cannot rename the %s into place", a->path, a->what);
        if (!ok || st != HC_OK) remove(a->tmp);
        a->f = NULL;
    }
    free(a->tmp);
    a->tmp = NULL;
    return st;
}
