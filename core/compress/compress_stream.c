/* compress_stream.c: the streaming pass: embed the calibration tokens, then per layer: its weights
 * in f32, its forward pass observed (source weights: the next layer's inputs too), with --awq its
 * scales (compress_awq.c), its inputs' statistics, its jobs on the thread pool, with sequential
 * calibration a second forward pass through the compressed layer; then the head. Memory: one
 * layer, its rows, the hidden states. */
#include "compress_stream.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "calib.h"
#include "calib_stats.h"
#include "clock.h"
#include "compress_awq.h"
#include "compress_factor.h"
#include "compress_sample.h"
#include "compress_source.h"
#include "compress_tensor_quant.h"
#include "compress_text.h"
#include "context.h"
#include "threadpool.h"

/* The calibration side: tokens, the context running single layers, the hidden states. */
typedef struct stream {
    hc_compress_state *cs;
    int32_t *ids;
    int64_t n;                /* tokens */
    int seq;
    hc_device *dev;
    hc_context *ctx;
    hc_calib *calib;
    float *x;                 /* [n][dim] the residual stream at the current layer's input */
    float *x_in;              /* sequential calibration: the layer's input kept for its second pass */
    hc_input_stats *stats;    /* [HC_IN_CLASSES + 2 n_expert] of the current layer */
    int n_stats;
    int *order;               /* job indices of the current layer, largest first */
    int n_order;
    hc_pool *pool;
    atomic_int done;          /* jobs finished (progress) */
} stream;

/* ---- the jobs of a layer on the pool ---- */

typedef struct work {
    stream *s;
    atomic_int next;
    int forward_rank;
    hc_pool_error err;
} work;

static const hc_input_stats *stats_of(stream *s, const hc_compress_job *j)
{
    if (!s->calib) return NULL;
    int k = j->parent ? HC_IN_CLASSES + 2 * j->expert + (j->proj == HC_PROJ_DOWN) : j->layer < 0 ? 0 : (int)hc_proj_input_class(j->proj);
    return &s->stats[k];
}

static void job_task(void *arg, int ith, int nth)
{
    work *w = arg;
    stream *s = w->s;
    hc_compress_state *cs = s->cs;
    for (;;) {
        int i = atomic_fetch_add(&w->next, 1);
        if (i >= s->n_order || atomic_load(&w->err.status) != HC_OK) break;
        hc_compress_job *j = &cs->jobs[s->order[i]];
        hc_status st = hc_compress_factor(cs, j, stats_of(s, j), w->forward_rank);
        if (st != HC_OK) {
            hc_pool_error_set(&w->err, st);
            break;
        }
        int done = atomic_fetch_add(&s->done, 1) + 1;
        if (ith == 0 && cs->opts->progress) cs->opts->progress(cs->opts->progress_ctx, "quantize", done, cs->n_jobs);
    }
}

/* Largest jobs first (the pool's threads then end together), in plan order among equals. */
static void sort_by_size(int *order, int n, const hc_compress_job *jobs)
{
    for (int i = 1; i < n; i++) {
        int v = order[i], k = i;
        int64_t sv = jobs[v].in * jobs[v].out;
        while (k > 0 && jobs[order[k - 1]].in * jobs[order[k - 1]].out < sv) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = v;
    }
}

/* The statistics of every input a job of the layer reads (built once, shared). */
static hc_status build_stats(stream *s)
{
    hc_compress_state *cs = s->cs;
    const hc_compress_opts *o = cs->opts;
    int gptq = hc_compress_uses_plugin(cs, "gptq");
    hc_status st = HC_OK;
    for (int i = 0; i < s->n_order && st == HC_OK; i++) {
        const hc_compress_job *j = &cs->jobs[s->order[i]];
        hc_input_stats *x = (hc_input_stats *)stats_of(s, j);
        if (x->x2) continue; /* built */
        const hc_calib_input *in = hc_calib_input_of(s->calib, j->proj, j->parent ? j->expert : -1);
        if (!in || in->width != j->in) return hc_error(HC_E_STATE, "%s: no calibration input of width %lld", j->weight->name, (long long)j->in);
        st = hc_input_stats_build(in, o->whitening, gptq, o->threads, x);
        if (st != HC_OK) hc_error_context(st, "%s: ", j->weight->name);
    }
    return st;
}

static void free_stats(stream *s)
{
    for (int i = 0; i < s->n_stats; i++) hc_input_stats_free(&s->stats[i]);
}

