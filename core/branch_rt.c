/* branch_rt.c: branch jobs (the branches of linear stages sharing one input), their host and
 * device execution, and the calls into the scheduler plugins around every stage of a step. */
#include "branch_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "host_pool.h"
#include "trace.h"

#define MAX_GROUP 4
#define MAX_SCHED 8

enum { JOB_IDLE, JOB_READY, JOB_SUBMITTED, JOB_COMPUTED, JOB_MERGED };

struct hc_branch_job {
    hc_branch_rt *rt;
    char name[64];
    int layer;
    int stage[MAX_GROUP], n_stage;      /* the group's linear stages */
    hc_buf in;
    int in_width;
    int ldt, ldd;                       /* row strides of t (sum of stored ranks) and delta (sum of outs) */
    int stage_t_off[MAX_GROUP], stage_d_off[MAX_GROUP]; /* per group stage: where its t / delta start */
    int t_off[MAX_GROUP], d_off[MAX_GROUP];             /* the same per active branch, this step */
    float *x, *t, *delta;               /* host: input copy, A x, B (A x) */
    hc_tensor a_view[MAX_GROUP], b_view[MAX_GROUP]; /* factors as tensors, for the device */
    /* this step */
    int active[MAX_GROUP], rank[MAX_GROUP], n_active;
    int n_tok, state, backbone_issued, sched;
    uint64_t flops, device_ns_step, device_ns_last, host_ns_last;
    hc_host_job host;
};

typedef struct sched_slot {
    char name[65];
    const hc_sched_ops *ops;
    void *state;
    hc_sched_runtime rt;
} sched_slot;

struct hc_branch_rt {
    hc_context *c;
    const hc_comp_ops *comp;
    hc_host_pool *host;
    hc_branch_job *jobs;
    int n_jobs;
    int *first_of, *last_of;            /* per stage: the job it opens / closes, or -1 */
    hc_branch_job *pending[HC_BUF_COUNT];
    sched_slot sched[MAX_SCHED];
    int n_sched;
    int host_delay_us;
    float *dev_t, *dev_delta;           /* device scratch for run_on_device and uploads */
    float *repack;                      /* host scratch for uploads to a device without host memory */
    hc_branch_stats stats;
};

static const hc_branch *branch_of(const hc_branch_rt *r, int stage) { return r->c->stages[stage].branch; }

/* ---------------- host execution ---------------- */

static void host_job_fn(void *arg, int ith, int nth)
{
    hc_branch_job *j = arg;
    hc_branch_rt *r = j->rt;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        long k0, k1;
        hc_split_range(j->rank[k], ith, nth, 1, &k0, &k1);
        if (k0 < k1)
            st = r->comp->down(branch_of(r, j->active[k]), j->rank[k], j->x, j->n_tok, j->t + j->t_off[k], j->ldt, (int)k0, (int)k1);
    }
    hc_host_pool_barrier(r->host);
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        const hc_branch *b = branch_of(r, j->active[k]);
        long o0, o1;
        hc_split_range(b->out, ith, nth, 16, &o0, &o1);
        if (o0 >= o1) continue;
        for (int row = 0; row < j->n_tok; row++)
            memset(j->delta + (size_t)row * j->ldd + j->d_off[k] + o0, 0, (size_t)(o1 - o0) * sizeof(float));
        st = r->comp->up(b, j->rank[k], j->t + j->t_off[k], j->ldt, j->n_tok, j->delta + j->d_off[k], j->ldd, o0, o1);
    }
    if (ith == 0 && r->host_delay_us > 0) { /* a synthetic slow host, for experiments */
        uint64_t until = hc_now_ns() + (uint64_t)r->host_delay_us * 1000u;
        while (hc_now_ns() < until) {}
    }
    hc_pool_error_set(&j->host.err, st);
}

static hc_status rt_submit(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    if (j->state != JOB_READY) return hc_error(HC_E_STATE, "branch job %s submitted twice", j->name);
    j->host.fn = host_job_fn;
    j->host.ctx = j;
    hc_status st = hc_host_pool_submit(r->host, &j->host);
    if (st == HC_OK) j->state = JOB_SUBMITTED;
    return st;
}

