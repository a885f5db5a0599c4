/* trace.c: recording timeline events and writing them in the Chrome trace event format
 * ({"traceEvents": [{"ph": "X", ...}]}), one process per scheduler, one thread per lane. */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

hc_status hc_trace_init(hc_trace *t, int cap)
{
    *t = (hc_trace){ .cap = cap };
    if (!(t->ev = malloc((size_t)cap * sizeof *t->ev))) return hc_error(HC_E_NOMEM, "trace: out of memory");
    return HC_OK;
}

void hc_trace_free(hc_trace *t)
{
    free(t->ev);
    t->ev = NULL;
    t->n = t->cap = 0;
}

void hc_trace_add(hc_trace *t, const char *name, int lane, uint64_t start_ns, uint64_t dur_ns)
{
    if (!t || t->n >= t->cap) return;
    if (!t->origin_ns) t->origin_ns = start_ns;
    t->ev[t->n++] = (hc_trace_event){ name, lane, start_ns, dur_ns };
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

hc_status hc_trace_write(const char *path, const hc_trace *traces, int n_traces)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return hc_error(HC_E_IO, "%s: cannot write the trace", path);
    static const char *const lanes[] = { "device", "host", "device waits for host" };
    fprintf(f, "{\"traceEvents\": [\n");
    int first = 1;
    for (int p = 0; p < n_traces; p++) {
        const hc_trace *t = &traces[p];
        fprintf(f, "%s{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"args\": {\"name\": ", first ? "" : ",\n", p + 1);
        json_string(f, t->label ? t->label : "hcinfer");
        fprintf(f, "}}");
        first = 0;
        for (int l = 0; l < 3; l++)
            fprintf(f, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": \"%s\"}}", p + 1, l, lanes[l]);
        for (int i = 0; i < t->n; i++) {
            const hc_trace_event *e = &t->ev[i];
            fprintf(f, ",\n{\"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, \"name\": ", p + 1, e->lane,
                    (e->start_ns - t->origin_ns) / 1000.0, e->dur_ns / 1000.0);
            json_string(f, e->name);
            fputc('}', f);
        }
    }
    fprintf(f, "\n]}\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return hc_error(HC_E_IO, "%s: write error", path);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return hc_error(HC_E_IO, "%s: cannot rename the trace into place", path);
    }
    return HC_OK;
}
