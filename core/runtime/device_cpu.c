/* device_cpu.c: the cpu device. Every op splits its work over the device's thread pool; matmuls
 * use OpenBLAS for f32 weights and the CPU kernels (kernels/cpu) for f16/bf16/quantized ones. */
#include "device_cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geglu.h"
#include "hc/hc_quant.h"
#include "clock.h"
#include "matmul_ggml.h"
#include "ops_cpu.h"
#include "ops_ref.h"
#include "threadpool.h"

typedef struct cpu_device {
    hc_pool *pool;
    atomic_size_t used;
    void *act_scratch;            /* quantized activations for the current matmul */
    size_t act_scratch_bytes;
    float *attn_scratch;          /* attention: per thread hc_cpu_attention_scratch_floats, 64-byte aligned */
    size_t attn_scratch_n;
    hc_rope_cache rope[2];        /* two RoPE bases kept (gemma3's local and global layers alternate) */
    int rope_last;                /* the entry used last */
    int act_f32;                  /* HC_CPU_ACT_INT8=0: quantized weights meet f32 activations (matmul_f32) */
} cpu_device;

struct hc_event {
    int done;
    uint64_t t_ns;   /* when it was recorded: cpu ops are done when they return */
};

static cpu_device *impl(hc_device *d) { return d->impl; }

/* ---------------- memory ---------------- */

/* Every allocation carries its size in front, so the budget can be kept exactly. */
static hc_status cpu_alloc(hc_device *d, size_t n, void **ptr)
{
    cpu_device *c = impl(d);
    size_t budget = d->config.mem_budget;
    if (budget && atomic_load(&c->used) + n > budget)
        return hc_error(HC_E_NOMEM, "cpu device: allocating %zu MiB would exceed its memory budget of %zu MiB (%zu MiB in use)",
                        n >> 20, budget >> 20, atomic_load(&c->used) >> 20);
    size_t *p = aligned_alloc(64, 64 + ((n + 63) & ~(size_t)63));
    if (!p) return hc_error(HC_E_NOMEM, "cpu device: out of memory allocating %zu bytes", n);
    p[0] = n;
    atomic_fetch_add(&c->used, n);
    *ptr = (char *)p + 64;
    return HC_OK;
}

static void cpu_free(hc_device *d, void *ptr)
{
    if (!ptr) return;
    size_t *p = (size_t *)((char *)ptr - 64);
    atomic_fetch_sub(&impl(d)->used, p[0]);
    free(p);
}

static hc_status cpu_copy(hc_device *d, void *dst, const void *src, size_t n)
{
    if (dst != src) memmove(dst, src, n);
    return HC_OK;
}

static hc_status cpu_host_alloc(hc_device *d, size_t n, void **ptr)
{
    *ptr = aligned_alloc(64, (n + 63) & ~(size_t)63);
    return *ptr ? HC_OK : hc_error(HC_E_NOMEM, "cpu device: out of memory allocating %zu host bytes", n);
}

static void cpu_host_free(hc_device *d, void *ptr) { free(ptr); }

static hc_status cpu_download_async(hc_device *d, void *dst, const void *src, size_t n, hc_event *ev)
{
    cpu_copy(d, dst, src, n);
    if (ev) ev->done = 1, ev->t_ns = hc_now_ns();
    return HC_OK;
}

/* The copy queue of the cpu device is the calling thread: the copy is done when this returns. */
static hc_status cpu_upload_copyq(hc_device *d, void *dst, const void *src, size_t n, hc_event *after, hc_event *done)
{
    cpu_copy(d, dst, src, n);
    if (done) done->done = 1, done->t_ns = hc_now_ns();
    return HC_OK;
}

static hc_status cpu_event_create(hc_device *d, hc_event **ev)
{
    *ev = calloc(1, sizeof **ev);
    return *ev ? HC_OK : hc_error(HC_E_NOMEM, "cpu device: out of memory");
}

static void cpu_event_destroy(hc_device *d, hc_event *ev) { free(ev); }

/* cpu ops run to completion before they return, so an event is done when recorded */
static hc_status cpu_event_record(hc_device *d, hc_event *ev)
{
    ev->done = 1;
    ev->t_ns = hc_now_ns();
    return HC_OK;
}

