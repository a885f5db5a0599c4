/* trace.h: a timeline recorder for `hcinfer bench --trace`: complete events (name, thread lane,
 * start, duration) written as Chrome trace JSON (chrome://tracing, Perfetto). */
#ifndef HC_TRACE_H
#define HC_TRACE_H

#include <stdint.h>

#include "hc/hc_status.h"

typedef struct hc_trace_event {
    const char *name;   /* must outlive the trace (stage and job names do) */
    int lane;           /* 0 device thread, 1 host threads, 2 device waiting for the host */
    uint64_t start_ns, dur_ns;
} hc_trace_event;

typedef struct hc_trace {
    hc_trace_event *ev;
    int n, cap;          /* recording stops silently at cap */
    uint64_t origin_ns;
    const char *label;   /* prepended to lanes ("async") */
} hc_trace;

HC_API hc_status hc_trace_init(hc_trace *t, int cap);
HC_API void hc_trace_free(hc_trace *t);
void hc_trace_add(hc_trace *t, const char *name, int lane, uint64_t start_ns, uint64_t dur_ns);
/* Writes the events (several traces = several processes in the viewer) atomically. */
HC_API hc_status hc_trace_write(const char *path, const hc_trace *traces, int n_traces);

#endif
