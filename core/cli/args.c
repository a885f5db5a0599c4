/* args.c: value parsing with range checks for the command-line options, and the uniform way
 * every subcommand reports a failure (message on stderr, non-zero exit status). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hc_status hc_arg_value(hc_args *a, const char **out)
{
    if (a->i + 1 >= a->argc) return hc_error(HC_E_ARG, "option %s needs a value", a->argv[a->i]);
    *out = a->argv[++a->i];
    return HC_OK;
}

hc_status hc_arg_int(hc_args *a, long lo, long hi, int *out)
{
    const char *opt = a->argv[a->i], *s = NULL;
    hc_status st = hc_arg_value(a, &s);
    if (st != HC_OK) return st;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return hc_error(HC_E_ARG, "%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi) return hc_error(HC_E_ARG, "%s: %ld is out of range (%ld..%ld)", opt, v, lo, hi);
    *out = (int)v;
    return HC_OK;
}

hc_status hc_arg_u64(hc_args *a, uint64_t *out)
{
    const char *opt = a->argv[a->i], *s = NULL;
    hc_status st = hc_arg_value(a, &s);
    if (st != HC_OK) return st;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return hc_error(HC_E_ARG, "%s: '%s' is not a non-negative integer", opt, s);
    *out = v;
    return HC_OK;
}

hc_status hc_arg_float(hc_args *a, double lo, double hi, float *out)
{
    const char *opt = a->argv[a->i], *s = NULL;
    hc_status st = hc_arg_value(a, &s);
    if (st != HC_OK) return st;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return hc_error(HC_E_ARG, "%s: '%s' is not a number", opt, s);
    if (v < lo || v > hi) return hc_error(HC_E_ARG, "%s: %g is out of range (%g..%g)", opt, v, lo, hi);
    *out = (float)v;
    return HC_OK;
}

int hc_arg_is(const hc_args *a, const char *name, const char *alias)
{
    const char *s = a->argv[a->i];
    return !strcmp(s, name) || (alias && !strcmp(s, alias));
}

int hc_cli_fail(const char *cmd, hc_status st)
{
    fprintf(stderr, "hcinfer %s: %s\n", cmd, hc_last_error()[0] ? hc_last_error() : hc_status_name(st));
    if (st == HC_E_ARG) fprintf(stderr, "(see hcinfer %s --help)\n", cmd);
    return st == HC_E_ARG ? 2 : 1;
}

hc_status hc_read_text_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return hc_error(HC_E_IO, "%s: cannot open (%s)", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return hc_error(HC_E_NOMEM, "%s: out of memory", path);
    if (err) {
        free(buf);
        return hc_error(HC_E_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return HC_OK;
}