static hc_status cpu_nothing_pending(hc_device *d, hc_event *ev) { return HC_OK; }

static hc_status cpu_event_elapsed(hc_device *d, hc_event *start, hc_event *end, uint64_t *ns)
{
    if (!start->done || !end->done) return hc_error(HC_E_STATE, "cpu device: event_elapsed of an event never recorded");
    *ns = end->t_ns > start->t_ns ? end->t_ns - start->t_ns : 0;
    return HC_OK;
}

/* Within the budget when there is one, else the memory the system has free. */
static hc_status cpu_mem_info(hc_device *d, size_t *available, size_t *total)
{
    size_t used = atomic_load(&impl(d)->used), budget = d->config.mem_budget;
    if (budget) {
        *total = budget;
        *available = used < budget ? budget - used : 0;
        return HC_OK;
    }
    long page = sysconf(_SC_PAGESIZE), avail = sysconf(_SC_AVPHYS_PAGES), all = sysconf(_SC_PHYS_PAGES);
    if (page <= 0 || avail < 0 || all <= 0) return hc_error(HC_E_UNSUPPORTED, "cpu device: the system does not say its memory");
    *available = (size_t)avail * (size_t)page;
    *total = (size_t)all * (size_t)page;
    return HC_OK;
}

/* Every standard type is read by hc_dequantize_row and the ggml kernels; a packed one by its plugin. */
static hc_status cpu_check_weights(hc_device *d, const hc_tensor *w)
{
    const char *name = w->name ? w->name : "(unnamed)";
    if (w->dtype == HC_PACKED) {
        if (!w->qfmt || !w->qfmt->ops || !w->qfmt->ops->matmul_rows || !w->qfmt->ops->dequantize_rows)
            return hc_error(HC_E_UNSUPPORTED, "cpu device: %s: its packed format has no CPU kernel", name);
        return HC_OK;
    }
    if (!hc_dtype_is_known(w->dtype))
        return hc_error(HC_E_UNSUPPORTED, "cpu device: %s: weight type %d is unknown", name, (int)w->dtype);
    return HC_OK;
}
static hc_status cpu_synchronize(hc_device *d) { return HC_OK; }
static size_t cpu_mem_used(hc_device *d) { return atomic_load(&impl(d)->used); }

/* ---------------- matmul ---------------- */

typedef struct matmul_job {
    const hc_tensor *w;
    const float *x;
    const void *xq;
    float *y;
    int n_tok;
    int64_t in, out;
    void *xq_fill;          /* non-NULL: the threads quantize the tokens into it (it is xq) together
                               first, then meet at a barrier */
    hc_pool_barrier quantized;
    hc_row_share *share;    /* GGUF block and packed types: rows taken in chunks, stolen at the end
                               (a packed type's kernel is called once per chunk) */
    hc_pool_error err;      /* first failure of any thread */
    int f32;                /* rows dequantized to f32 and multiplied with x as it is (matmul_f32) */
} matmul_job;

/* The chunks a thread takes from a shared matmul: about this many bytes of weights (an atomic
 * per chunk on the thread's own cache line; 16-row aligned, as the static parts were). */
#define SHARE_CHUNK_BYTES (128 << 10)

typedef struct share_ctx {
    hc_row_share *share;
    int ith;
} share_ctx;

static int share_next(void *arg, int64_t *row0, int64_t *row1, int64_t *pf_end)
{
    share_ctx *c = arg;
    long b, e, pf;
    if (!hc_row_share_next(c->share, c->ith, &b, &e, &pf)) return 0;
    *row0 = b, *row1 = e, *pf_end = pf;
    return 1;
}

/* From this many tokens the activations of a matmul are quantized by all threads, each a share of
 * the tokens, and a barrier follows (for fewer, the calling thread alone costs less than a barrier:
 * a token of 2048 takes about 0.35 us). */
#define SPLIT_QUANT_MIN_TOK 16

/* Rows row0 .. row0 + n - 1 of a 2-D table or matrix (packed, or of any tensor type) in f32 at dst, one
 * after another. */
static void rows_f32(const hc_tensor *t, int64_t row0, int n, float *dst)
{
    const int64_t width = t->ne[0];
    if (t->dtype == HC_PACKED) t->qfmt->ops->dequantize_rows(t->qfmt->params, t->data, width, t->ne[1], row0, n, dst);
    else hc_dequantize_row(t->dtype, (const char *)t->data + hc_dtype_row_bytes(t->dtype, width) * (size_t)row0, dst, n * width);
}

