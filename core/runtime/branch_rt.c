/* branch_rt.c: branch jobs (the branches of linear stages sharing one input), their host and
 * device execution, and the calls into the scheduler plugins around every stage of a step. */
#include "branch_rt.h"
#include "clock.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "host_pool.h"
#include "moe.h"
#include "trace.h"
#include "transpose.h"

#define MAX_GROUP 4
#define MAX_SCHED 8
/* Device buffers the corrections are uploaded into, reused in turn: a slot is written again only
 * once the add that read it is done (an event, waited for on the device's copy queue). */
#define N_SLOT 8
/* Jobs by flags the host threads may hold at once, not waited for (a step enqueues its jobs without
 * waiting: deeper than 64 layers they would overflow the host pool's queue); at this many, the
 * oldest half is waited for. */
#define MAX_IN_FLIGHT 128

enum { JOB_IDLE, JOB_READY, JOB_SUBMITTED, JOB_COMPUTED, JOB_MERGED };
enum { IN_SYNC, IN_EVENT, IN_FLAG };

/* How long a host thread waits for the device to publish a job's input. */
#define FLAG_PATIENCE_NS 30000000000ull

/* One branch applied to a segment of a job's input rows: an expert's branch on its routed rows. */
typedef struct seg_item {
    const hc_branch *b;
    int rank;                           /* active rank */
    int row0, rows;                     /* its rows of t, delta and the output buffer */
    int xrow0;                          /* its first row of x: row0, or row0 / k where the device routed
                                           the layer and gate/up read the route's input (rows 1) */
    int act;                            /* its stage's index in the job's active list */
    int t_off, d_off;                   /* its columns of t and delta */
    hc_buf out;
    int out_width;
    const hc_tensor *dev;               /* device without host memory: its factors A, B there (2 views) */
} seg_item;

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
    hc_tensor a_view[MAX_GROUP], b_view[MAX_GROUP]; /* device without host memory: the factors there */
    /* this step */
    int active[MAX_GROUP], rank[MAX_GROUP], n_active;
    int n_tok, state, backbone_issued, sched;
    uint64_t flops, device_ns_step, device_ns_last, host_ns_last;
    uint64_t t_ready_ns, wait_ns_last, window_ns_last;
    int ran_last;
    hc_host_job host;
    /* an expert job (a group of MOE_LINEAR stages): its branches are per routed expert, as
       segments of the rows grouped by expert; n_expert 0 for the linear stages' jobs */
    int n_expert;
    seg_item *items;
    int n_items;
    hc_tensor *expert_view;             /* device without host memory: [group stage][expert][A, B] */
    uint64_t bytes;                     /* the factor bytes its items touch this step */
    unsigned char *seen;                /* [n_expert] scratch: experts counted in bytes */
    /* the layer routed on the device (hc_moe_routing.on_device, with the hand-off): the input and the
       experts' ids come down together, and the host thread makes the items, a row each */
    int deferred;
    int32_t *ids;                       /* page-locked [ids_cap]: the rows' experts */
    int ids_cap;                        /* the most rows a pass routed on the device has */
    int *row_order, *expert_rows;       /* [ids_cap], [n_expert + 1] scratch: the rows by expert */
    const float *dev_x;                 /* this step's input on the device: the buffer, or the route's */
    int x_div;                          /* rows of t per row of x (k when gate/up read the route's input) */
    /* the hand-off with a device without host memory (r->handoff) */
    hc_event *ev_in;                    /* the copy of the input into x (page-locked) is done */
    int in_async;                       /* this step's input comes by download_async (IN_EVENT: wait for
                                           ev_in) or by publish (IN_FLAG: wait for flag_in) */
    /* the hand-off by flags (r->flags): in host_alloc'd memory, set to the step's seq by the device
       (flag_in: x holds the input) and by the host (flag_out: out_pinned holds the corrections) */
    uint32_t *flag_in, *flag_out;
    uint32_t seq;
    int in_flight;                      /* submitted to the host threads and not waited for yet */
    float *out_pinned;                  /* page-locked: the corrections packed for their upload */
    hc_event *ev_ready, *ev_wait0, *ev_wait1; /* device timing: input ready; the compute queue's wait */
    int timed;                          /* those were recorded this step */
};

/* One device buffer for uploaded corrections (see N_SLOT). */
typedef struct corr_slot {
    float *dev;
    hc_event *uploaded, *consumed;
    int used;
} corr_slot;

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
    double host_slowdown;     /* > 1: every host job takes this many times its compute time */
    float *dev_t, *dev_delta;           /* device scratch for run_on_device and uploads */
    float *repack;                      /* host scratch for uploads to a device without host memory */
    hc_branch_stats stats;
    /* a device without host memory that has a copy queue: inputs go down by download_async into
       page-locked memory, corrections come back by upload_copyq into slots, added after queue_wait;
       no stream drain, no allocation per token (else: the synchronous download / upload) */
    int handoff;
    int timing;                         /* its events time the device's waits and windows */
    /* the hand-off by flags (hc_handoff HC_HANDOFF_FLAGS; a device with publish and merge_when): a
       linear stages' job publishes its input and merges its corrections by flags, so the step's ops
       need no wait on the host (its graphs hold them); the experts' jobs keep the events */
    int flags;
    uint32_t *flag_mem;                 /* host_alloc'd: 2 per job, then the device's error flag */
    uint32_t seq;                       /* this step's flag value (counts up from 1) */
    atomic_int closing;                 /* the runtime is freed: host threads stop waiting for flags */
    int n_in_flight;                    /* jobs in_flight */
    hc_event *ev_flush;                 /* recorded before waiting for in-flight jobs (see rt_submit) */
    corr_slot slot[N_SLOT];
    int next_slot;
    size_t slot_floats;
};

static const hc_branch *branch_of(const hc_branch_rt *r, int stage) { return r->c->stages[stage].branch; }

/* ---------------- host buffers and the hand-off's events ---------------- */

/* A host buffer of n floats: page-locked (host_alloc) when the input or the corrections travel by
 * the asynchronous hand-off, so that the device's copy queue reads and writes it directly. */
static float *host_floats(hc_branch_rt *r, size_t n)
{
    hc_device *d = r->c->dev;
    void *p = NULL;
    if (!r->handoff) return malloc((n ? n : 1) * sizeof(float));
    return d->ops->host_alloc(d, (n ? n : 1) * sizeof(float), &p) == HC_OK ? p : NULL;
}

static void host_floats_free(hc_branch_rt *r, float *p)
{
    if (!p) return;
    if (r->handoff) r->c->dev->ops->host_free(r->c->dev, p);
    else free(p);
}

/* The job's buffers for the hand-off: x (page-locked), its copy event, the packed corrections, and
 * the timing events. rows: the most rows it takes. */
static hc_status job_handoff_alloc(hc_branch_rt *r, hc_branch_job *j, size_t rows)
{
    hc_device *d = r->c->dev;
    if (!(j->x = host_floats(r, rows * j->in_width)))
        return hc_error(HC_E_NOMEM, "branch runtime: out of (page-locked) memory for the input of %s", j->name);
    if (!r->handoff) return HC_OK;
    if (!(j->out_pinned = host_floats(r, rows * j->ldd)))
        return hc_error(HC_E_NOMEM, "branch runtime: out of page-locked memory for the corrections of %s", j->name);
    if (rows * (size_t)j->ldd > r->slot_floats) r->slot_floats = rows * (size_t)j->ldd;
    hc_status st = d->ops->event_create(d, &j->ev_in);
    if (st == HC_OK && r->timing) st = d->ops->event_create(d, &j->ev_ready);
    if (st == HC_OK && r->timing) st = d->ops->event_create(d, &j->ev_wait0);
    if (st == HC_OK && r->timing) st = d->ops->event_create(d, &j->ev_wait1);
    return st;
}