static hc_status rt_wait(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    if (j->state != JOB_SUBMITTED) return j->state >= JOB_COMPUTED ? HC_OK : hc_error(HC_E_STATE, "branch job %s waited for before it was submitted", j->name);
    uint64_t t0 = hc_now_ns();
    hc_status st = hc_host_pool_wait(r->host, &j->host);
    uint64_t waited = hc_now_ns() - t0;
    r->stats.wait_ns += waited;
    j->host_ns_last = j->host.t_end_ns - j->host.t_start_ns;
    if (r->c->trace) {
        hc_trace_add(r->c->trace, j->name, 1, j->host.t_start_ns, j->host_ns_last);
        if (waited > 1000) hc_trace_add(r->c->trace, j->name, 2, t0, waited);
    }
    r->stats.host_ns += j->host_ns_last;
    r->stats.flops += j->flops;
    r->stats.jobs++;
    if (st == HC_OK) j->state = JOB_COMPUTED;
    return st;
}

static hc_status rt_run(void *arg, hc_branch_job *j)
{
    hc_status st = rt_submit(arg, j);
    return st == HC_OK ? rt_wait(arg, j) : st;
}

static hc_status rt_merge(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    hc_context *c = r->c;
    hc_device *d = c->dev;
    if (!j->backbone_issued) return hc_error(HC_E_STATE, "branch job %s merged before its backbone op ran", j->name);
    if (j->state == JOB_MERGED) return hc_error(HC_E_STATE, "branch job %s merged twice", j->name);
    hc_status st = j->state == JOB_SUBMITTED ? rt_wait(arg, j) : HC_OK;
    if (st == HC_OK && j->state != JOB_COMPUTED) st = hc_error(HC_E_STATE, "branch job %s merged before it was computed", j->name);
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        const hc_stage *s = &c->stages[j->active[k]];
        int out = (int)s->branch->out;
        float *y = c->buf[s->out];
        for (int row = 0; row < j->n_tok && st == HC_OK; row++) {
            const float *src = j->delta + (size_t)row * j->ldd + j->d_off[k];
            if (d->host_memory) {
                st = d->ops->add(d, y + (size_t)row * out, src, (size_t)out);
            } else {
                memcpy(r->repack + (size_t)row * out, src, (size_t)out * sizeof(float));
            }
        }
        if (st == HC_OK && !d->host_memory) {
            st = d->ops->upload(d, r->dev_delta, r->repack, (size_t)j->n_tok * out * sizeof(float));
            if (st == HC_OK) st = d->ops->add(d, y, r->dev_delta, (size_t)j->n_tok * out);
        }
    }
    if (st == HC_OK) j->state = JOB_MERGED;
    return st;
}

/* The device computes the branches itself: t = A x, t beyond the active rank zeroed, y += B t. */
static hc_status rt_run_on_device(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    hc_context *c = r->c;
    hc_device *d = c->dev;
    if (!j->backbone_issued) return hc_error(HC_E_STATE, "branch job %s run on the device before its backbone op", j->name);
    if (j->state != JOB_READY) return hc_error(HC_E_STATE, "branch job %s run twice", j->name);
    uint64_t t0 = hc_now_ns();
    hc_status st = HC_OK;
    const float *x = c->buf[j->in];
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        const hc_stage *s = &c->stages[j->active[k]];
        int idx = 0;
        while (j->stage[idx] != j->active[k]) idx++;
        int stored = s->branch->rank, out = (int)s->branch->out;
        st = d->ops->matmul(d, &j->a_view[idx], x, r->dev_t, j->n_tok);
        for (int row = 0; row < j->n_tok && st == HC_OK && j->rank[k] < stored; row++)
            st = d->ops->scale(d, r->dev_t + (size_t)row * stored + j->rank[k], (size_t)(stored - j->rank[k]), 0.0f);
        if (st == HC_OK) st = d->ops->matmul(d, &j->b_view[idx], r->dev_t, r->dev_delta, j->n_tok);
        if (st == HC_OK) st = d->ops->add(d, c->buf[s->out], r->dev_delta, (size_t)j->n_tok * out);
    }
    r->stats.inline_ns += hc_now_ns() - t0;
    if (r->c->trace) hc_trace_add(r->c->trace, j->name, 0, t0, hc_now_ns() - t0);
    if (st == HC_OK) j->state = JOB_MERGED;
    return st;
}