/* The reference for device comparisons (HC_CPU_ACT_INT8=0): a thread's rows dequantized to f32, 16 at
 * a time, and multiplied with the activations as they are, without quantizing them to int8. */
static hc_status matmul_f32(const matmul_job *j, int ith, int nth)
{
    long r0, r1;
    hc_split_range(j->out, ith, nth, 16, &r0, &r1);
    if (r0 >= r1) return HC_OK;
    const hc_tensor *w = j->w;
    float *buf = malloc((size_t)16 * (size_t)j->in * sizeof *buf);
    if (!buf) return hc_error(HC_E_NOMEM, "cpu device: out of memory for 16 rows of %s in f32", w->name ? w->name : "a matrix");
    for (long r = r0; r < r1; r += 16) {
        int n = (int)(r1 - r < 16 ? r1 - r : 16);
        rows_f32(w, r, n, buf);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n_tok, n, (int)j->in, 1.0f, j->x, (int)j->in, buf, (int)j->in,
                    0.0f, j->y + r, (int)j->out);
    }
    free(buf);
    return HC_OK;
}

static void matmul_task(void *arg, int ith, int nth)
{
    matmul_job *j = arg;
    if (j->xq_fill) {
        long t0, t1;
        size_t row = hc_act_q8_bytes(j->in);
        hc_split_range(j->n_tok, ith, nth, 1, &t0, &t1);
        for (long t = t0; t < t1; t++)
            hc_act_quantize_q8(j->x + (size_t)t * (size_t)j->in, (hc_q8_block *)((char *)j->xq_fill + row * (size_t)t), j->in);
        hc_pool_barrier_wait(&j->quantized, nth);
    }
    const hc_tensor *w = j->w;
    if (j->f32) {
        hc_pool_error_set(&j->err, matmul_f32(j, ith, nth));
        return;
    }
    if (j->share && w->dtype == HC_PACKED) {   /* the plugin's kernel, once per chunk */
        long b, e, pf;
        hc_status st = HC_OK;
        while (st == HC_OK && hc_row_share_next(j->share, ith, &b, &e, &pf))
            st = w->qfmt->ops->matmul_rows(w->qfmt->params, w->data, j->in, j->out, j->x, j->xq, j->n_tok, j->y, j->out, b, e);
        hc_pool_error_set(&j->err, st);
        return;
    }
    if (j->share) {
        share_ctx c = { j->share, ith };
        hc_pool_error_set(&j->err, hc_matmul_rows_dyn(w->dtype, w->data, j->in, j->x, j->xq, j->n_tok, j->y, j->out,
                                                      j->out, share_next, &c));
        return;
    }
    long r0, r1;
    hc_split_range(j->out, ith, nth, 16, &r0, &r1);
    if (r0 >= r1) return;
    if (w->dtype == HC_F32) {
        const float *wp = (const float *)w->data + (size_t)r0 * j->in;
        if (j->n_tok == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(r1 - r0), (int)j->in, 1.0f, wp, (int)j->in, j->x, 1, 0.0f, j->y + r0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n_tok, (int)(r1 - r0), (int)j->in, 1.0f, j->x,
                        (int)j->in, wp, (int)j->in, 0.0f, j->y + r0, (int)j->out);
        return;
    }
    hc_status st;
    if (w->dtype == HC_PACKED)
        st = w->qfmt->ops->matmul_rows(w->qfmt->params, w->data, j->in, j->out, j->x, j->xq, j->n_tok, j->y, j->out, r0, r1);
    else
        st = hc_matmul_rows(w->dtype, w->data, j->in, j->x, j->xq, j->n_tok, j->y, j->out, r0, r1);
    hc_pool_error_set(&j->err, st);
}

static hc_status ensure_act_scratch(cpu_device *c, size_t n)
{
    if (n <= c->act_scratch_bytes) return HC_OK;
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) return hc_error(HC_E_NOMEM, "cpu device: out of memory for %zu bytes of activations", n);
    free(c->act_scratch);
    c->act_scratch = p;
    c->act_scratch_bytes = n;
    return HC_OK;
}

