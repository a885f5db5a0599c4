/* progress.c: the progress report of long loops: a bar redrawn in place (rate-limited) when the
 * stream is a terminal, otherwise one plain line per 10% so that logs stay short. */
#include "progress.h"

#include <string.h>
#include <unistd.h>

#include "clock.h"

void hc_progress_begin(hc_progress *p, FILE *out, const char *label, const char *unit, long total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->label = label ? label : "";
    p->unit = unit ? unit : "";
    p->total = total > 0 ? total : 0;
    p->tty = out && isatty(fileno(out));
    p->t_start = hc_now_seconds();
    p->t_drawn = -1.0;
    p->min_interval = 0.1;
}

/* "1:02:03" or "2:03" */
static int format_duration(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7) return snprintf(buf, cap, "?");
    long t = (long)(s + 0.5);
    if (t >= 3600) return snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

int hc_progress_format(const hc_progress *p, double now, char *buf, size_t cap)
{
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 && p->done > 0 ? (double)p->done / elapsed : 0.0;
    char tail[64] = "";
    if (p->total > 0 && p->done >= p->total) {
        char d[32];
        format_duration(elapsed, d, sizeof d);
        snprintf(tail, sizeof tail, "done in %s", d);
    } else if (p->total > 0 && rate > 0) {
        char d[32];
        format_duration((double)(p->total - p->done) / rate, d, sizeof d);
        snprintf(tail, sizeof tail, "ETA %s", d);
    }
    if (p->total > 0)
        return snprintf(buf, cap, "%s %ld/%ld %s (%d%%), %.3g %s/s%s%s", p->label, p->done, p->total, p->unit,
                        (int)(100.0 * (double)p->done / (double)p->total), rate, p->unit, tail[0] ? ", " : "", tail);
    return snprintf(buf, cap, "%s %ld %s, %.3g %s/s", p->label, p->done, p->unit, rate, p->unit);
}

static void draw_bar(hc_progress *p, double now)
{
    char line[256];
    hc_progress_format(p, now, line, sizeof line);
    char bar[21];
    int filled = p->total > 0 ? (int)(20.0 * (double)p->done / (double)p->total) : 0;
    if (filled > 20) filled = 20;
    for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
    bar[20] = '\0';
    fprintf(p->out, "\r[%s] %s\033[K", bar, line);
    fflush(p->out);
    p->t_drawn = now;
}

void hc_progress_update(hc_progress *p, long done)
{
    p->done = done;
    if (!p->out) return;
    double now = hc_now_seconds();
    if (p->tty) {
        if (p->t_drawn < 0 || now - p->t_drawn >= p->min_interval) draw_bar(p, now);
        return;
    }
    if (p->total <= 0) return;
    int tenths = (int)(10 * (double)done / (double)p->total);
    if (tenths > 10) tenths = 10;
    if (tenths > p->tenths && done < p->total) {
        char line[256];
        hc_progress_format(p, now, line, sizeof line);
        fprintf(p->out, "%s\n", line);
        fflush(p->out);
        p->tenths = tenths;
    }
}

void hc_progress_end(hc_progress *p)
{
    if (!p->out) return;
    if (p->done == 0 && p->t_drawn < 0) { /* nothing was reported (a failure before the first unit) */
        p->out = NULL;
        return;
    }
    double now = hc_now_seconds();
    if (p->tty) {
        draw_bar(p, now);
        fputc('\n', p->out);
    } else {
        char line[256];
        hc_progress_format(p, now, line, sizeof line);
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->out = NULL;
}