/* Runs the layer's jobs (layer -1: the head's) on the pool. */
static hc_status run_jobs(stream *s, int layer, int forward_rank)
{
    hc_compress_state *cs = s->cs;
    s->n_order = 0;
    for (int i = 0; i < cs->n_jobs; i++)
        if (cs->jobs[i].layer == layer) s->order[s->n_order++] = i;
    sort_by_size(s->order, s->n_order, cs->jobs);
    hc_status st = s->calib ? build_stats(s) : HC_OK;
    if (st == HC_OK) {
        work w = { .s = s, .forward_rank = forward_rank };
        /* the pool's threads own the cores: a job's BLAS calls run on its own thread, unless the job
           is the layer's only one (the head). OpenBLAS's threads beside the pool's (its default without
           --calib, where no cpu device set 1) spin in sched_yield most of the time: 3x the wall time */
        int threads = cs->opts->threads > 0 ? cs->opts->threads : 1;
        openblas_set_num_threads(s->n_order == 1 ? threads : 1);
        hc_pool_run(s->pool, job_task, &w);
        st = hc_pool_error_raise(&w.err);
        openblas_set_num_threads(1);
    }
    free_stats(s);
    return st;
}

/* ---- calibration ---- */

/* The forward pass of `layer` over every calibration sequence, in place on x, observed or not. */
static hc_status forward(stream *s, int layer, float *x, int observe)
{
    int dim = s->cs->model->cfg.dim;
    hc_calib_observe(s->ctx, observe ? s->calib : NULL);
    hc_status st = HC_OK;
    for (int64_t done = 0; done + 1 < s->n && st == HC_OK; done += s->seq) {
        int len = (int)(s->n - done < s->seq ? s->n - done : s->seq);
        hc_context_reset(s->ctx);
        st = hc_context_run_layer(s->ctx, layer, x + (size_t)done * dim, len);
    }
    hc_calib_observe(s->ctx, NULL);
    return st;
}

/* The tokens, the context, the embedded calibration sequences. */
static hc_status calib_open(stream *s)
{
    hc_compress_state *cs = s->cs;
    const hc_compress_opts *o = cs->opts;
    hc_model *m = cs->model;
    int64_t want = o->calib_tokens > 0 ? o->calib_tokens : 8192;
    int self = hc_compress_calib_is_self(o);
    hc_status st = self ? hc_compress_self_ids(cs, want, &s->ids, &s->n, &s->seq) : hc_compress_calib_ids(cs, want, &s->ids, &s->n, &s->seq);
    if (st == HC_OK && self) { /* sampled by the whole source model, as it is mapped */
        hc_device *dev = NULL;
        hc_context *ctx = NULL;
        st = hc_source_context(m, o->threads, s->seq, 0, &dev, &ctx);
        if (st == HC_OK) st = hc_compress_sample_ids(cs, ctx, s->ids, s->n, s->seq, "calibration");
        hc_source_context_close(m, dev, ctx);
    }
    if (st == HC_OK) st = hc_source_context(m, o->threads, s->seq, 1, &s->dev, &s->ctx);
    if (st == HC_OK) st = hc_calib_create(m, &s->calib);
    size_t dim = (size_t)m->cfg.dim;
    if (st == HC_OK && (!(s->x = malloc((size_t)s->n * dim * sizeof *s->x)) ||
                        (o->calib_sequential && !(s->x_in = malloc((size_t)s->n * dim * sizeof *s->x_in)))))
        st = hc_error(HC_E_NOMEM, "out of memory for %lld hidden states of width %zu", (long long)s->n, dim);
    for (int64_t done = 0; done + 1 < s->n && st == HC_OK; done += s->seq) {
        int len = (int)(s->n - done < s->seq ? s->n - done : s->seq);
        st = s->dev->ops->get_rows(s->dev, &m->tok_embd, s->ids + done, len, s->x + (size_t)done * dim);
        s->calib->tokens += len;
    }
    if (st == HC_OK) hc_source_release(m->tok_embd.data, m->tok_embd.nbytes);
    if (st == HC_OK && o->progress) o->progress(o->progress_ctx, "calibrate", s->n, s->n);
    if (st != HC_OK) return hc_error_context(st, "calibration: ");
    return HC_OK;
}