static void rt_info(void *arg, const hc_branch_job *j, hc_job_info *out)
{
    hc_branch_rt *r = arg;
    int busy = 0;
    for (int i = 0; i < r->n_jobs; i++) busy += r->jobs[i].state == JOB_SUBMITTED && !hc_host_job_done(&r->jobs[i].host);
    *out = (hc_job_info){ .name = j->name, .layer = j->layer, .n_branches = j->n_active, .n_tok = j->n_tok, .flops = j->flops,
                          .last_host_ns = j->host_ns_last, .last_device_ns = j->device_ns_last, .host_busy = busy };
}

/* ---------------- set-up ---------------- */

static hc_status build_jobs(hc_branch_rt *r)
{
    hc_context *c = r->c;
    int n = c->n_stages;
    if (!(r->jobs = calloc((size_t)n, sizeof *r->jobs)) || !(r->first_of = malloc((size_t)n * sizeof(int))) ||
        !(r->last_of = malloc((size_t)n * sizeof(int))))
        return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    for (int i = 0; i < n; i++) r->first_of[i] = r->last_of[i] = -1;
    size_t max_rows = (size_t)c->n_batch;
    int max_t = 0, max_out = 0;
    for (int i = 0; i < n;) {
        const hc_stage *s = &c->stages[i];
        if (s->op != HC_OP_LINEAR) {
            i++;
            continue;
        }
        /* a group: consecutive linear stages of one layer reading the same input */
        int end = i + 1;
        while (end < n && end - i < MAX_GROUP && c->stages[end].op == HC_OP_LINEAR && c->stages[end].in0 == s->in0 &&
               c->stages[end].layer == s->layer)
            end++;
        int any = 0;
        for (int k = i; k < end; k++) any |= c->stages[k].branch != NULL;
        if (any) {
            hc_branch_job *j = &r->jobs[r->n_jobs];
            *j = (hc_branch_job){ .rt = r, .layer = s->layer, .in = s->in0, .in_width = c->width[s->in0] };
            int len = snprintf(j->name, sizeof j->name, "%s", s->name);
            for (int k = i; k < end; k++) {
                const hc_stage *g = &c->stages[k];
                j->stage[j->n_stage++] = k;
                if (k > i && len < (int)sizeof j->name) {
                    const char *dot = strrchr(g->name, '.');
                    len += snprintf(j->name + len, sizeof j->name - (size_t)len, "+%s", dot ? dot + 1 : g->name);
                }
                if (!g->branch) continue;
                int idx = j->n_stage - 1;
                j->stage_t_off[idx] = j->ldt;
                j->stage_d_off[idx] = j->ldd;
                j->ldt += g->branch->rank;
                j->ldd += (int)g->branch->out;
                if (g->branch->rank > max_t) max_t = g->branch->rank;
                if (g->branch->out > max_out) max_out = (int)g->branch->out;
                j->a_view[idx] = (hc_tensor){ .name = g->branch->name, .dtype = g->branch->dtype, .n_dims = 2,
                                              .ne = { g->branch->in, g->branch->rank, 1, 1 }, .data = (void *)g->branch->a,
                                              .nbytes = (size_t)(g->branch->in * g->branch->rank) * (g->branch->dtype == HC_F32 ? 4 : 2),
                                              .device = c->dev };
                j->b_view[idx] = (hc_tensor){ .name = g->branch->name, .dtype = g->branch->dtype, .n_dims = 2,
                                              .ne = { g->branch->rank, g->branch->out, 1, 1 }, .data = (void *)g->branch->b,
                                              .nbytes = (size_t)(g->branch->rank * g->branch->out) * (g->branch->dtype == HC_F32 ? 4 : 2),
                                              .device = c->dev };
            }
            if (!(j->x = malloc(max_rows * j->in_width * sizeof(float))) || !(j->t = malloc(max_rows * j->ldt * sizeof(float))) ||
                !(j->delta = malloc(max_rows * j->ldd * sizeof(float))))
                return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
            r->first_of[i] = r->last_of[end - 1] = r->n_jobs++;
        }
        i = end;
    }
    if (!c->dev->host_memory && !(r->repack = malloc(max_rows * (size_t)max_out * sizeof(float))))
        return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    hc_status st = c->dev->ops->alloc(c->dev, max_rows * (size_t)(max_t ? max_t : 1) * sizeof(float), (void **)&r->dev_t);
    if (st == HC_OK) st = c->dev->ops->alloc(c->dev, max_rows * (size_t)(max_out ? max_out : 1) * sizeof(float), (void **)&r->dev_delta);
    return st;
}

