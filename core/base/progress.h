/* progress.h: a progress report for long loops (evaluation, calibration): done/total, rate and
 * ETA, redrawn in place at most ~10 times a second on a terminal, else one line every 10%. */
#ifndef HC_PROGRESS_H
#define HC_PROGRESS_H

#include <stdio.h>

#include "hc/hc_api.h"

typedef struct hc_progress {
    FILE *out;            /* NULL: report nothing */
    const char *label;    /* e.g. "ppl" */
    const char *unit;     /* e.g. "chunks", "rows" */
    long total;           /* 0: unknown */
    long done;
    int tty;              /* out is a terminal: redraw one line in place */
    int tenths;           /* not a terminal: the last 10% step reported */
    double t_start;       /* seconds, monotonic clock */
    double t_drawn;       /* when the bar was last drawn (tty) */
    double min_interval;  /* seconds between two redraws (0.1) */
} hc_progress;

/* Starts a report on out (stderr usually; NULL for none). The terminal check is isatty(out). */
HC_API void hc_progress_begin(hc_progress *p, FILE *out, const char *label, const char *unit, long total);
/* Sets the count of finished units; draws when due. */
HC_API void hc_progress_update(hc_progress *p, long done);
/* Draws the final state and ends the line. */
HC_API void hc_progress_end(hc_progress *p);

/* Formats one report line without the terminal control characters ("label 30/100 rows
 * 12.5 rows/s ETA 0:06"); returns the length, as snprintf does. For tests and logs. */
HC_API int hc_progress_format(const hc_progress *p, double now, char *buf, size_t cap);

#endif