static void job_handoff_free(hc_branch_rt *r, hc_branch_job *j)
{
    hc_device *d = r->c->dev;
    host_floats_free(r, j->x);
    host_floats_free(r, j->out_pinned);
    hc_event *evs[] = { j->ev_in, j->ev_ready, j->ev_wait0, j->ev_wait1 };
    for (int i = 0; i < 4; i++)
        if (evs[i]) d->ops->event_destroy(d, evs[i]);
}

/* ---------------- expert jobs: branches on row segments ---------------- */

/* B of a q8_0 branch as f16 [rank][out], which can be transposed element by element. */
static void *q8_b_as_f16(const hc_branch *b)
{
    uint16_t *h = malloc((size_t)(b->rank * b->out) * 2 + 1);
    float *row = malloc((size_t)b->out * sizeof *row);
    if (!h || !row) {
        free(h), free(row);
        return NULL;
    }
    for (int k = 0; k < b->rank; k++) {
        hc_dequantize_row(HC_Q8_0, (const char *)b->b + (size_t)k * hc_dtype_row_bytes(HC_Q8_0, b->out), row, b->out);
        for (int64_t o = 0; o < b->out; o++) h[(size_t)k * (size_t)b->out + (size_t)o] = hc_f32_to_f16(row[o]);
    }
    free(row);
    return h;
}

/* A branch's factors copied to a device without host memory (its run_on_device path), as the
 * weights of its matmul: A [rank][in] as stored; B transposed to [out][rank] (hc_branch keeps it by
 * direction, [rank][out]), in f16 when the branch is q8_0 (blocks run along out, not rank). */
static hc_status upload_factors(hc_device *d, const hc_branch *b, hc_tensor *a_out, hc_tensor *b_out)
{
    const int q8 = b->dtype == HC_Q8_0;
    const hc_dtype bdt = q8 ? HC_F16 : b->dtype;
    size_t es = hc_dtype_row_bytes(bdt, 1), n_a = (size_t)b->rank * hc_dtype_row_bytes(b->dtype, b->in),
           n_b = (size_t)(b->rank * b->out) * es;
    *a_out = (hc_tensor){ .name = b->name, .dtype = b->dtype, .n_dims = 2, .ne = { b->in, b->rank, 1, 1 }, .nbytes = n_a, .device = d };
    *b_out = (hc_tensor){ .name = b->name, .dtype = bdt, .n_dims = 2, .ne = { b->rank, b->out, 1, 1 }, .nbytes = n_b, .device = d };
    char *bt = malloc(n_b ? n_b : 1);
    void *b16 = q8 ? q8_b_as_f16(b) : NULL;
    if (!bt || (q8 && !b16)) {
        free(bt), free(b16);
        return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    }
    hc_transpose(bt, q8 ? b16 : b->b, b->rank, b->out, es);
    free(b16);
    hc_status st = d->ops->alloc(d, n_a, &a_out->data);
    if (st == HC_OK) st = d->ops->upload(d, a_out->data, b->a, n_a);
    if (st == HC_OK) st = d->ops->alloc(d, n_b, &b_out->data);
    if (st == HC_OK) st = d->ops->upload(d, b_out->data, bt, n_b);
    free(bt);
    if (st != HC_OK) return hc_error_context(st, "branch runtime: copying the branch of %s to %s: ", b->name, d->name);
    return HC_OK;
}

static void free_factors(hc_device *d, hc_tensor *views, int n)
{
    for (int i = 0; views && i < n; i++) d->ops->free(d, views[i].data);
}

/* Phase 1 of an expert job: t = A x of each routed expert's rows (ranks split over threads). */
static hc_status items_down(hc_branch_job *j, int ith, int nth)
{
    hc_branch_rt *r = j->rt;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_items && st == HC_OK; k++) {
        const seg_item *it = &j->items[k];
        long k0, k1;
        hc_split_range(it->rank, ith, nth, 1, &k0, &k1);
        if (k0 < k1)
            st = r->comp->down(it->b, it->rank, j->x + (size_t)it->xrow0 * j->in_width, it->rows,
                               j->t + (size_t)it->row0 * j->ldt + it->t_off, j->ldt, (int)k0, (int)k1);
    }
    return st;
}

/* Phase 2 of an expert job: delta = B t (outputs split over threads). */
static hc_status items_up(hc_branch_job *j, int ith, int nth)
{
    hc_branch_rt *r = j->rt;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_items && st == HC_OK; k++) {
        const seg_item *it = &j->items[k];
        long o0, o1;
        hc_split_range(it->b->out, ith, nth, 16, &o0, &o1);
        if (o0 >= o1) continue;
        float *d = j->delta + (size_t)it->row0 * j->ldd + it->d_off;
        for (int row = 0; row < it->rows; row++) memset(d + (size_t)row * j->ldd + o0, 0, (size_t)(o1 - o0) * sizeof(float));
        st = r->comp->up(it->b, it->rank, j->t + (size_t)it->row0 * j->ldt + it->t_off, j->ldt, it->rows, d, j->ldd, o0, o1);
    }
    return st;
}

static hc_status slot_merge_begin(hc_branch_rt *r, hc_branch_job *j, size_t n, corr_slot **out);
static hc_status slot_merge_end(hc_branch_rt *r, hc_branch_job *j, corr_slot *sl);

/* Adds each item's rows of delta into its output buffer's rows. */
static hc_status merge_items(hc_branch_rt *r, hc_branch_job *j)
{
    hc_device *d = r->c->dev;
    hc_status st = HC_OK;
    if (r->handoff) { /* packed into page-locked memory (an active stage's rows, zero where no branch
                            ran), one upload, an add per active stage */
        const size_t rows = (size_t)j->n_tok;
        size_t off[MAX_GROUP], covered[MAX_GROUP] = { 0 }, total = 0;
        for (int k = 0; k < j->n_items; k++) covered[j->items[k].act] += (size_t)j->items[k].rows; /* a row has one expert */
        for (int a = 0; a < j->n_active; a++) {
            size_t n = rows * (size_t)r->c->width[r->c->stages[j->active[a]].out];
            off[a] = total;
            if (covered[a] < rows) memset(j->out_pinned + total, 0, n * sizeof(float));
            total += n;
        }
        for (int k = 0; k < j->n_items; k++) {
            const seg_item *it = &j->items[k];
            for (int row = 0; row < it->rows; row++)
                memcpy(j->out_pinned + off[it->act] + (size_t)(it->row0 + row) * it->out_width,
                       j->delta + (size_t)(it->row0 + row) * j->ldd + it->d_off, (size_t)it->out_width * sizeof(float));
        }
        corr_slot *sl;
        st = slot_merge_begin(r, j, total, &sl);
        for (int a = 0; a < j->n_active && st == HC_OK; a++) {
            hc_buf out = r->c->stages[j->active[a]].out;
            st = d->ops->add(d, r->c->buf[out], sl->dev + off[a], rows * (size_t)r->c->width[out]);
        }
        return st == HC_OK ? slot_merge_end(r, j, sl) : st;
    }
    for (int k = 0; k < j->n_items && st == HC_OK; k++) {
        const seg_item *it = &j->items[k];
        int out = it->out_width;
        float *y = r->c->buf[it->out] + (size_t)it->row0 * out;
        const float *src = j->delta + (size_t)it->row0 * j->ldd + it->d_off;
        for (int row = 0; row < it->rows && st == HC_OK; row++) {
            if (d->host_memory) st = d->ops->add(d, y + (size_t)row * out, src + (size_t)row * j->ldd, (size_t)out);
            else memcpy(r->repack + (size_t)row * out, src + (size_t)row * j->ldd, (size_t)out * sizeof(float));
        }
        if (st == HC_OK && !d->host_memory) {
            st = d->ops->upload(d, r->dev_delta, r->repack, (size_t)it->rows * out * sizeof(float));
            if (st == HC_OK) st = d->ops->add(d, y, r->dev_delta, (size_t)it->rows * out);
        }
    }
    return st;
}