hc_status hc_branch_rt_create(hc_context *c, const hc_comp_ops *comp, int host_threads, const int *host_cpus, int n_host_cpus,
                              hc_branch_rt **out)
{
    hc_branch_rt *r = calloc(1, sizeof *r);
    if (!r) return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    r->c = c;
    r->comp = comp;
    hc_status st = hc_host_pool_create(host_threads > 0 ? host_threads : 1, host_cpus, n_host_cpus, &r->host);
    if (st == HC_OK) st = build_jobs(r);
    if (st != HC_OK) {
        hc_branch_rt_free(r);
        return st;
    }
    *out = r;
    return HC_OK;
}

void hc_branch_rt_free(hc_branch_rt *r)
{
    if (!r) return;
    hc_host_pool_free(r->host); /* joins the threads: no job runs past this point */
    for (int i = 0; i < r->n_sched; i++) r->sched[i].ops->destroy(r->sched[i].state);
    for (int i = 0; i < r->n_jobs; i++) {
        free(r->jobs[i].x);
        free(r->jobs[i].t);
        free(r->jobs[i].delta);
    }
    if (r->c && r->c->dev) {
        r->c->dev->ops->free(r->c->dev, r->dev_t);
        r->c->dev->ops->free(r->c->dev, r->dev_delta);
    }
    free(r->jobs);
    free(r->first_of);
    free(r->last_of);
    free(r->repack);
    free(r);
}

int hc_branch_rt_add_scheduler(hc_branch_rt *r, const char *name, const hc_sched_ops *ops)
{
    int i = hc_branch_rt_find_scheduler(r, name);
    if (i >= 0) return i;
    if (r->n_sched == MAX_SCHED) {
        hc_error(HC_E_ARG, "at most %d schedulers can be used at once", MAX_SCHED);
        return -1;
    }
    sched_slot *s = &r->sched[r->n_sched];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ops = ops;
    s->rt = (hc_sched_runtime){ .rt = r, .run = rt_run, .submit = rt_submit, .wait = rt_wait, .merge = rt_merge,
                                .run_on_device = rt_run_on_device, .info = rt_info };
    if (ops->create(&s->rt, &s->state) != HC_OK) {
        hc_error_context(HC_E_PLUGIN, "scheduler '%s': ", name);
        return -1;
    }
    return r->n_sched++;
}

int hc_branch_rt_find_scheduler(const hc_branch_rt *r, const char *name)
{
    for (int i = 0; i < r->n_sched; i++)
        if (!strcmp(r->sched[i].name, name)) return i;
    return -1;
}

const char *hc_branch_rt_scheduler_name(const hc_branch_rt *r, int index)
{
    return index >= 0 && index < r->n_sched ? r->sched[index].name : "?";
}

void hc_branch_rt_use(hc_branch_rt *r, int index)
{
    for (int i = 0; i < r->c->n_stages; i++) r->c->stages[i].sched = index;
}

/* ---------------- the step ---------------- */

static hc_status need(hc_branch_rt *r, hc_branch_job *j)
{
    sched_slot *s = &r->sched[j->sched];
    hc_status st = s->ops->output_needed(s->state, j);
    if (st != HC_OK) return hc_error_context(st, "scheduler '%s', job %s: ", s->name, j->name);
    if (j->state != JOB_MERGED)
        return hc_error(HC_E_PLUGIN, "scheduler '%s' left branch job %s unmerged when its output was needed", s->name, j->name);
    for (int b = 0; b < HC_BUF_COUNT; b++)
        if (r->pending[b] == j) r->pending[b] = NULL;
    return HC_OK;
}

