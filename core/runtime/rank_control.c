/* rank_control.c: a proportional controller per branch job: when the host took longer than the
 * budgeted share of the job's overlap window (or the device waited), ranks shrink in proportion;
 * when there is slack, they grow back by a tenth of their stored rank per step. A job still too
 * slow at rank 1 is switched off (rank 0) and tried again at rank 1 after 8, 16, ... 256 steps. */
#include "rank_control.h"

#include <math.h>
#include <stdlib.h>

#include "context.h"

enum { FIRST_BACKOFF = 8, MAX_BACKOFF = 256 };

/* The largest rank a stage can run: its branch's, or the largest of its experts' branches (one
 * active rank caps every expert of a MoE stage); 0 without branches. */
static int stored_rank(const hc_context *c, const hc_stage *s)
{
    if (s->branch) return s->branch->rank;
    int mx = 0;
    for (int e = 0; s->expert_branch && e < c->model->cfg.n_expert; e++)
        if (s->expert_branch[e].rank > mx) mx = s->expert_branch[e].rank;
    return mx;
}

/* The highest active rank among a job's stages with branches (0: the job does nothing). */
static int job_rank(const hc_context *c, const int *stages, int ns)
{
    int mx = 0;
    for (int k = 0; k < ns; k++) {
        const hc_stage *s = &c->stages[stages[k]];
        if (stored_rank(c, s) && s->branch_enabled > 0 && s->active_rank > mx) mx = s->active_rank;
    }
    return mx;
}

/* Per-job state of switched-off jobs, made at the first step (NULL when out of memory: then ranks
 * stop at 1, as there would be no way back from 0). */
static void ensure_state(hc_rank_control *rc, int n)
{
    if (rc->n_jobs == n || rc->n_jobs < 0) return;
    free(rc->probe_in);
    free(rc->backoff);
    rc->probe_in = calloc((size_t)n, sizeof *rc->probe_in);
    rc->backoff = calloc((size_t)n, sizeof *rc->backoff);
    rc->n_jobs = rc->probe_in && rc->backoff ? n : -1;
}

/* Shrinks or grows the ranks of job j's stages from its last step's times. */
static void control_job(hc_rank_control *rc, hc_context *c, int j, const int *stages, int ns)
{
    hc_job_times t;
    hc_branch_rt_job_times(c->brt, j, &t);
    if (!t.ran || !t.window_ns) return;
    /* the host may use budget x the window; the window contains the host's own wait */
    double window = (double)t.window_ns - (double)t.wait_ns;
    double allowed = rc->host_budget * (window > 0 ? window : 1.0);
    double ratio = allowed / (double)(t.host_ns ? t.host_ns : 1);
    int can_stop = rc->n_jobs > 0, probing = can_stop && rc->probe_in[j] < 0;
    /* a probe is judged by its host time alone: the device's wait on it includes waking the host
       threads, which slept while the job was off */
    int too_slow = (!probing && t.wait_ns > 0.05 * window) || ratio < 0.95;
    if (probing) rc->probe_in[j] = 0;
    for (int k = 0; k < ns; k++) {
        hc_stage *s = &c->stages[stages[k]];
        int stored = stored_rank(c, s), r = s->active_rank;
        if (!stored || s->branch_enabled <= 0) continue;
        if (too_slow) {
            /* shrink in proportion (at least by one); to 0 only from rank 1 */
            int nr = (int)floor(r * fmin(ratio, 0.95));
            if (nr >= r) nr = r - 1;
            if (nr < 1) nr = r > 1 || !can_stop ? 1 : 0;
            s->active_rank = nr;
        } else if (ratio > 1.3 && r < stored) {
            int step = stored / 10 > 1 ? stored / 10 : 1;
            s->active_rank = r + step > stored ? stored : r + step;
        }
    }
    if (!can_stop) return;
    if (too_slow && job_rank(c, stages, ns) == 0) { /* off: try again later, waiting longer each time */
        rc->backoff[j] = rc->backoff[j] ? (2 * rc->backoff[j] > MAX_BACKOFF ? MAX_BACKOFF : 2 * rc->backoff[j]) : FIRST_BACKOFF;
        rc->probe_in[j] = rc->backoff[j];
    } else if (!too_slow) rc->backoff[j] = 0;
}

void hc_rank_control_step(hc_rank_control *rc, hc_context *c)
{
    if (!c->brt || rc->host_budget <= 0) return;
    rc->steps++;
    /* a device timed with events measures every few passes (context.h): the passes between keep
       the last times, which were acted on already */
    int stale = hc_branch_rt_device_timed(c->brt) && !c->stage_timed;
    int n = hc_branch_rt_n_jobs(c->brt);
    ensure_state(rc, n);
    for (int j = 0; j < n; j++) {
        int stages[4], ns = hc_branch_rt_job_stages(c->brt, j, stages);
        if (rc->n_jobs > 0 && rc->probe_in[j] > 0) { /* switched off by the controller */
            if (job_rank(c, stages, ns) > 0) rc->probe_in[j] = 0; /* someone (on_step) turned it on */
            else if (--rc->probe_in[j] == 0) {
                for (int k = 0; k < ns; k++) {
                    hc_stage *s = &c->stages[stages[k]];
                    if (stored_rank(c, s) && s->branch_enabled > 0) s->active_rank = 1; /* the probe */
                }
                rc->probe_in[j] = -1; /* judged after its step */
            }
            continue;
        }
        if (!stale) control_job(rc, c, j, stages, ns);
    }
}

void hc_rank_control_free(hc_rank_control *rc)
{
    free(rc->probe_in);
    free(rc->backoff);
    rc->probe_in = rc->backoff = NULL;
    rc->n_jobs = 0;
}

void hc_rank_control_summary(const hc_context *c, double *mean_share, double *min_share, double *mean_rank)
{
    double sum = 0, sum_rank = 0, mn = 1.0;
    int n = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const hc_stage *s = &c->stages[i];
        int stored = stored_rank(c, s);
        if (!stored || s->branch_enabled <= 0) continue;
        double share = (double)s->active_rank / stored;
        sum += share;
        sum_rank += s->active_rank;
        if (share < mn) mn = share;
        n++;
    }
    *mean_share = n ? sum / n : 0;
    *min_share = n ? mn : 0;
    *mean_rank = n ? sum_rank / n : 0;
}