/* The device computes each item: t = A x (rows of the segment), t beyond the active rank zeroed, y += B t. */
static hc_status items_on_device(hc_branch_rt *r, hc_branch_job *j)
{
    hc_context *c = r->c;
    hc_device *d = c->dev;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_items && st == HC_OK; k++) {
        const seg_item *it = &j->items[k];
        int stored = it->b->rank;
        st = d->ops->matmul(d, &it->dev[0], j->dev_x + (size_t)it->xrow0 * j->in_width, r->dev_t, it->rows);
        for (int row = 0; row < it->rows && st == HC_OK && it->rank < stored; row++)
            st = d->ops->scale(d, r->dev_t + (size_t)row * stored + it->rank, (size_t)(stored - it->rank), 0.0f);
        if (st == HC_OK) st = d->ops->matmul(d, &it->dev[1], r->dev_t, r->dev_delta, it->rows);
        if (st == HC_OK) st = d->ops->add(d, c->buf[it->out] + (size_t)it->row0 * it->out_width, r->dev_delta, (size_t)it->rows * it->out_width);
    }
    return st;
}

/* Expert e's item of group stage k (the job's active stage act) on rows row0 .. row0 + rows - 1 of t,
 * delta and the output buffer; the stages' shared active rank caps the expert's. Returns 0 where the
 * expert's branch does not run. */
static int add_item(hc_branch_job *j, int k, int act, int e, int row0, int rows, int xrow0)
{
    const hc_context *c = j->rt->c;
    const hc_stage *g = &c->stages[j->stage[k]];
    const hc_branch *b = &g->expert_branch[e];
    int rank = g->active_rank < b->rank ? g->active_rank : b->rank;
    if (rank <= 0) return 0;
    int t_off = 0; /* the expert's earlier group stages come first in its rows of t */
    for (int q = 0; q < k; q++) {
        const hc_stage *h = &c->stages[j->stage[q]];
        if (h->expert_branch) t_off += h->expert_branch[e].rank;
    }
    j->items[j->n_items++] = (seg_item){ .b = b, .rank = rank, .row0 = row0, .rows = rows, .xrow0 = xrow0, .act = act,
                                         .t_off = t_off, .d_off = j->stage_d_off[k], .out = g->out, .out_width = c->width[g->out],
                                         .dev = j->expert_view ? j->expert_view + 2 * ((size_t)k * j->n_expert + e) : NULL };
    j->flops += 2ull * (uint64_t)rank * (uint64_t)(b->in + b->out) * (uint64_t)rows;
    if (!j->seen[e]) j->bytes += hc_branch_factor_bytes(b, rank);
    j->seen[e] = 1;
    return 1;
}

/* This step's items of an expert job, from the routing of its layer on the host: an expert's rows
 * are a segment. Returns the number of items (0: nothing to do). */
static int collect_items(hc_branch_job *j, const hc_moe_routing *rt)
{
    const hc_context *c = j->rt->c;
    j->n_items = j->n_active = 0;
    j->flops = j->bytes = 0;
    if (!rt || rt->layer != j->layer) return 0;
    for (int k = 0; k < j->n_stage; k++) {
        if (!hc_moe_stage_branches_run(&c->stages[j->stage[k]])) continue;
        memset(j->seen, 0, (size_t)j->n_expert);
        int any = 0;
        for (int e = 0; e < rt->n_expert && e < j->n_expert; e++) {
            int rows = rt->seg_off[e + 1] - rt->seg_off[e];
            if (rows) any |= add_item(j, k, j->n_active, e, rt->seg_off[e], rows, rt->seg_off[e]);
        }
        if (any) j->active[j->n_active++] = j->stage[k];
    }
    return j->n_items;
}

/* The same where the device routed the layer (j->deferred): an item per row and running stage, from
 * the rows' experts (ids, come with the input), an expert's rows one after another (its factors stay
 * in the cache); the stages were made active in before_stage (the main thread reads the active list
 * meanwhile: it is not written here). */
static hc_status collect_rows(hc_branch_job *j, const int32_t *ids)
{
    const hc_context *c = j->rt->c;
    j->n_items = 0;
    j->flops = j->bytes = 0;
    if (j->n_tok > j->ids_cap)
        return hc_error(HC_E_STATE, "branch job %s: %d routed rows (at most %d)", j->name, j->n_tok, j->ids_cap);
    for (int row = 0; row < j->n_tok; row++)
        if (ids[row] < 0 || ids[row] >= j->n_expert)
            return hc_error(HC_E_NUMERIC, "branch job %s: row %d was routed to expert %d of %d", j->name, row, ids[row], j->n_expert);
    hc_moe_rows_by_expert(ids, j->n_tok, j->n_expert, j->expert_rows, j->row_order);
    int act = 0, changed = 0;
    for (int k = 0; k < j->n_stage; k++) {
        if (!hc_moe_stage_branches_run(&c->stages[j->stage[k]])) continue;
        if ((changed = act == j->n_active || j->active[act] != j->stage[k])) break;
        memset(j->seen, 0, (size_t)j->n_expert);
        for (int p = 0; p < j->n_tok; p++) {
            int row = j->row_order[p];
            add_item(j, k, act, ids[row], row, 1, row / j->x_div);
        }
        act++;
    }
    if (changed || act != j->n_active) return hc_error(HC_E_STATE, "branch job %s: its stages changed during the step", j->name);
    return HC_OK;
}