static hc_status cpu_matmul(hc_device *d, const hc_tensor *w, const float *x, float *y, int n_tok)
{
    cpu_device *c = impl(d);
    matmul_job j = { .w = w, .x = x, .y = y, .n_tok = n_tok, .in = w->ne[0], .out = w->ne[1] };
    j.f32 = c->act_f32 && (w->dtype == HC_PACKED || (w->dtype != HC_F32 && hc_matmul_wants_q8(w->dtype)));
    if (w->dtype == HC_PACKED && !j.f32) {
        const hc_quant_ops *q = w->qfmt->ops;
        size_t n = q->input_bytes ? q->input_bytes(w->qfmt->params, j.in, n_tok) : 0;
        if (n) {
            hc_status st = ensure_act_scratch(c, n);
            if (st != HC_OK) return st;
            q->prepare_input(w->qfmt->params, x, j.in, n_tok, c->act_scratch);
            j.xq = c->act_scratch;
        }
    } else if (w->dtype != HC_F32 && hc_matmul_wants_q8(w->dtype) && !j.f32) {
        size_t row = hc_act_q8_bytes(j.in);
        hc_status st = ensure_act_scratch(c, row * (size_t)n_tok);
        if (st != HC_OK) return st;
        j.xq = c->act_scratch;
        if (n_tok >= SPLIT_QUANT_MIN_TOK && hc_pool_threads(c->pool) > 1) j.xq_fill = c->act_scratch;
        for (int t = 0; t < n_tok && !j.xq_fill; t++)
            hc_act_quantize_q8(x + (size_t)t * j.in, (hc_q8_block *)((char *)c->act_scratch + row * t), j.in);
    }
    hc_row_share share;   /* on the stack: a cache line per thread */
    if (w->dtype != HC_F32 && !j.f32 && hc_pool_threads(c->pool) > 1) {
        /* a packed row's bytes, from the plugin's size of the whole matrix */
        size_t rb = w->dtype == HC_PACKED ? w->qfmt->ops->packed_bytes(w->qfmt->params, j.out, j.in) / (size_t)(j.out > 0 ? j.out : 1)
                                          : hc_dtype_row_bytes(w->dtype, j.in);
        long chunk = rb ? (long)(SHARE_CHUNK_BYTES / rb) : 16;
        hc_row_share_init(&share, (long)j.out, hc_pool_threads(c->pool), 16, chunk);
        j.share = &share;
    }
    if (j.share && !j.xq_fill) hc_pool_run_shared(c->pool, matmul_task, &j);   /* no barrier inside */
    else hc_pool_run(c->pool, matmul_task, &j);
    hc_status st = hc_pool_error_raise(&j.err);
    if (st != HC_OK) return hc_error_context(st, "matmul %s: ", w->name ? w->name : "");
    return HC_OK;
}

/* ---------------- row-wise ops ---------------- */

/* Ops smaller than this many floats run on the calling thread: a pool dispatch costs more. */
#define POOL_MIN_FLOATS 16384

/* fn over the device's threads, or on the calling thread when the op touches fewer than
 * POOL_MIN_FLOATS floats. */
static void run_sized(hc_device *d, size_t n_floats, hc_pool_fn fn, void *ctx)
{
    if (n_floats < POOL_MIN_FLOATS) fn(ctx, 0, 1);
    else hc_pool_run(impl(d)->pool, fn, ctx);
}

typedef struct rows_job {
    const hc_tensor *table;
    const int32_t *ids;
    const float *x, *w;
    float *y;
    int n_rows, dim;
    float eps;
    hc_status status;
} rows_job;

static void get_rows_task(void *arg, int ith, int nth)
{
    rows_job *j = arg;
    long b, e;
    hc_split_range(j->n_rows, ith, nth, 1, &b, &e);
    for (long i = b; i < e; i++) rows_f32(j->table, j->ids[i], 1, j->y + (size_t)i * (size_t)j->table->ne[0]);
}

static hc_status cpu_get_rows(hc_device *d, const hc_tensor *table, const int32_t *ids, int n, float *out)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->ne[1])
            return hc_error(HC_E_ARG, "get_rows %s: row %d is out of range (0..%lld)", table->name ? table->name : "",
                            (int)ids[i], (long long)table->ne[1] - 1);
    rows_job j = { .table = table, .ids = ids, .y = out, .n_rows = n };
    run_sized(d, (size_t)n * (size_t)table->ne[0], get_rows_task, &j);
    return HC_OK;
}