/* The head's input: the final norm of the residual stream, one observation per sequence. */
static hc_status head_rows(stream *s)
{
    hc_model *m = s->cs->model;
    int dim = m->cfg.dim;
    hc_calib_begin_layer(s->calib, -1);
    float *y = malloc((size_t)s->seq * dim * sizeof *y);
    hc_status st = y ? HC_OK : hc_error(HC_E_NOMEM, "out of memory");
    for (int64_t done = 0; done + 1 < s->n && st == HC_OK; done += s->seq) {
        int len = (int)(s->n - done < s->seq ? s->n - done : s->seq);
        st = s->dev->ops->rmsnorm(s->dev, s->x + (size_t)done * dim, m->out_norm.data, y, len, dim, m->cfg.rms_eps);
        if (st == HC_OK) st = hc_calib_add(&s->calib->head, y, len);
    }
    free(y);
    return st;
}

/* ---- the pass ---- */

static hc_status one_layer(stream *s, int l, hc_compress_report *r)
{
    hc_compress_state *cs = s->cs;
    const hc_compress_opts *o = cs->opts;
    hc_source_layer sl;
    double ts = hc_now_seconds();
    hc_status st = hc_source_layer_open(cs->model, l, s->pool, &sl);
    double t0 = hc_now_seconds();
    r->seconds_source += t0 - ts;
    if (st == HC_OK && s->calib) {
        if (l >= 0) {
            size_t bytes = (size_t)s->n * cs->model->cfg.dim * sizeof *s->x;
            if (s->x_in) memcpy(s->x_in, s->x, bytes);
            hc_calib_begin_layer(s->calib, l);
            st = forward(s, l, s->x, 1); /* source weights: the next layer's inputs as well */
            for (int i = 0; st == HC_OK && i < cs->n_jobs; i++) {
                hc_compress_job *j = &cs->jobs[i];
                if (j->layer == l && j->parent) j->routing_frequency = hc_calib_routing_frequency(s->calib, l, j->expert);
            }
        } else st = head_rows(s);
    }
    double t1 = hc_now_seconds();
    r->seconds_calib += t1 - t0;
    int sequential = s->calib && o->calib_sequential && l >= 0;
    if (st == HC_OK && s->calib && o->awq > 0 && l >= 0) st = hc_compress_awq_layer(cs, s->calib, &sl, l, r);
    if (st == HC_OK) st = run_jobs(s, l, sequential ? cs->uniform_rank : -1);
    double t2 = hc_now_seconds();
    r->seconds_quant += t2 - t1;
    if (st == HC_OK && sequential) { /* the next layer's inputs through this one, compressed */
        st = forward(s, l, s->x_in, 0);
        float *t = s->x;
        s->x = s->x_in;
        s->x_in = t;
        r->seconds_calib += hc_now_seconds() - t2;
    }
    ts = hc_now_seconds();
    hc_source_layer_close(&sl);
#ifdef __GLIBC__
    /* the layer's buffers (many, of a few MiB: below malloc's mmap threshold) are free now; give
       their pages back, or the pool threads' arenas keep them from layer to layer */
    malloc_trim(0);
#endif
    r->seconds_source += hc_now_seconds() - ts;
    return st;
}

hc_status hc_compress_stream(hc_compress_state *cs, hc_compress_report *r)
{
    const hc_compress_opts *o = cs->opts;
    hc_model *m = cs->model;
    stream s = { .cs = cs };
    hc_status st = HC_OK;
    s.n_stats = HC_IN_CLASSES + 2 * m->cfg.n_expert;
    if (!(s.stats = calloc((size_t)s.n_stats, sizeof *s.stats)) || !(s.order = malloc((size_t)cs->n_jobs * sizeof *s.order)))
        st = hc_error(HC_E_NOMEM, "compress: out of memory");
    if (st == HC_OK) st = hc_pool_create(o->threads > 0 ? o->threads : 1, NULL, 0, &s.pool);
    if (st == HC_OK && o->calib) {
        double t0 = hc_now_seconds();
        st = calib_open(&s);
        r->seconds_calib += hc_now_seconds() - t0;
    }
    for (int l = 0; l < m->cfg.n_layer && st == HC_OK; l++) st = one_layer(&s, l, r);
    int head = 0;
    for (int i = 0; i < cs->n_jobs; i++) head |= cs->jobs[i].layer < 0;
    if (st == HC_OK && head) st = one_layer(&s, -1, r);
    if (s.calib) {
        r->calib_tokens = s.calib->tokens;
        cs->calib_tokens = s.calib->tokens;
    }
    hc_calib_free(s.calib);
    hc_source_context_close(m, s.dev, s.ctx);
    hc_pool_free(s.pool);
    free(s.stats);
    free(s.order);
    free(s.ids);
    free(s.x);
    free(s.x_in);
    return st;
}