/* A job for consecutive MOE_LINEAR stages of one layer reading the same input (gate+up, down). */
static hc_status build_expert_job(hc_branch_rt *r, int i, int *end_out, size_t *dev_t_n, size_t *dev_delta_n)
{
    hc_context *c = r->c;
    const hc_stage *s = &c->stages[i];
    const hc_model_config *cfg = &c->model->cfg;
    int end = i + 1;
    while (end < c->n_stages && end - i < MAX_GROUP && c->stages[end].op == HC_OP_MOE_LINEAR && c->stages[end].in0 == s->in0 &&
           c->stages[end].layer == s->layer)
        end++;
    *end_out = end;
    int any = 0;
    for (int k = i; k < end; k++) any |= c->stages[k].expert_branch != NULL;
    if (!any) return HC_OK;
    hc_branch_job *j = &r->jobs[r->n_jobs];
    *j = (hc_branch_job){ .rt = r, .layer = s->layer, .in = s->in0, .in_width = c->width[s->in0], .n_expert = cfg->n_expert };
    int len = snprintf(j->name, sizeof j->name, "%s", s->name);
    int max_out = 0;
    for (int k = i; k < end; k++) {
        const hc_stage *g = &c->stages[k];
        if (k > i && len < (int)sizeof j->name) {
            const char *dot = strrchr(g->name, '.');
            len += snprintf(j->name + len, sizeof j->name - (size_t)len, "+%s", dot ? dot + 1 : g->name);
        }
        j->stage_d_off[j->n_stage] = j->ldd;
        j->stage[j->n_stage++] = k;
        j->ldd += c->width[g->out];
        if (c->width[g->out] > max_out) max_out = c->width[g->out];
    }
    int max_rank = 0;
    for (int e = 0; e < cfg->n_expert; e++) { /* t: per row, its expert's stored ranks of the group */
        int sum = 0;
        for (int k = i; k < end; k++) {
            const hc_branch *arr = c->stages[k].expert_branch;
            if (!arr) continue;
            sum += arr[e].rank;
            if (arr[e].rank > max_rank) max_rank = arr[e].rank;
        }
        if (sum > j->ldt) j->ldt = sum;
    }
    size_t rows = (size_t)c->n_batch * cfg->n_expert_used;
    hc_status hst = job_handoff_alloc(r, j, rows);
    if (hst != HC_OK) return hst;
    /* items: an expert's segment each, or a row each where the device routes (at most ids_cap rows) */
    j->ids_cap = c->moe ? c->moe->device_rows : 0; /* at most rows */
    size_t per_stage = cfg->n_expert > j->ids_cap ? (size_t)cfg->n_expert : (size_t)j->ids_cap;
    if (!(j->t = malloc(rows * (j->ldt ? j->ldt : 1) * sizeof(float))) || !(j->delta = malloc(rows * j->ldd * sizeof(float))) ||
        !(j->items = malloc((size_t)(end - i) * per_stage * sizeof *j->items)) || !(j->seen = malloc((size_t)cfg->n_expert)) ||
        !(j->row_order = malloc((size_t)(j->ids_cap ? j->ids_cap : 1) * sizeof *j->row_order)) ||
        !(j->expert_rows = malloc((size_t)(cfg->n_expert + 1) * sizeof *j->expert_rows)))
        return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    if (r->handoff && j->ids_cap &&
        c->dev->ops->host_alloc(c->dev, (size_t)j->ids_cap * sizeof *j->ids, (void **)&j->ids) != HC_OK)
        return hc_error(HC_E_NOMEM, "branch runtime: out of page-locked memory for the experts' ids of %s", j->name);
    if (!c->dev->host_memory) {
        if (!(j->expert_view = calloc((size_t)(end - i) * cfg->n_expert * 2, sizeof *j->expert_view)))
            return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
        for (int k = i; k < end; k++)
            for (int e = 0; c->stages[k].expert_branch && e < cfg->n_expert; e++) {
                hc_tensor *v = j->expert_view + 2 * ((size_t)(k - i) * cfg->n_expert + e);
                hc_status st = upload_factors(c->dev, &c->stages[k].expert_branch[e], &v[0], &v[1]);
                if (st != HC_OK) return st;
            }
    }
    if (rows * max_rank > *dev_t_n) *dev_t_n = rows * max_rank;
    if (rows * max_out > *dev_delta_n) *dev_delta_n = rows * max_out;
    r->first_of[i] = r->last_of[end - 1] = r->n_jobs++;
    return HC_OK;
}

/* ---------------- host execution ---------------- */

/* Phase 1 of a job: t = A x for every active branch (ranks split over the threads). */
static hc_status job_down(hc_branch_job *j, int ith, int nth)
{
    if (j->n_expert) return items_down(j, ith, nth);
    hc_branch_rt *r = j->rt;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        long k0, k1;
        hc_split_range(j->rank[k], ith, nth, 1, &k0, &k1);
        if (k0 < k1)
            st = r->comp->down(branch_of(r, j->active[k]), j->rank[k], j->x, j->n_tok, j->t + j->t_off[k], j->ldt, (int)k0, (int)k1);
    }
    return st;
}

/* Phase 2 of a job: delta = B t (outputs split over the threads). */
static hc_status job_up(hc_branch_job *j, int ith, int nth)
{
    if (j->n_expert) return items_up(j, ith, nth);
    hc_branch_rt *r = j->rt;
    hc_status st = HC_OK;
    for (int k = 0; k < j->n_active && st == HC_OK; k++) {
        const hc_branch *b = branch_of(r, j->active[k]);
        long o0, o1;
        hc_split_range(b->out, ith, nth, 16, &o0, &o1);
        if (o0 >= o1) continue;
        for (int row = 0; row < j->n_tok; row++)
            memset(j->delta + (size_t)row * j->ldd + j->d_off[k] + o0, 0, (size_t)(o1 - o0) * sizeof(float));
        st = r->comp->up(b, j->rank[k], j->t + j->t_off[k], j->ldt, j->n_tok, j->delta + j->d_off[k], j->ldd, o0, o1);
    }
    return st;
}

/* Until the device published the job's input (flag_in at the job's seq), or an error. */
static hc_status wait_input_flag(hc_branch_job *j)
{
    uint64_t t0 = hc_now_ns();
    for (unsigned spins = 0; (int32_t)(__atomic_load_n(j->flag_in, __ATOMIC_ACQUIRE) - j->seq) < 0; spins++) {
        if (atomic_load(&j->rt->closing))
            return hc_error(HC_E_STATE, "branch job %s: the runtime closed before its input came", j->name);
        if (spins < 1024) {
            _mm_pause();
            continue;
        }
        if (hc_now_ns() - t0 > FLAG_PATIENCE_NS)
            return hc_error(HC_E_DEVICE, "branch job %s: its input did not come from the device within %llu s", j->name,
                            FLAG_PATIENCE_NS / 1000000000ull);
        nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
    }
    return HC_OK;
}

/* A linear stages' job's corrections packed into page-locked out_pinned for their upload: an active
 * stage's rows after another's, as rt_merge adds them. Returns the floats packed. */
static size_t pack_corrections(hc_branch_job *j)
{
    const hc_context *c = j->rt->c;
    size_t off = 0;
    for (int k = 0; k < j->n_active; k++) {
        int out = (int)c->stages[j->active[k]].branch->out;
        for (int row = 0; row < j->n_tok; row++)
            memcpy(j->out_pinned + off + (size_t)row * out, j->delta + (size_t)row * j->ldd + j->d_off[k],
                   (size_t)out * sizeof(float));
        off += (size_t)j->n_tok * out;
    }
    return off;
}

/* The hand-off by flags: the corrections packed, then flag_out set; set on a failure too, so the
 * device does not wait out its patience (the failure is raised when the job is waited for). */
static void publish_corrections(hc_branch_job *j, int ok)
{
    if (ok) pack_corrections(j);
    __atomic_store_n(j->flag_out, j->seq, __ATOMIC_RELEASE);
}