static void rmsnorm_task(void *arg, int ith, int nth)
{
    rows_job *j = arg;
    long b, e;
    hc_split_range(j->n_rows, ith, nth, 1, &b, &e);
    for (long i = b; i < e; i++)
        hc_cpu_rmsnorm(j->x + (size_t)i * j->dim, j->w, j->y + (size_t)i * j->dim, j->dim, j->eps);
}

static hc_status cpu_rmsnorm(hc_device *d, const float *x, const float *w, float *y, int n_tok, int dim, float eps)
{
    rows_job j = { .x = x, .w = w, .y = y, .n_rows = n_tok, .dim = dim, .eps = eps };
    run_sized(d, (size_t)n_tok * (size_t)dim, rmsnorm_task, &j);
    return HC_OK;
}

typedef struct rope_job {
    float *x;
    int n_tok, n_head, head_dim, n_rot;
    const int32_t *pos;
    const hc_rope_cache *cache;
    hc_rope_mode mode;
} rope_job;

static void rope_task(void *arg, int ith, int nth)
{
    rope_job *j = arg;
    long b, e;
    hc_split_range(j->n_tok, ith, nth, 1, &b, &e);
    const size_t half = (size_t)(j->n_rot / 2);
    for (long t = b; t < e; t++)
        hc_cpu_rope(j->x + (size_t)t * j->n_head * j->head_dim, j->n_head, j->head_dim, j->n_rot,
                    j->cache->cos + (size_t)j->pos[t] * half, j->cache->sin + (size_t)j->pos[t] * half, j->mode);
}

/* The cache entry of (theta, n_rot), else the one not used last. */
static int rope_entry(const cpu_device *c, float theta, int n_rot)
{
    for (int e = 0; e < 2; e++)
        if (c->rope[e].theta == theta && c->rope[e].n_rot == n_rot) return e;
    return 1 - c->rope_last;
}

static hc_status cpu_rope(hc_device *d, float *x, int n_tok, int n_head, int head_dim, int n_rot,
                          const int32_t *pos, float theta, hc_rope_mode mode)
{
    cpu_device *c = impl(d);
    int max_pos = 0;
    for (int t = 0; t < n_tok; t++) {
        if (pos[t] < 0) return hc_error(HC_E_ARG, "rope: negative position %d", (int)pos[t]);
        if (pos[t] > max_pos) max_pos = pos[t];
    }
    int e = rope_entry(c, theta, n_rot);
    hc_status st = hc_rope_cache_prepare(&c->rope[e], theta, n_rot, max_pos + 1);
    if (st != HC_OK) return st;
    c->rope_last = e;
    rope_job j = { .x = x, .n_tok = n_tok, .n_head = n_head, .head_dim = head_dim, .n_rot = n_rot, .pos = pos,
                   .cache = &c->rope[e], .mode = mode };
    run_sized(d, (size_t)n_tok * (size_t)n_head * (size_t)head_dim, rope_task, &j);
    return HC_OK;
}

/* ---------------- attention ---------------- */

typedef struct attn_job {
    const hc_attn_args *a;
    float *scratch;     /* per thread: hc_cpu_attention_scratch_floats */
    size_t per_thread;
} attn_job;

static void attention_task(void *arg, int ith, int nth)
{
    attn_job *j = arg;
    hc_cpu_attention_part(j->a, ith, nth, j->scratch + (size_t)ith * j->per_thread);
}