static hc_status flush_buffer(hc_branch_rt *r, int b)
{
    return (b >= 0 && r->pending[b]) ? need(r, r->pending[b]) : HC_OK;
}

hc_status hc_branch_rt_before_stage(hc_branch_rt *r, int i, int rows)
{
    const hc_stage *s = &r->c->stages[i];
    hc_status st = flush_buffer(r, s->in0);
    if (st == HC_OK) st = flush_buffer(r, s->in1);
    if (st == HC_OK) st = flush_buffer(r, s->out);
    if (st != HC_OK || r->first_of[i] < 0) return st;
    hc_branch_job *j = &r->jobs[r->first_of[i]];
    j->n_active = 0;
    j->flops = 0;
    j->device_ns_step = 0;
    for (int k = 0; k < j->n_stage; k++) {
        const hc_stage *g = &r->c->stages[j->stage[k]];
        int rank = g->branch ? (g->active_rank < g->branch->rank ? g->active_rank : g->branch->rank) : 0;
        if (!g->branch || !g->branch_enabled || rank <= 0) continue;
        j->active[j->n_active] = j->stage[k];
        j->rank[j->n_active] = rank;
        j->t_off[j->n_active] = j->stage_t_off[k];
        j->d_off[j->n_active] = j->stage_d_off[k];
        j->n_active++;
        j->flops += 2ull * (uint64_t)rank * (uint64_t)(g->branch->in + g->branch->out) * (uint64_t)rows;
    }
    j->state = JOB_IDLE;
    if (!j->n_active) return HC_OK;
    j->n_tok = rows;
    j->backbone_issued = 0;
    j->sched = s->sched;
    if (j->sched < 0 || j->sched >= r->n_sched) return hc_error(HC_E_STATE, "stage %s has no scheduler", s->name);
    hc_device *d = r->c->dev;
    st = d->ops->download(d, j->x, r->c->buf[j->in], (size_t)rows * j->in_width * sizeof(float));
    if (st != HC_OK) return st;
    j->state = JOB_READY;
    sched_slot *sl = &r->sched[j->sched];
    st = sl->ops->input_ready(sl->state, j);
    return st == HC_OK ? HC_OK : hc_error_context(st, "scheduler '%s', job %s: ", sl->name, j->name);
}

hc_status hc_branch_rt_after_stage(hc_branch_rt *r, int i, uint64_t stage_ns)
{
    r->stats.device_ns += stage_ns;
    if (r->last_of[i] < 0) return HC_OK;
    hc_branch_job *j = &r->jobs[r->last_of[i]];
    if (j->state == JOB_IDLE) return HC_OK;
    for (int k = 0; k < j->n_stage; k++) j->device_ns_step += r->c->stages[j->stage[k]].device_ns;
    j->backbone_issued = 1;
    sched_slot *sl = &r->sched[j->sched];
    hc_status st = sl->ops->backbone_done(sl->state, j);
    if (st != HC_OK) return hc_error_context(st, "scheduler '%s', job %s: ", sl->name, j->name);
    if (j->state != JOB_MERGED)
        for (int k = 0; k < j->n_active; k++) r->pending[r->c->stages[j->active[k]].out] = j;
    return HC_OK;
}

hc_status hc_branch_rt_end_step(hc_branch_rt *r)
{
    hc_status st = HC_OK;
    for (int b = 0; b < HC_BUF_COUNT && st == HC_OK; b++) st = flush_buffer(r, b);
    for (int i = 0; i < r->n_jobs; i++) r->jobs[i].device_ns_last = r->jobs[i].device_ns_step;
    r->stats.steps++;
    return st;
}

void hc_branch_rt_stats(const hc_branch_rt *r, hc_branch_stats *out) { *out = r->stats; }
void hc_branch_rt_reset_stats(hc_branch_rt *r) { memset(&r->stats, 0, sizeof r->stats); }
void hc_branch_rt_set_host_delay(hc_branch_rt *r, int us) { r->host_delay_us = us; }