/* A whole job on nth threads: both phases with a barrier between them. */
static void host_job_fn(void *arg, int ith, int nth)
{
    hc_branch_job *j = arg;
    hc_status st = HC_OK;
    if (j->in_async == IN_EVENT) { /* the input is on its way on the device's copy queue */
        hc_device *d = j->rt->c->dev;
        st = d->ops->event_wait(d, j->ev_in);
    } else if (j->in_async == IN_FLAG) {
        st = wait_input_flag(j);
    }
    if (j->deferred) { /* the items, from the experts' ids that came with the input (no items: none run) */
        if (ith == 0 && st == HC_OK) st = collect_rows(j, j->ids);
        if (nth > 1) hc_host_pool_barrier(j->rt->host);
    }
    if (st == HC_OK) st = job_down(j, ith, nth);
    if (nth > 1) hc_host_pool_barrier(j->rt->host);
    if (st == HC_OK) st = job_up(j, ith, nth);
    hc_pool_error_set(&j->host.err, st);
    if (j->in_async == IN_FLAG) {
        if (nth > 1) hc_host_pool_barrier(j->rt->host); /* every thread's rows of delta are written */
        if (ith == 0) publish_corrections(j, atomic_load(&j->host.err.status) == HC_OK);
    }
}

static void device_down_fn(void *arg, int ith, int nth)
{
    hc_branch_job *j = arg;
    hc_pool_error_set(&j->host.err, job_down(j, ith, nth));
}

static void device_up_fn(void *arg, int ith, int nth)
{
    hc_branch_job *j = arg;
    hc_pool_error_set(&j->host.err, job_up(j, ith, nth));
}

/* What the host threads run: the job, plus the synthetic delays of a slow host when asked: a fixed
 * one per job, and a slowdown that stretches each thread's compute time (it shrinks with the rank). */
static void host_job_entry(void *arg, int ith, int nth)
{
    hc_branch_job *j = arg;
    uint64_t t0 = hc_now_ns();
    host_job_fn(arg, ith, nth);
    uint64_t until = hc_now_ns();
    if (j->rt->host_slowdown > 1.0) until += (uint64_t)((double)(until - t0) * (j->rt->host_slowdown - 1.0));
    if (ith == 0 && j->rt->host_delay_us > 0) until += (uint64_t)j->rt->host_delay_us * 1000u;
    while (hc_now_ns() < until) _mm_pause(); /* a slow core, not a hot one: no pressure on a sibling */
}

static hc_status finish_host_job(hc_branch_rt *r, hc_branch_job *j);

/* The oldest half of MAX_IN_FLIGHT jobs by flags waited for (in the order they were submitted: the
 * jobs' order, a step's being waited for before the next's). An event is recorded first: a device
 * that defers its ops (a CUDA graph's stretch being recorded) launches them, so that the inputs
 * those jobs wait for come. The same point of every step: the stretches keep their shapes. */
static hc_status wait_oldest_in_flight(hc_branch_rt *r)
{
    hc_device *d = r->c->dev;
    hc_status st = d->ops->event_record(d, r->ev_flush);
    for (int i = 0; i < r->n_jobs && st == HC_OK && r->n_in_flight > MAX_IN_FLIGHT / 2; i++)
        if (r->jobs[i].in_flight) st = finish_host_job(r, &r->jobs[i]);
    return st;
}

static hc_status rt_submit(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    if (j->state != JOB_READY) return hc_error(HC_E_STATE, "branch job %s submitted twice", j->name);
    if (j->in_flight) { /* the last step's run of it (by flags, not waited for): done by now */
        hc_status st = finish_host_job(r, j);
        if (st != HC_OK) return st;
    }
    if (r->n_in_flight >= MAX_IN_FLIGHT) {
        hc_status st = wait_oldest_in_flight(r);
        if (st != HC_OK) return st;
    }
    j->host.fn = host_job_entry;
    j->host.ctx = j;
    hc_status st = hc_host_pool_submit(r->host, &j->host);
    if (st == HC_OK) j->state = JOB_SUBMITTED;
    return st;
}

/* The host threads' run of a job waited for, and its times counted. */
static hc_status finish_host_job(hc_branch_rt *r, hc_branch_job *j)
{
    uint64_t t0 = hc_now_ns();
    hc_status st = hc_host_pool_wait(r->host, &j->host);
    uint64_t waited = hc_now_ns() - t0;
    r->n_in_flight -= j->in_flight;
    j->in_flight = 0;
    if (!r->timing) { /* with device timing the device's own wait is counted (hc_branch_rt_device_times) */
        r->stats.wait_ns += waited;
        j->wait_ns_last = waited;
    }
    j->host_ns_last = j->host.t_end_ns - j->host.t_start_ns;
    if (r->c->trace) {
        hc_trace_add(r->c->trace, j->name, 1, j->host.t_start_ns, j->host_ns_last);
        if (waited > 1000) hc_trace_add(r->c->trace, j->name, 2, t0, waited);
    }
    r->stats.host_ns += j->host_ns_last;
    r->stats.flops += j->flops;
    if (j->deferred) r->stats.bytes_touched += j->bytes;
    r->stats.jobs++;
    return st;
}

static hc_status rt_wait(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    if (j->state != JOB_SUBMITTED) return j->state >= JOB_COMPUTED ? HC_OK : hc_error(HC_E_STATE, "branch job %s waited for before it was submitted", j->name);
    if (j->in_async == IN_FLAG) { /* the device waits for it (merge_when): the host goes on */
        j->in_flight = 1;
        r->n_in_flight++;
        j->state = JOB_COMPUTED;
        return HC_OK;
    }
    hc_status st = finish_host_job(r, j);
    if (st == HC_OK) j->state = JOB_COMPUTED;
    return st;
}

static hc_status rt_run(void *arg, hc_branch_job *j)
{
    hc_branch_rt *r = arg;
    hc_device *d = r->c->dev;
    hc_status st = HC_OK;
    /* run after the backbone (serial): on a device that computes on its own, the host starts only
       once the device has finished what was enqueued, so that nothing overlaps */
    if (j->backbone_issued && !d->host_memory) st = d->ops->synchronize(d);
    if (st == HC_OK) st = rt_submit(arg, j);
    return st == HC_OK ? rt_wait(arg, j) : st;
}

/* This pass records the jobs' timing events: a device that times with events, on the passes whose
 * stages are timed (context.h: every few), so the others cost the host no more driver calls. */
static int timed_pass(const hc_branch_rt *r) { return r->timing && r->c->stage_timed; }

/* The next slot, its upload of n floats of j->out_pinned enqueued on the copy queue (after the add
 * that last read the slot), and the compute queue told to wait for it; the caller enqueues its adds. */
static hc_status slot_merge_begin(hc_branch_rt *r, hc_branch_job *j, size_t n, corr_slot **out)
{
    hc_device *d = r->c->dev;
    corr_slot *sl = &r->slot[r->next_slot];
    r->next_slot = (r->next_slot + 1) % N_SLOT;
    *out = sl;
    if (n > r->slot_floats)
        return hc_error(HC_E_STATE, "branch job %s: %zu floats of corrections exceed the slot of %zu", j->name, n, r->slot_floats);
    hc_status st = d->ops->upload_copyq(d, sl->dev, j->out_pinned, n * sizeof(float), sl->used ? sl->consumed : NULL, sl->uploaded);
    int timed = timed_pass(r);
    if (st == HC_OK && timed) st = d->ops->event_record(d, j->ev_wait0);
    if (st == HC_OK) st = d->ops->queue_wait(d, sl->uploaded);
    if (st == HC_OK && timed) st = d->ops->event_record(d, j->ev_wait1);
    if (st == HC_OK && timed) j->timed = 1;
    return st;
}

