/* rank_control.c: a proportional controller per branch job: when the host took longer than the
 * budgeted share of the job's overlap window (or the device waited), ranks shrink in proportion;
 * when there is slack, they grow back by a tenth of their stored rank per step. */
#include "rank_control.h"

#include <math.h>

#include "context.h"

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

void hc_rank_control_step(hc_rank_control *rc, hc_context *c)
{
    if (!c->brt || rc->host_budget <= 0) return;
    rc->steps++;
    int n = hc_branch_rt_n_jobs(c->brt);
    for (int j = 0; j < n; j++) {
        hc_job_times t;
        hc_branch_rt_job_times(c->brt, j, &t);
        if (!t.ran || !t.window_ns) continue;
        /* the host may use budget x the window; the window contains the host's own wait */
        double window = (double)t.window_ns - (double)t.wait_ns;
        double allowed = rc->host_budget * (window > 0 ? window : 1.0);
        double ratio = allowed / (double)(t.host_ns ? t.host_ns : 1);
        int stages[4], ns = hc_branch_rt_job_stages(c->brt, j, stages);
        for (int k = 0; k < ns; k++) {
            hc_stage *s = &c->stages[stages[k]];
            int stored = stored_rank(c, s), r = s->active_rank;
            if (!stored || s->branch_enabled <= 0) continue;
            if (t.wait_ns > 0.05 * window || ratio < 0.95) {
                /* too slow: shrink in proportion (at least by one) */
                int nr = (int)floor(r * fmin(ratio, 0.95));
                if (nr >= r) nr = r - 1;
                s->active_rank = nr < 1 ? 1 : nr;
            } else if (ratio > 1.3 && r < stored) {
                int step = stored / 10 > 1 ? stored / 10 : 1;
                s->active_rank = r + step > stored ? stored : r + step;
            }
        }
    }
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