static hc_status cpu_attention(hc_device *d, const hc_attn_args *a)
{
    if (a->kv_dtype != HC_F32 && a->kv_dtype != HC_F16)
        return hc_error(HC_E_UNSUPPORTED, "cpu attention: a %s KV cache is not implemented (f32 or f16)", hc_dtype_name(a->kv_dtype));
    cpu_device *c = impl(d);
    if (a->pos0 < 0 || a->pos0 + a->n_tok > a->n_ctx)
        return hc_error(HC_E_STATE, "attention: positions %d..%d exceed the context of %d", a->pos0, a->pos0 + a->n_tok - 1, a->n_ctx);
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv)
        return hc_error(HC_E_ARG, "attention: %d heads is not a multiple of %d kv heads", a->n_head, a->n_head_kv);
    if (a->n_tok <= 0) return HC_OK;
    int nth = hc_pool_threads(c->pool);
    size_t per = hc_cpu_attention_scratch_floats(a), need = (size_t)nth * per;
    if (need > c->attn_scratch_n) {
        if (need < 2 * c->attn_scratch_n) need = 2 * c->attn_scratch_n;   /* decoding grows it: by steps */
        float *p = aligned_alloc(64, need * sizeof *p);
        if (!p) return hc_error(HC_E_NOMEM, "attention: out of memory for %zu floats of scratch", need);
        free(c->attn_scratch);
        c->attn_scratch = p;
        c->attn_scratch_n = need;
    }
    attn_job j = { .a = a, .scratch = c->attn_scratch, .per_thread = per };
    hc_pool_run(c->pool, attention_task, &j);   /* a pool of one runs it on this thread */
    if (hc_cpu_attention_splits_keys(a, nth)) hc_cpu_attention_merge(a, nth, c->attn_scratch);
    return HC_OK;
}

/* ---------------- element-wise ---------------- */

typedef struct elem_job {
    float *y;
    const float *x0, *x1;
    size_t n;
    int width;      /* add_bias: the bias length */
    float s;
    int op;         /* ELEM_* */
} elem_job;

enum { ELEM_SWIGLU, ELEM_ADD, ELEM_ADD_BIAS, ELEM_SCALE, ELEM_GEGLU };

static void elem_task(void *arg, int ith, int nth)
{
    elem_job *j = arg;
    long b, e;
    if (j->op == ELEM_ADD_BIAS) {   /* whole rows */
        hc_split_range((long)(j->n / (size_t)j->width), ith, nth, 1, &b, &e);
        for (long t = b; t < e; t++) hc_cpu_add(j->y + (size_t)t * j->width, j->x0, (size_t)j->width);
        return;
    }
    hc_split_range((long)j->n, ith, nth, 16, &b, &e);
    size_t n = (size_t)(e - b);
    switch (j->op) {
    case ELEM_SWIGLU: hc_cpu_swiglu(j->x0 + b, j->x1 + b, j->y + b, n); break;
    case ELEM_ADD: hc_cpu_add(j->y + b, j->x0 + b, n); break;
    case ELEM_GEGLU: hc_cpu_geglu(j->x0 + b, j->x1 + b, j->y + b, n); break;
    default: hc_cpu_scale(j->y + b, n, j->s); break;
    }
}

static void elem_run(hc_device *d, elem_job *j)
{
    run_sized(d, j->n, elem_task, j);
}

static hc_status cpu_swiglu(hc_device *d, const float *gate, const float *up, float *out, size_t n)
{
    elem_job j = { .y = out, .x0 = gate, .x1 = up, .n = n, .op = ELEM_SWIGLU };
    elem_run(d, &j);
    return HC_OK;
}

static hc_status cpu_geglu(hc_device *d, const float *gate, const float *up, float *out, size_t n)
{
    elem_job j = { .y = out, .x0 = gate, .x1 = up, .n = n, .op = ELEM_GEGLU };
    elem_run(d, &j);
    return HC_OK;
}

static hc_status cpu_add(hc_device *d, float *y, const float *x, size_t n)
{
    elem_job j = { .y = y, .x0 = x, .n = n, .op = ELEM_ADD };
    elem_run(d, &j);
    return HC_OK;
}

static hc_status cpu_add_bias(hc_device *d, float *y, const float *b, int n_tok, int width)
{
    if (n_tok <= 0 || width <= 0) return HC_OK;
    elem_job j = { .y = y, .x0 = b, .n = (size_t)n_tok * (size_t)width, .width = width, .op = ELEM_ADD_BIAS };
    elem_run(d, &j);
    return HC_OK;
}

static hc_status cpu_scale(hc_device *d, float *x, size_t n, float s)
{
    elem_job j = { .y = x, .n = n, .s = s, .op = ELEM_SCALE };
    elem_run(d, &j);
    return HC_OK;
}

/* ---------------- optional ops ---------------- */