/* After the adds: the slot may be written again once they are done. */
static hc_status slot_merge_end(hc_branch_rt *r, hc_branch_job *j, corr_slot *sl)
{
    hc_device *d = r->c->dev;
    sl->used = 1;
    return d->ops->event_record(d, sl->consumed);
}

/* The job's corrections, packed in device memory at src, added into its stages' outputs: one add_set
 * where the device has it, else an add a stage. */
static hc_status add_corrections(hc_branch_rt *r, hc_branch_job *j, const float *src)
{
    hc_device *d = r->c->dev;
    float *y[HC_MATMUL_SET_MAX];
    size_t len[HC_MATMUL_SET_MAX], off = 0;
    int n = j->n_active, one = d->ops->add_set && n > 1 && n <= HC_MATMUL_SET_MAX;
    hc_status st = HC_OK;
    for (int k = 0; k < n && st == HC_OK; k++) {
        const hc_stage *s = &r->c->stages[j->active[k]];
        size_t m = (size_t)j->n_tok * s->branch->out;
        if (one) y[k] = r->c->buf[s->out], len[k] = m;
        else st = d->ops->add(d, r->c->buf[s->out], src + off, m);
        off += m;
    }
    return one ? d->ops->add_set(d, n, y, src, len) : st;
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
    if (st == HC_OK && j->n_expert) {
        st = merge_items(r, j);
        if (st == HC_OK) j->state = JOB_MERGED;
        return st;
    }
    if (st == HC_OK && j->in_async == IN_FLAG) { /* the host job packed them: the device waits for flag_out */
        size_t off = 0, len[HC_MATMUL_SET_MAX];
        float *y[HC_MATMUL_SET_MAX];
        int timed = timed_pass(r) && j->n_active > 0;
        int one = d->ops->merge_set && j->n_active > 1 && j->n_active <= HC_MATMUL_SET_MAX;
        uint32_t *err = r->flag_mem + 2 * r->n_jobs;
        if (timed) st = d->ops->event_record(d, j->ev_wait0);
        for (int k = 0; k < j->n_active && st == HC_OK; k++) {
            const hc_stage *s = &c->stages[j->active[k]];
            size_t n = (size_t)j->n_tok * s->branch->out;
            if (one) y[k] = c->buf[s->out], len[k] = n; /* all in one op (merge_set), after the loop */
            else st = d->ops->merge_when(d, c->buf[s->out], j->out_pinned + off, n, k == 0 ? j->flag_out : NULL, j->seq, err);
            if (k == 0 && timed && st == HC_OK && !one) st = d->ops->event_record(d, j->ev_wait1);
            off += n;
        }
        if (st == HC_OK && one) st = d->ops->merge_set(d, j->n_active, y, j->out_pinned, len, j->flag_out, j->seq, err);
        if (st == HC_OK && one && timed) st = d->ops->event_record(d, j->ev_wait1);
        if (st == HC_OK && timed) j->timed = 1;
        if (st == HC_OK) j->state = JOB_MERGED;
        return st;
    }
    if (st == HC_OK && r->handoff) { /* packed into page-locked memory, one upload, the adds (add_corrections) */
        corr_slot *sl;
        st = slot_merge_begin(r, j, pack_corrections(j), &sl);
        if (st == HC_OK) st = add_corrections(r, j, sl->dev);
        if (st == HC_OK) st = slot_merge_end(r, j, sl);
        if (st == HC_OK) j->state = JOB_MERGED;
        return st;
    }
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

/* Below this many multiply-adds a job computed by the device is not split over its threads: the
 * hand-offs would cost more than the work (a SmolLM2 layer's job is 20-45 thousand). Splitting
 * does not change any result (every thread computes whole directions and whole rows). */
#define INLINE_SPLIT_MIN_MACS 131072

static long job_macs(const hc_branch_rt *r, const hc_branch_job *j)
{
    long macs = 0;
    for (int k = 0; k < j->n_active; k++) {
        const hc_branch *b = r->c->stages[j->active[k]].branch;
        macs += (long)j->rank[k] * (long)(b->in + b->out) * j->n_tok;
    }
    return macs;
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
    if (d->host_memory) {
        /* the device's memory is the host's: run the very kernels the host threads would (so every
           scheduler gives bit-identical results) on the device's own threads, then merge */
        atomic_store(&j->host.err.status, HC_OK);
        if (d->ops->host_parallel && (j->n_expert || job_macs(r, j) >= INLINE_SPLIT_MIN_MACS)) {
            st = d->ops->host_parallel(d, device_down_fn, j);
            if (st == HC_OK) st = d->ops->host_parallel(d, device_up_fn, j);
        } else {
            host_job_fn(j, 0, 1);
        }
        if (st == HC_OK) st = hc_pool_error_raise(&j->host.err);
        if (st == HC_OK) {
            j->state = JOB_COMPUTED;
            st = rt_merge(arg, j);
        }
        r->stats.inline_ns += hc_now_ns() - t0;
        if (r->c->trace) hc_trace_add(r->c->trace, j->name, 0, t0, hc_now_ns() - t0);
        return st;
    }
    const float *x = c->buf[j->in];
    if (j->deferred) { /* the items need the experts' ids here: they come down at once */
        st = d->ops->download(d, j->ids, c->moe->dev_ids, (size_t)j->n_tok * sizeof *j->ids);
        if (st == HC_OK) st = collect_rows(j, j->ids);
        r->stats.bytes_touched += j->bytes;
    }
    if (j->n_expert && st == HC_OK) st = items_on_device(r, j);
    for (int k = 0; k < j->n_active && st == HC_OK && !j->n_expert; k++) {
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
    /* a job whose items its host thread makes (deferred): their count and flops once it was waited for */
    int known = !j->deferred || j->state >= JOB_COMPUTED;
    *out = (hc_job_info){ .name = j->name, .layer = j->layer, .n_branches = !known ? 0 : j->n_expert ? j->n_items : j->n_active,
                          .n_tok = j->n_tok, .flops = known ? j->flops : 0,
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
    size_t dev_t_n = 0, dev_delta_n = 0; /* scratch floats the expert jobs need */
    for (int i = 0; i < n;) {
        const hc_stage *s = &c->stages[i];
        if (s->op == HC_OP_MOE_LINEAR) {
            hc_status st = build_expert_job(r, i, &i, &dev_t_n, &dev_delta_n);
            if (st != HC_OK) return st;
            continue;
        }
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
                if (!c->dev->host_memory) {
                    hc_status st = upload_factors(c->dev, g->branch, &j->a_view[idx], &j->b_view[idx]);
                    if (st != HC_OK) return st;
                }
            }
            hc_status hst = job_handoff_alloc(r, j, max_rows);
            if (hst != HC_OK) return hst;
            if (!(j->t = malloc(max_rows * j->ldt * sizeof(float))) || !(j->delta = malloc(max_rows * j->ldd * sizeof(float))))
                return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
            r->first_of[i] = r->last_of[end - 1] = r->n_jobs++;
        }
        i = end;
    }
    if (r->flags && r->n_jobs) { /* 2 flags per job, then the device's error flag */
        void *p = NULL;
        size_t bytes = (size_t)(2 * r->n_jobs + 1) * sizeof(uint32_t);
        if (c->dev->ops->host_alloc(c->dev, bytes, &p) != HC_OK)
            return hc_error(HC_E_NOMEM, "branch runtime: out of page-locked memory for the flags");
        memset(p, 0, bytes);
        r->flag_mem = p;
        for (int i = 0; i < r->n_jobs; i++) r->jobs[i].flag_in = r->flag_mem + 2 * i, r->jobs[i].flag_out = r->flag_mem + 2 * i + 1;
        hc_status st = r->n_jobs > MAX_IN_FLIGHT ? c->dev->ops->event_create(c->dev, &r->ev_flush) : HC_OK;
        if (st != HC_OK) return st;
    }
    if (max_rows * (size_t)max_t > dev_t_n) dev_t_n = max_rows * (size_t)max_t;
    if (max_rows * (size_t)max_out > dev_delta_n) dev_delta_n = max_rows * (size_t)max_out;
    if (!c->dev->host_memory && !(r->repack = malloc((dev_delta_n ? dev_delta_n : 1) * sizeof(float))))
        return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    hc_status st = c->dev->ops->alloc(c->dev, (dev_t_n ? dev_t_n : 1) * sizeof(float), (void **)&r->dev_t);
    if (st == HC_OK) st = c->dev->ops->alloc(c->dev, (dev_delta_n ? dev_delta_n : 1) * sizeof(float), (void **)&r->dev_delta);
    for (int k = 0; k < N_SLOT && st == HC_OK && r->handoff && r->n_jobs; k++) {
        corr_slot *sl = &r->slot[k];
        st = c->dev->ops->alloc(c->dev, (r->slot_floats ? r->slot_floats : 1) * sizeof(float), (void **)&sl->dev);
        if (st == HC_OK) st = c->dev->ops->event_create(c->dev, &sl->uploaded);
        if (st == HC_OK) st = c->dev->ops->event_create(c->dev, &sl->consumed);
    }
    return st;
}

hc_status hc_branch_rt_create(hc_context *c, const hc_comp_ops *comp, int host_threads, const int *host_cpus, int n_host_cpus,
                              hc_handoff handoff, hc_branch_rt **out)
{
    hc_branch_rt *r = calloc(1, sizeof *r);
    if (!r) return hc_error(HC_E_NOMEM, "branch runtime: out of memory");
    r->c = c;
    r->comp = comp;
    const hc_device_ops *o = c->dev->ops;
    r->handoff = !c->dev->host_memory && o->download_async && o->upload_copyq && o->queue_wait && o->host_alloc &&
                 o->host_free && o->event_create && o->event_record && o->event_wait;
    r->timing = r->handoff && o->event_elapsed;
    r->seq = 1;
    hc_status st = HC_OK;
    if (handoff == HC_HANDOFF_FLAGS) {
        if (!r->handoff || !o->publish || !o->merge_when)
            st = hc_error(HC_E_UNSUPPORTED, "device '%s' cannot hand branches off by flags (%s)", c->dev->name,
                          c->dev->host_memory ? "its memory is the host's: there is no hand-off" : "it has no publish and merge_when");
        r->flags = 1;
    } else if (handoff != HC_HANDOFF_AUTO && handoff != HC_HANDOFF_EVENTS) {
        st = hc_error(HC_E_ARG, "hand-off %d is neither events nor flags", (int)handoff);
    }
    if (st == HC_OK) st = hc_host_pool_create(host_threads > 0 ? host_threads : 1, host_cpus, n_host_cpus, &r->host);
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
    atomic_store(&r->closing, 1); /* host threads waiting for a flag give up */
    hc_host_pool_free(r->host); /* joins the threads: no job runs past this point */
    for (int i = 0; i < r->n_sched; i++) r->sched[i].ops->destroy(r->sched[i].state);
    /* the jobs built, and the one being built when set-up failed (zeroed past it) */
    int n_built = r->jobs && r->n_jobs < r->c->n_stages ? r->n_jobs + 1 : r->n_jobs;
    for (int i = 0; i < n_built; i++) {
        job_handoff_free(r, &r->jobs[i]);
        free(r->jobs[i].t);
        free(r->jobs[i].delta);
        free(r->jobs[i].items);
        free(r->jobs[i].seen);
        free(r->jobs[i].row_order);
        free(r->jobs[i].expert_rows);
        if (r->jobs[i].ids) r->c->dev->ops->host_free(r->c->dev, r->jobs[i].ids);
        if (r->c && r->c->dev && !r->c->dev->host_memory) {
            hc_branch_job *j = &r->jobs[i];
            free_factors(r->c->dev, j->a_view, MAX_GROUP);
            free_factors(r->c->dev, j->b_view, MAX_GROUP);
            free_factors(r->c->dev, j->expert_view, j->expert_view ? 2 * j->n_stage * j->n_expert : 0);
        }
        free(r->jobs[i].expert_view);
    }
    if (r->c && r->c->dev) {
        hc_device *d = r->c->dev;
        for (int i = 0; r->flag_mem && i < r->n_jobs; i++) /* a device waiting for a job that will not run: released */
            __atomic_store_n(r->jobs[i].flag_out, r->seq, __ATOMIC_RELEASE);
        if (r->handoff && d->ops->synchronize) d->ops->synchronize(d); /* no copy or add in flight on what goes */
        if (r->flag_mem) d->ops->host_free(d, r->flag_mem);
        if (r->ev_flush) d->ops->event_destroy(d, r->ev_flush);
        d->ops->free(d, r->dev_t);
        d->ops->free(d, r->dev_delta);
        for (int k = 0; k < N_SLOT; k++) {
            d->ops->free(d, r->slot[k].dev);
            if (r->slot[k].uploaded) d->ops->event_destroy(d, r->slot[k].uploaded);
            if (r->slot[k].consumed) d->ops->event_destroy(d, r->slot[k].consumed);
        }
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
    j->window_ns_last = hc_now_ns() - j->t_ready_ns;
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
    j->dev_x = r->c->buf[j->in];
    j->x_div = 1;
    j->deferred = 0;
    const hc_moe_routing *rt = r->c->moe && r->c->moe->route.layer == j->layer ? &r->c->moe->route : NULL;
    if (j->n_expert && rt && rt->on_device) { /* the device routed the layer: its ids come down with the input */
        if (!r->handoff || !r->c->moe->dev_ids || rt->n_rows > j->ids_cap)
            return hc_error(HC_E_STATE, "branch job %s: layer %d was routed on the device, and the job cannot read its routing",
                            j->name, j->layer);
        j->deferred = 1;
        j->n_items = 0;
        for (int k = 0; k < j->n_stage; k++)
            if (hc_moe_stage_branches_run(&r->c->stages[j->stage[k]])) j->active[j->n_active++] = j->stage[k];
        if (j->dev_x == rt->gathered) { /* gate and up: the route's input, each row k times */
            j->dev_x = rt->src;
            j->x_div = rt->k;
        }
        rows = rt->n_rows;
    } else if (j->n_expert) { /* an expert job: the branches of this step's routed experts, on their rows */
        collect_items(j, rt);
        r->stats.bytes_touched += j->bytes;
        rows = rt ? rt->n_rows : 0;
    }
    for (int k = 0; k < j->n_stage && !j->n_expert; k++) {
        const hc_stage *g = &r->c->stages[j->stage[k]];
        int rank = g->branch ? (g->active_rank < g->branch->rank ? g->active_rank : g->branch->rank) : 0;
        if (!g->branch || !g->branch_enabled || rank <= 0) continue;
        r->stats.bytes_touched += hc_branch_factor_bytes(g->branch, rank);
        j->active[j->n_active] = j->stage[k];
        j->rank[j->n_active] = rank;
        j->t_off[j->n_active] = j->stage_t_off[k];
        j->d_off[j->n_active] = j->stage_d_off[k];
        j->n_active++;
        j->flops += 2ull * (uint64_t)rank * (uint64_t)(g->branch->in + g->branch->out) * (uint64_t)rows;
    }
    j->state = JOB_IDLE;
    j->wait_ns_last = j->window_ns_last = j->host_ns_last = 0;
    j->ran_last = j->n_active > 0;
    if (!j->n_active) return HC_OK;
    j->t_ready_ns = hc_now_ns();
    j->n_tok = rows;
    j->backbone_issued = 0;
    j->sched = s->sched;
    if (j->sched < 0 || j->sched >= r->n_sched) return hc_error(HC_E_STATE, "stage %s has no scheduler", s->name);
    hc_device *d = r->c->dev;
    size_t in_bytes = (size_t)(rows / j->x_div) * j->in_width * sizeof(float);
    j->in_async = !r->handoff ? IN_SYNC : r->flags && !j->n_expert ? IN_FLAG : IN_EVENT;
    j->seq = r->seq;
    j->timed = 0;
    if (r->handoff && timed_pass(r)) st = d->ops->event_record(d, j->ev_ready);
    if (st != HC_OK) return st;
    if (j->in_async == IN_FLAG) { /* into page-locked x, then flag_in: the host job waits for it */
        st = d->ops->publish(d, j->x, r->c->buf[j->in], in_bytes / sizeof(float), j->flag_in, j->seq);
    } else if (r->handoff) { /* on the copy queue into page-locked x; the host job waits for ev_in */
        if (j->deferred) st = d->ops->download_async(d, j->ids, r->c->moe->dev_ids, (size_t)rows * sizeof *j->ids, NULL);
        if (st == HC_OK) st = d->ops->download_async(d, j->x, j->dev_x, in_bytes, j->ev_in);
    } else {
        st = d->ops->download(d, j->x, r->c->buf[j->in], in_bytes);
    }
    if (st != HC_OK) return st;
    j->state = JOB_READY;
    sched_slot *sl = &r->sched[j->sched];
    st = sl->ops->input_ready(sl->state, j);
    return st == HC_OK ? HC_OK : hc_error_context(st, "scheduler '%s', job %s: ", sl->name, j->name);
}

int hc_branch_rt_joinable(const hc_branch_rt *r, int i)
{
    if (i + 1 >= r->c->n_stages || r->last_of[i] >= 0 || r->first_of[i + 1] >= 0) return 0;
    const hc_stage *s = &r->c->stages[i + 1];
    const int bufs[3] = { s->in0, s->in1, s->out };
    for (int k = 0; k < 3; k++)
        if (bufs[k] >= 0 && r->pending[bufs[k]]) return 0;
    return 1;
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
    else
        j->window_ns_last = hc_now_ns() - j->t_ready_ns;
    return HC_OK;
}

hc_status hc_branch_rt_end_step(hc_branch_rt *r)
{
    hc_status st = HC_OK;
    for (int b = 0; b < HC_BUF_COUNT && st == HC_OK; b++) st = flush_buffer(r, b);
    for (int i = 0; i < r->n_jobs; i++) r->jobs[i].device_ns_last = r->jobs[i].device_ns_step;
    r->stats.steps++;
    r->seq++; /* the next step's flags (a failed step's too: its flags are never taken for the next's) */
    return st;
}

hc_status hc_branch_rt_step_done(hc_branch_rt *r)
{
    hc_status st = HC_OK;
    for (int i = 0; i < r->n_jobs; i++) {
        hc_branch_job *j = &r->jobs[i];
        if (!j->in_flight) continue;
        hc_status js = finish_host_job(r, j); /* the device merged its corrections: the host threads are done */
        if (st == HC_OK) st = js;
    }
    uint32_t *err = r->flag_mem ? r->flag_mem + 2 * r->n_jobs : NULL;
    if (st == HC_OK && err && __atomic_load_n(err, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(err, 0, __ATOMIC_RELAXED);
        st = hc_error(HC_E_DEVICE, "a branch's corrections did not reach device '%s' within its patience: the step's output is "
                                   "wrong", r->c->dev->name);
    }
    return st;
}

void hc_branch_rt_stats(const hc_branch_rt *r, hc_branch_stats *out) { *out = r->stats; }

int hc_branch_rt_n_jobs(const hc_branch_rt *r) { return r->n_jobs; }

void hc_branch_rt_job_times(const hc_branch_rt *r, int job, hc_job_times *out)
{
    const hc_branch_job *j = &r->jobs[job];
    *out = (hc_job_times){ .host_ns = j->host_ns_last, .wait_ns = j->wait_ns_last, .window_ns = j->window_ns_last, .ran = j->ran_last };
}

int hc_branch_rt_job_stages(const hc_branch_rt *r, int job, int *stages)
{
    const hc_branch_job *j = &r->jobs[job];
    for (int k = 0; k < j->n_stage; k++) stages[k] = j->stage[k];
    return j->n_stage;
}

int hc_branch_rt_job_of_stage(const hc_branch_rt *r, int stage)
{
    for (int i = 0; i < r->n_jobs; i++)
        for (int k = 0; k < r->jobs[i].n_stage; k++)
            if (r->jobs[i].stage[k] == stage) return i;
    return -1;
}
void hc_branch_rt_reset_stats(hc_branch_rt *r) { memset(&r->stats, 0, sizeof r->stats); }
void hc_branch_rt_set_host_delay(hc_branch_rt *r, int us) { r->host_delay_us = us; }
void hc_branch_rt_set_host_slowdown(hc_branch_rt *r, double factor) { r->host_slowdown = factor; }

/* After a step on a device with timing events (all of them done: the step's logits were read):
 * the device's own time in the stages (step_device_ns), and per job the device's wait for the
 * corrections and its window from the input being ready to that wait. These replace the host's
 * view, in which the device thread waits only because it runs ahead of an asynchronous device. */
hc_status hc_branch_rt_device_times(hc_branch_rt *r, uint64_t step_device_ns)
{
    hc_device *d = r->c->dev;
    r->stats.device_ns += step_device_ns;
    r->stats.timed_steps += timed_pass(r);
    for (int i = 0; i < r->n_jobs; i++) {
        hc_branch_job *j = &r->jobs[i];
        uint64_t dev = 0;
        for (int k = 0; k < j->n_stage; k++) dev += r->c->stages[j->stage[k]].device_ns;
        j->device_ns_last = dev;
        if (!r->timing || !j->timed) continue;
        uint64_t wait = 0, window = 0;
        hc_status st = d->ops->event_elapsed(d, j->ev_wait0, j->ev_wait1, &wait);
        if (st == HC_OK) st = d->ops->event_elapsed(d, j->ev_ready, j->ev_wait0, &window);
        if (st != HC_OK) return hc_error_context(st, "branch job %s: ", j->name);
        j->wait_ns_last = wait;
        j->window_ns_last = window + wait; /* as on the host: the window contains the wait */
        r->stats.wait_ns += wait;
        j->timed = 0;
    }
    return HC_OK;
}

int hc_branch_rt_device_timed(const hc_branch_rt *r) { return r->timing; }

int hc_branch_rt_reads_device_routing(const hc_branch_rt *r) { return r->handoff; }
