/* trace.c: recording timeline events and writing them in the Chrome trace event format
 * ({"traceEvents": [{"ph": "X", ...}]}), one process per scheduler, one thread per lane. */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>

#include "atomic_file.h"
#include "json_write.h"

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

hc_status hc_trace_write(const char *path, const hc_trace *traces, int n_traces)
{
    hc_atomic_file af;
    hc_status st = hc_atomic_open(&af, path, "trace");
    if (st != HC_OK) {
        hc_atomic_close(&af, 0);
        return st;
    }
    FILE *f = af.f;
    static const char *const lanes[] = { "device", "host", "device waits for host" };
    fprintf(f, "{\"traceEvents\": [\n");
    int first = 1;
    for (int p = 0; p < n_traces; p++) {
        const hc_trace *t = &traces[p];
        fprintf(f, "%s{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"args\": {\"name\": ", first ? "" : ",\n", p + 1);
        hc_json_write_string(f, t->label ? t->label : "hcinfer");
        fprintf(f, "}}");
        first = 0;
        for (int l = 0; l < 3; l++)
            fprintf(f, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": %d, \"args\": {\"name\": \"%s\"}}", p + 1, l, lanes[l]);
        for (int i = 0; i < t->n; i++) {
            const hc_trace_event *e = &t->ev[i];
            fprintf(f, ",\n{\"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, \"name\": ", p + 1, e->lane,
                    (e->start_ns - t->origin_ns) / 1000.0, e->dur_ns / 1000.0);
            hc_json_write_string(f, e->name);
            fputc('}', f);
        }
    }
    fprintf(f, "\n]}\n");
    return hc_atomic_close(&af, 1);
}