static hc_status cpu_gate_rows(hc_device *d, float *y, const float *g, int n_tok, int width)
{
    (void)d;
    for (int t = 0; t < n_tok && width > 0; t++) hc_cpu_scale(y + (size_t)t * width, (size_t)width, 1.0f / (1.0f + expf(-g[t])));
    return HC_OK;
}

static hc_status cpu_store_rows(hc_device *d, void *dst, hc_dtype t, const float *src, size_t n)
{
    if (t == HC_F32) {
        memcpy(dst, src, n * sizeof(float));
        return HC_OK;
    }
    if (t != HC_F16) return hc_error(HC_E_UNSUPPORTED, "cpu device: store_rows into %s", hc_dtype_name(t));
    hc_cpu_f32_to_f16(src, dst, n);   /* F16C where the CPU has it; a KV row is too small to split */
    return HC_OK;
}

static hc_status cpu_host_parallel(hc_device *d, void (*fn)(void *ctx, int ith, int nth), void *ctx)
{
    hc_pool_run(impl(d)->pool, fn, ctx);
    return HC_OK;
}

/* ---------------- life cycle ---------------- */

static void cpu_destroy(hc_device *d)
{
    if (!d) return;
    cpu_device *c = impl(d);
    if (c) {
        hc_pool_free(c->pool);
        free(c->act_scratch);
        free(c->attn_scratch);
        hc_rope_cache_free(&c->rope[0]);
        hc_rope_cache_free(&c->rope[1]);
        free(c);
    }
    free(d);
}

static const hc_device_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .download_async = cpu_download_async,
    .upload_async = cpu_copy,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .event_wait = cpu_nothing_pending,
    .synchronize = cpu_synchronize,
    .matmul = cpu_matmul,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .add_bias = cpu_add_bias,
    .scale = cpu_scale,
    .mem_used = cpu_mem_used,
    .destroy = cpu_destroy,
    .store_rows = cpu_store_rows,
    .host_parallel = cpu_host_parallel,
    .upload_copyq = cpu_upload_copyq,
    .queue_wait = cpu_nothing_pending,
    .event_elapsed = cpu_event_elapsed,
    .mem_info = cpu_mem_info,
    .check_weights = cpu_check_weights,
    .geglu = cpu_geglu,
    .gate_rows = cpu_gate_rows,
};

hc_status hc_cpu_device_create(const hc_device_config *cfg, hc_device **out)
{
    hc_device_config conf = cfg ? *cfg : (hc_device_config){ 0 };
    if (conf.n_threads <= 0) conf.n_threads = 1;
    hc_device *d = calloc(1, sizeof *d);
    cpu_device *c = calloc(1, sizeof *c);
    if (!d || !c) {
        free(d);
        free(c);
        return hc_error(HC_E_NOMEM, "cpu device: out of memory");
    }
    d->ops = &cpu_ops;
    d->name = "cpu";
    d->config = conf;
    d->host_memory = 1;
    d->impl = c;
    const char *act = getenv("HC_CPU_ACT_INT8");
    if (act && strcmp(act, "0") && strcmp(act, "1")) {
        cpu_destroy(d);
        return hc_error(HC_E_ARG, "cpu device: HC_CPU_ACT_INT8 is '%s'; it takes 0 (f32 activations for quantized weights) or 1",
                        act);
    }
    c->act_f32 = act && !strcmp(act, "0");
    openblas_set_num_threads(1); /* our pool owns the threads */
    hc_status st = hc_pool_create(conf.n_threads, NULL, 0, &c->pool);
    if (st != HC_OK) {
        cpu_destroy(d);
        return hc_error_context(st, "cpu device: ");
    }
    *out = d;
    return HC_OK;
}

static hc_status cpu_probe(void) { return HC_OK; }

static const hc_device_plugin_ops cpu_plugin_ops = { .probe = cpu_probe, .create = hc_cpu_device_create };

static const hc_plugin_desc cpu_descriptor = {
    .abi_version = HC_ABI_VERSION,
    .kind = HC_PLUGIN_DEVICE,
    .name = "cpu",
    .version = "1.0.0",
    .description = "built-in CPU device: OpenBLAS + AVX2/AVX-512 kernels on its own thread pool",
    .ops = &cpu_plugin_ops,
};

const hc_plugin_desc *hc_cpu_device_descriptor(void) { return &cpu_descriptor; }
