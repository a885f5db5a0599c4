/* device_cuda.c: the cuda device plugin: device memory under a budget, one stream with events, cuBLAS
 * for batched matmuls (f32, or f16 on tensor cores for quantized weights), kernels/cuda's kernels, and
 * single-token passes replayed as CUDA graphs. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"
#include "cuda_kernels.h"
#include "dequant.cuh"
#include "gemm_f16.cuh"
#include "moe.cuh"
#include "hc/hc_device.h"
#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_quant_cuda.h"

/* Largest scratch for dequantized weight rows (f32 or f16) when n_tok > 1: 64 MiB. */
#define CU_SCRATCH_MAX_BYTES ((size_t)64 << 20)
/* Scratch the device allocates on demand, at most: weight rows, f16 activations, attention's splits;
 * mem_info keeps what is not allocated yet out of the memory it reports available. */
#define CU_X16_MAX_BYTES (HC_CU_F16_X_MAX * sizeof(uint16_t))
/* the block types' one-token GEMVs with x quantized to int8: larger x (a long MoE pass) stays f32 */
#define CU_XQ_MAX_BYTES ((size_t)4 << 20)
#define CU_ATTN_MAX_BYTES (hc_cu_attn_scratch_floats(HC_CU_ATTN_TARGET_BLOCKS - 1, 1, HC_CU_ATTN_MAX_DIM, \
                                                     HC_CU_ATTN_MAX_SPLITS) * sizeof(float))
/* matmul_id of more than CU_MOE_SORT_ROWS routed rows (a prompt routed on the device) sorts them by
 * expert first: the rows' order, ids and input rows (3 ints a row, at most HC_CU_MAX_GRID_YZ rows),
 * and the sorted input and output rows, in chunks of at most CU_MOE_ROWS_MAX_BYTES (less with
 * HC_CUDA_MOE_ROWS_BYTES, which tests use to make chunks). */
#define CU_MOE_SORT_ROWS 64
#define CU_MOE_INTS_MAX_BYTES ((size_t)3 * HC_CU_MAX_GRID_YZ * sizeof(int32_t))
#define CU_MOE_ROWS_MAX_BYTES ((size_t)32 << 20)
/* Slots for host arrays (token ids, positions) on their way to the device. A slot is reused only
 * once its previous copy has left the pinned buffer, so the host may run that many calls ahead. */
#define CU_STAGE_SLOTS 8
/* CUDA graphs (graph_step): a pass is cut into stretches of at most this many ops (HC_CUDA_GRAPH_OPS;
 * 0: no graphs), so that the GPU runs one stretch while the host records the next. A stretch that
 * had fewer than CU_GRAPH_MIN_OPS ops (or HC_CUDA_GRAPH_OPS when less) in the last pass runs as plain
 * launches: recording, updating and launching a graph costs the host about what a few launches do. */
#define CU_GRAPH_OPS_DEFAULT 64
#define CU_GRAPH_OPS_MAX 100000
#define CU_GRAPH_MIN_OPS 8
#define CU_GRAPH_SEGMENTS 512

typedef struct cu_alloc {
    void *ptr;
    size_t n;
} cu_alloc;

typedef struct cu_stage {
    int32_t *host;          /* pinned */
    int32_t *dev;
    size_t cap;             /* elements of both */
    cudaEvent_t copied;     /* recorded after the copy out of `host` */
    int has_event, pending;
} cu_stage;

/* One stretch of a pass, by its place in the pass: the executable graph recorded for it, updated
 * with each new recording (cudaGraphExecUpdate), instantiated again when its shape changed. */
typedef struct cu_segment {
    cudaGraphExec_t exec;
    int has_exec;
    int ops_last;           /* ops the stretch had in the last pass (0: not seen yet) */
} cu_segment;

/* A merge by flags held back for the op after it (HC_CUDA_FUSE): that op adds the corrections in its own
 * kernel where it reads all the merge's outputs (add_rmsnorm, swiglu, rope_store: pend_fold), any other
 * op launches the merge first (pend_flush, from graph_op and graph_flush). The corrections lie one after
 * another from src[0] (as merge_set packs them); held by one thread of the pass (pend_owner). */
typedef struct cu_pending {
    int n;
    float *y[HC_CU_MERGE_MAX];
    const float *src[HC_CU_MERGE_MAX];
    size_t len[HC_CU_MERGE_MAX];
    const uint32_t *flag;
    uint32_t seq;
    uint32_t *err;
} cu_pending;

/* The floats of a held merge's corrections, one array after another from src[0]. */
static size_t pend_total(const cu_pending *p)
{
    size_t total = 0;
    for (int k = 0; k < p->n; k++) total += p->len[k];
    return total;
}

/* An op that may publish its output (add_rmsnorm or swiglu, with the merge it folds, attention, or a plain
 * rmsnorm: the first layer's input): held back for a publish that may come next (HC_CUDA_FUSE, once the
 * device has published by a kernel), or launched at once (op_launch). The next op launches a held one
 * (pend_flush), with the publish in its kernel when that op is the publish of the held op's output
 * (cuda_publish). Held by pend_owner too; a merge and an op are never held at once. */
enum { HELD_NONE, HELD_ADD_RMSNORM, HELD_SWIGLU, HELD_ATTENTION, HELD_RMSNORM };
typedef struct cu_held {
    int kind;
    float *x, *y;           /* add_rmsnorm's x and y; swiglu's and attention's output as y */
    const float *r, *w, *gate, *up; /* r: add_rmsnorm's, or rmsnorm's input */
    int n_tok, dim;
    float eps;
    size_t n;               /* y's floats */
    int has_merge;
    hc_cu_merge m;
    hc_attn_args attn;      /* attention's, in n_splits */
    int n_splits;
} cu_held;

typedef struct cuda_device {
    int index;
    char gpu[256];
    cudaStream_t stream;    /* the compute queue */
    cudaStream_t copy;      /* the copy queue: activations to the host, corrections back */
    cudaEvent_t copy_after; /* download_async: the compute queue's point the copy waits for */
    cublasHandle_t blas;
    int has_stream, has_copy, has_copy_after, has_blas, has_lock;
    pthread_mutex_t lock;   /* guards the allocation table and `used` */
    cu_alloc *allocs;       /* sorted by pointer */
    size_t n_allocs, cap_allocs;
    size_t used;
    void *scratch;          /* dequantized weight rows (f32 or f16) */
    size_t scratch_bytes;
    void *x16;              /* activations in f16 for the tensor-core GEMM */
    size_t x16_bytes;
    void *xq;               /* one-token activations quantized to int8 for the block types' GEMV */
    size_t xq_bytes;
    float *consts;          /* HC_CU_F16_CONSTS floats: the f16 GEMM's max |x| and scale */
    void *attn_scratch;     /* the partials of attention's key splits (floats) */
    size_t attn_scratch_bytes;
    void *moe_ints;         /* matmul_id of a long pass: its rows' order, ids and input rows by expert */
    size_t moe_ints_bytes;
    void *moe_rows;         /* ... and its input and output rows in that order (floats) */
    size_t moe_rows_bytes, moe_rows_max;
    cu_stage stage[CU_STAGE_SLOTS];
    int next_stage;
    /* graphs: within graph_step(1) .. graph_step(0), touched by the thread of the pass only (step_device) */
    int graph_ops;          /* most ops in a stretch; 0: no graphs */
    hc_device_ops ops;      /* cuda_ops, less the joined ops (add_rmsnorm ...) under HC_CUDA_FUSE=0 */
    int gemv_rows;          /* rows a warp of the block types' GEMV by runs (HC_CUDA_GEMV_ROWS) */
    int gemv_int8;          /* 1: GEMVs' x quantized to int8 as on the cpu device (HC_CUDA_GEMV_INT8) */
    int capturing;
    int seg, seg_ops;       /* the current stretch and its ops so far */
    cu_segment segs[CU_GRAPH_SEGMENTS];
    /* the hand-off by flags (publish, merge_when): the corrections' copy on the device, and how long
       the device waits for a flag (HC_CUDA_HANDOFF_PATIENCE_MS) */
    float *handoff;
    size_t handoff_bytes;
    uint64_t patience_ns;
    int fuse;               /* HC_CUDA_FUSE: the joined ops, and merges and publishes folded into ops */
    cu_pending pend;
    cu_held held;
    int published;          /* a publish ran as a kernel: ops whose output it may publish are held */
    uint32_t *pub_count;    /* device memory: the blocks of a kernel that publishes (hc_cu_publish_to) */
} cuda_device;

struct hc_event {
    cudaEvent_t ev;
};

static cuda_device *impl(hc_device *d) { return d->impl; }

/* ---------------- errors ---------------- */

static hc_status cu_fail(cudaError_t e, const char *op)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    if (e == cudaErrorMemoryAllocation)
        return hc_error(HC_E_NOMEM, "cuda %s: %s", op, cudaGetErrorString(e));
    return hc_error(HC_E_DEVICE, "cuda %s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
}

static hc_status blas_fail(cublasStatus_t s, const char *op)
{
    return hc_error(HC_E_DEVICE, "cuda %s: cuBLAS: %s", op, cublasGetStatusString(s));
}

#define CU_CHECK(call, op)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return cu_fail(e_, op);                                             \
    } while (0)

#define BLAS_CHECK(call, op)                                                                       \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) return blas_fail(s_, op);                                 \
    } while (0)

/* The device current on this host thread, as this plugin last set it (-1: not yet). */
static _Thread_local int current_index = -1;

/* Makes this device current on the calling thread (ops may come from any host thread): a call to
 * cudaSetDevice only when the thread last used another device, not per op. */
static hc_status enter(cuda_device *c, const char *op)
{
    if (current_index == c->index) return HC_OK;
    CU_CHECK(cudaSetDevice(c->index), op);
    current_index = c->index;
    return HC_OK;
}

/* The device whose held-back merge or op this thread holds (cu_pending, cu_held), NULL: none. */
static _Thread_local cuda_device *pend_owner;

static hc_status pend_flush(cuda_device *c);

/* ---------------- CUDA graphs ---------------- */

/* The device whose pass this thread runs (graph_step(1) .. (0)), NULL outside one: ops from other
 * threads (the host's branch threads waiting for their inputs) neither end nor join a stretch. */
static _Thread_local cuda_device *step_device;

/* Ends the current stretch: a recorded one becomes its executable graph (updated in place when its
 * shape is the last pass's, else instantiated anew) and is launched; a plain one is only counted. */
static hc_status graph_end_segment(cuda_device *c)
{
    cu_segment *g = c->seg < CU_GRAPH_SEGMENTS ? &c->segs[c->seg] : NULL;
    int ops = c->seg_ops;
    c->seg++;
    c->seg_ops = 0;
    if (g) g->ops_last = ops;
    if (!c->capturing) return HC_OK;
    c->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (e != cudaSuccess) return cu_fail(e, "graph (recording a stretch of the pass)");
    if (g->has_exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) != cudaSuccess) { /* its shape changed: instantiate anew */
            (void)cudaGetLastError();
            cudaGraphExecDestroy(g->exec);
            g->has_exec = 0;
        }
    }
    if (!g->has_exec) e = cudaGraphInstantiate(&g->exec, graph, 0);
    if (e == cudaSuccess) {
        g->has_exec = 1;
        e = cudaGraphLaunch(g->exec, c->stream);
    }
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return cu_fail(e, "graph (instantiating or launching a stretch of the pass)");
    return HC_OK;
}

/* Before an op that waits, allocates, records an event or calls cuBLAS: the stretch ends here (a
 * capture may hold none of those), and the op runs as it would without graphs. */
static hc_status graph_flush(cuda_device *c)
{
    hc_status st = pend_flush(c);
    if (st != HC_OK) return st;
    if (step_device != c || !c->seg_ops) return HC_OK;
    return graph_end_segment(c);
}

/* Before an op that only launches kernels or device copies on the compute queue: it joins the
 * current stretch, which is recorded when the same stretch had CU_GRAPH_MIN_OPS ops or more (or
 * all of HC_CUDA_GRAPH_OPS) in the last pass. */
static hc_status graph_op(cuda_device *c)
{
    hc_status st = pend_flush(c);
    if (st != HC_OK) return st;
    if (step_device != c) return HC_OK;
    if (c->seg_ops >= c->graph_ops) {
        st = graph_end_segment(c);
        if (st != HC_OK) return st;
    }
    int min_ops = c->graph_ops < CU_GRAPH_MIN_OPS ? c->graph_ops : CU_GRAPH_MIN_OPS;
    if (!c->seg_ops && c->seg < CU_GRAPH_SEGMENTS && c->segs[c->seg].ops_last >= min_ops) {
        CU_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal), "graph (recording a stretch)");
        c->capturing = 1;
    }
    c->seg_ops++;
    return HC_OK;
}

/* Before an op that waits, allocates, records an event or copies to or from the host: the stretch
 * ended (graph_flush) and this device current. */
static hc_status flush_op(cuda_device *c, const char *op)
{
    hc_status st = graph_flush(c);
    return st == HC_OK ? enter(c, op) : st;
}

/* Before an op that launches on the compute queue: this device current, and the op in its stretch. */
static hc_status stream_op(cuda_device *c, const char *op)
{
    hc_status st = enter(c, op);
    return st == HC_OK ? graph_op(c) : st;
}

/* ---------------- merges and ops held back (cu_pending, cu_held) ---------------- */

/* The op h (cu_held) launched, with the publish p in its kernel (NULL: none). */
static hc_status op_launch(cuda_device *c, const cu_held *h, const hc_cu_publish_to *p)
{
    const char *op = h->kind == HELD_SWIGLU      ? "swiglu"
                     : h->kind == HELD_ATTENTION ? "attention"
                     : h->kind == HELD_RMSNORM   ? "rmsnorm"
                                                 : "add_rmsnorm";
    const hc_cu_merge *m = h->has_merge ? &h->m : NULL;
    hc_status st = stream_op(c, op);
    if (st != HC_OK) return st;
    if (h->kind == HELD_ATTENTION) CU_CHECK(hc_cu_attention(c->stream, &h->attn, h->n_splits, c->attn_scratch, p), op);
    else if (h->kind == HELD_SWIGLU) CU_CHECK(hc_cu_swiglu(c->stream, h->gate, h->up, h->y, h->n, m, p), op);
    else if (h->kind == HELD_RMSNORM) CU_CHECK(hc_cu_rmsnorm(c->stream, h->r, h->w, h->y, h->n_tok, h->dim, h->eps, p), op);
    else CU_CHECK(hc_cu_add_rmsnorm(c->stream, h->x, h->r, h->w, h->y, h->n_tok, h->dim, h->eps, m, p), op);
    return HC_OK;
}

/* The held op launched (op_launch), no longer held. */
static hc_status held_launch(cuda_device *c, const hc_cu_publish_to *p)
{
    cu_held h = c->held;
    c->held.kind = HELD_NONE;
    pend_owner = NULL;
    return op_launch(c, &h, p);
}

/* What this thread holds back for c launched: an op (held_launch) or a merge, as merge_set launches it. */
static hc_status pend_flush(cuda_device *c)
{
    if (pend_owner != c) return HC_OK;
    if (c->held.kind != HELD_NONE) return held_launch(c, NULL);
    if (!c->pend.n) return HC_OK;
    cu_pending p = c->pend;
    c->pend.n = 0;
    pend_owner = NULL;
    hc_status st = enter(c, "merge_set");
    if (st == HC_OK) st = graph_op(c);
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_wait_add_set(c->stream, p.n, p.y, p.src[0], p.len, p.flag, p.seq, p.err, c->patience_ns), "merge_set");
    return HC_OK;
}

/* merge_set's (n outputs y[k] of len[k] floats, corrections from host_src on) held back for the op after
 * it (*held 1), joined to the one held already where this one has no flag of its own and its corrections
 * follow that one's (merge_when a stage after the first of a job); else the one held launched first, and
 * this one too big to hold (*held 0: the caller launches it). Not under HC_CUDA_FUSE=0. */
static hc_status pend_add(cuda_device *c, int n, float *const *y, const float *host_src, const size_t *len,
                          const uint32_t *flag, uint32_t seq, uint32_t *err, int *held)
{
    *held = 0;
    if (!c->fuse || (pend_owner && pend_owner != c)) return HC_OK;
    cu_pending *p = &c->pend;
    size_t total = 0;
    for (int k = 0; k < n; k++) total += len[k];
    const size_t before = pend_total(p);
    const int join = p->n && !flag && seq == p->seq && err == p->err && p->n + n <= HC_CU_MERGE_MAX &&
                     host_src == p->src[0] + before && before + total <= HC_CU_HANDOFF_KERNEL_MAX;
    if (!join) {
        hc_status st = pend_flush(c);
        if (st != HC_OK) return st;
        if (n > HC_CU_MERGE_MAX || total > HC_CU_HANDOFF_KERNEL_MAX) return HC_OK;
        p->n = 0;
        p->flag = flag;
        p->seq = seq;
        p->err = err;
    }
    for (int k = 0; k < n; k++) {
        p->y[p->n] = y[k];
        p->src[p->n] = host_src;
        p->len[p->n] = len[k];
        p->n++;
        host_src += len[k];
    }
    pend_owner = c;
    *held = 1;
    return HC_OK;
}

/* The held-back merge as m for an op whose inputs in[0 .. n_in) (of len[i] floats) it corrects, none of
 * the merge's outputs left out: 1, and it is no longer held (the op's kernel adds it); else 0 (the op's
 * stream_op launches it first). */
static int pend_fold(cuda_device *c, int n_in, const float *const *in, const size_t *len, hc_cu_merge *m)
{
    const cu_pending *p = &c->pend;
    memset(m, 0, sizeof *m);
    if (pend_owner != c || !p->n || n_in > HC_CU_MERGE_MAX) return 0;
    for (int k = 0; k < p->n; k++) {
        int i = 0;
        while (i < n_in && (in[i] != p->y[k] || len[i] != p->len[k] || m->src[i])) i++;
        if (i == n_in) return 0;
        m->y[i] = p->y[k];
        m->src[i] = p->src[k];
    }
    m->flag = p->flag;
    m->seq = p->seq;
    m->err = p->err;
    m->patience_ns = c->patience_ns;
    c->pend.n = 0;
    pend_owner = NULL;
    return 1;
}

/* The op h held back for a publish of its output (HC_CUDA_FUSE, the device has published by a kernel,
 * and this thread holds nothing of another device; what it held for c launched first), else launched. */
static hc_status op_hold_or_launch(cuda_device *c, const cu_held *h)
{
    if (!c->fuse || !c->published || (pend_owner && pend_owner != c)) return op_launch(c, h, NULL);
    hc_status st = pend_flush(c);
    if (st != HC_OK) return st;
    c->held = *h;
    pend_owner = c;
    return HC_OK;
}

/* The device op: begin = 1 before a single-token pass, 0 after it. The passes repeat their ops in
 * the same order (positions aside), so each stretch is recorded again and its graph updated. On a
 * failed pass (0 while a stretch is recorded and not flushed) the recording is launched all the same:
 * what was enqueued runs, as it would without graphs. */
static hc_status cuda_graph_step(hc_device *d, int begin)
{
    cuda_device *c = impl(d);
    hc_status st = pend_flush(c);
    if (step_device == c && c->seg_ops) { /* what was recorded is launched all the same */
        hc_status e = graph_end_segment(c);
        if (st == HC_OK) st = e;
    }
    if (step_device == c) step_device = NULL;
    c->capturing = 0;
    if (!begin || !c->graph_ops) return st;
    if (st != HC_OK) return st;
    if ((st = enter(c, "graph_step")) != HC_OK) return st;
    step_device = c;
    c->seg = 0;
    c->seg_ops = 0;
    return HC_OK;
}

/* ---------------- probe ---------------- */

static hc_status cuda_probe(void)
{
    int n = 0, runtime = 0, driver = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaDriverGetVersion(&driver);
    char versions[96];
    if (driver)
        snprintf(versions, sizeof versions, "CUDA runtime %d.%d, driver %d.%d", runtime / 1000, runtime % 1000 / 10,
                 driver / 1000, driver % 1000 / 10);
    else
        snprintf(versions, sizeof versions, "CUDA runtime %d.%d, no CUDA driver installed", runtime / 1000,
                 runtime % 1000 / 10);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return hc_error(HC_E_DEVICE, "no CUDA device is present (cudaGetDeviceCount: %s; %s)", cudaGetErrorString(e),
                        versions);
    }
    if (n <= 0) return hc_error(HC_E_DEVICE, "no CUDA device is present (cudaGetDeviceCount found none; %s)", versions);
    return HC_OK;
}

/* ---------------- memory ---------------- */

/* Index of ptr in the sorted table, or where it would go. */
static size_t alloc_find(const cuda_device *c, const void *ptr)
{
    size_t lo = 0, hi = c->n_allocs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((const char *)c->allocs[mid].ptr < (const char *)ptr) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static size_t cuda_mem_used(hc_device *d)
{
    cuda_device *c = impl(d);
    pthread_mutex_lock(&c->lock);
    size_t n = c->used;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static hc_status cuda_alloc(hc_device *d, size_t n, void **ptr)
{
    cuda_device *c = impl(d);
    size_t budget = d->config.mem_budget;
    *ptr = NULL;
    pthread_mutex_lock(&c->lock);
    if (budget && (n > budget || c->used > budget - n)) {
        size_t used = c->used;
        pthread_mutex_unlock(&c->lock);
        return hc_error(HC_E_NOMEM, "cuda device %d (%s): allocating %zu MiB would exceed its memory budget of %zu MiB (%zu MiB in use)",
                        c->index, c->gpu, n >> 20, budget >> 20, used >> 20);
    }
    c->used += n; /* reserved now, so that concurrent allocations respect the budget */
    pthread_mutex_unlock(&c->lock);

    void *p = NULL;
    hc_status st = flush_op(c, "alloc");
    if (st == HC_OK) {
        cudaError_t e = cudaMalloc(&p, n ? n : 1);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            st = hc_error(e == cudaErrorMemoryAllocation ? HC_E_NOMEM : HC_E_DEVICE,
                          "cuda device %d (%s): cannot allocate %zu MiB of device memory (%zu MiB in use by hcinfer): %s",
                          c->index, c->gpu, n >> 20, (cuda_mem_used(d) - n) >> 20, cudaGetErrorString(e));
            p = NULL;
        }
    }
    pthread_mutex_lock(&c->lock);
    if (st == HC_OK && c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? 2 * c->cap_allocs : 256;
        cu_alloc *a = realloc(c->allocs, cap * sizeof *a);
        if (a) {
            c->allocs = a;
            c->cap_allocs = cap;
        } else {
            st = hc_error(HC_E_NOMEM, "cuda alloc: out of host memory for the allocation table");
        }
    }
    if (st == HC_OK) {
        size_t i = alloc_find(c, p);
        memmove(&c->allocs[i + 1], &c->allocs[i], (c->n_allocs - i) * sizeof *c->allocs);
        c->allocs[i] = (cu_alloc){ p, n };
        c->n_allocs++;
    } else {
        c->used -= n;
    }
    pthread_mutex_unlock(&c->lock);
    if (st != HC_OK) {
        if (p) cudaFree(p);
        return st;
    }
    *ptr = p;
    return HC_OK;
}

static void cuda_free(hc_device *d, void *ptr)
{
    if (!ptr) return;
    cuda_device *c = impl(d);
    int ours = 0;
    pthread_mutex_lock(&c->lock);
    size_t i = alloc_find(c, ptr);
    if (i < c->n_allocs && c->allocs[i].ptr == ptr) {
        c->used -= c->allocs[i].n;
        memmove(&c->allocs[i], &c->allocs[i + 1], (c->n_allocs - i - 1) * sizeof *c->allocs);
        c->n_allocs--;
        ours = 1;
    }
    pthread_mutex_unlock(&c->lock);
    if (ours && flush_op(c, "free") == HC_OK) cudaFree(ptr); /* waits for the work still using it */
}

static hc_status cuda_upload(hc_device *d, void *dst, const void *src, size_t n)
{
    cuda_device *c = impl(d);
    if (!n) return HC_OK;
    hc_status st = flush_op(c, "upload");
    if (st != HC_OK) return st;
    /* in stream order, and the host buffer is free again when this returns */
    CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream), "upload");
    CU_CHECK(cudaStreamSynchronize(c->stream), "upload");
    return HC_OK;
}

static hc_status cuda_download(hc_device *d, void *dst, const void *src, size_t n)
{
    cuda_device *c = impl(d);
    if (!n) return HC_OK;
    hc_status st = flush_op(c, "download");
    if (st != HC_OK) return st;
    CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream), "download");
    CU_CHECK(cudaStreamSynchronize(c->stream), "download");
    return HC_OK;
}

static hc_status cuda_copy(hc_device *d, void *dst, const void *src, size_t n)
{
    cuda_device *c = impl(d);
    if (!n || dst == src) return HC_OK;
    hc_status st = stream_op(c, "copy");
    if (st != HC_OK) return st;
    CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream), "copy");
    return HC_OK;
}

static hc_status cuda_host_alloc(hc_device *d, size_t n, void **ptr)
{
    cuda_device *c = impl(d);
    *ptr = NULL;
    hc_status st = flush_op(c, "host_alloc");
    if (st != HC_OK) return st;
    cudaError_t e = cudaMallocHost(ptr, n ? n : 1);
    if (e != cudaSuccess) {
        *ptr = NULL;
        (void)cudaGetLastError();
        return hc_error(HC_E_NOMEM, "cuda host_alloc: cannot pin %zu bytes of host memory: %s", n, cudaGetErrorString(e));
    }
    return HC_OK;
}

static void cuda_host_free(hc_device *d, void *ptr)
{
    if (ptr && graph_flush(impl(d)) == HC_OK) cudaFreeHost(ptr);
}

/* ---------------- ordering ---------------- */

/* On the copy queue, after the compute queue's ops so far: the compute queue goes on meanwhile. */
static hc_status cuda_download_async(hc_device *d, void *dst, const void *src, size_t n, hc_event *ev)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "download_async");
    if (st != HC_OK) return st;
    CU_CHECK(cudaEventRecord(c->copy_after, c->stream), "download_async");
    CU_CHECK(cudaStreamWaitEvent(c->copy, c->copy_after, 0), "download_async");
    if (n) CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->copy), "download_async");
    if (ev) CU_CHECK(cudaEventRecord(ev->ev, c->copy), "download_async");
    return HC_OK;
}

static hc_status cuda_upload_copyq(hc_device *d, void *dst, const void *src, size_t n, hc_event *after, hc_event *done)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "upload_copyq");
    if (st != HC_OK) return st;
    if (after) CU_CHECK(cudaStreamWaitEvent(c->copy, after->ev, 0), "upload_copyq");
    if (n) CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->copy), "upload_copyq");
    if (done) CU_CHECK(cudaEventRecord(done->ev, c->copy), "upload_copyq");
    return HC_OK;
}

static hc_status cuda_queue_wait(hc_device *d, hc_event *ev)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "queue_wait");
    if (st != HC_OK) return st;
    CU_CHECK(cudaStreamWaitEvent(c->stream, ev->ev, 0), "queue_wait");
    return HC_OK;
}

static hc_status cuda_event_elapsed(hc_device *d, hc_event *start, hc_event *end, uint64_t *ns)
{
    float ms = 0.0f;
    CU_CHECK(cudaEventElapsedTime(&ms, start->ev, end->ev), "event_elapsed");
    *ns = ms > 0.0f ? (uint64_t)((double)ms * 1e6) : 0;
    return HC_OK;
}

/* Scratch not allocated yet that ops may still allocate (at most the CU_*_MAX_BYTES above). */
static size_t scratch_reserve(const cuda_device *c)
{
    size_t attn = c->attn_scratch_bytes, r = 0;
    r += c->scratch_bytes < CU_SCRATCH_MAX_BYTES ? CU_SCRATCH_MAX_BYTES - c->scratch_bytes : 0;
    r += c->x16_bytes < CU_X16_MAX_BYTES ? CU_X16_MAX_BYTES - c->x16_bytes : 0;
    r += c->xq_bytes < CU_XQ_MAX_BYTES ? CU_XQ_MAX_BYTES - c->xq_bytes : 0;
    r += attn < CU_ATTN_MAX_BYTES ? CU_ATTN_MAX_BYTES - attn : 0;
    r += c->moe_ints_bytes < CU_MOE_INTS_MAX_BYTES ? CU_MOE_INTS_MAX_BYTES - c->moe_ints_bytes : 0;
    r += c->moe_rows_bytes < c->moe_rows_max ? c->moe_rows_max - c->moe_rows_bytes : 0;
    return r;
}

/* The GPU's free memory, within the budget when there is one, less the scratch still to come. */
static hc_status cuda_mem_info(hc_device *d, size_t *available, size_t *total)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "mem_info");
    if (st != HC_OK) return st;
    size_t free_b = 0, total_b = 0;
    CU_CHECK(cudaMemGetInfo(&free_b, &total_b), "mem_info");
    size_t budget = d->config.mem_budget, used = cuda_mem_used(d);
    if (budget) {
        size_t left = used < budget ? budget - used : 0;
        if (left < free_b) free_b = left;
        if (budget < total_b) total_b = budget;
    }
    size_t reserve = scratch_reserve(c);
    *available = free_b > reserve ? free_b - reserve : 0;
    *total = total_b;
    return HC_OK;
}

static hc_status cuda_upload_async(hc_device *d, void *dst, const void *src, size_t n)
{
    cuda_device *c = impl(d);
    if (!n) return HC_OK;
    hc_status st = flush_op(c, "upload_async");
    if (st != HC_OK) return st;
    CU_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream), "upload_async");
    return HC_OK;
}

static hc_status cuda_event_create(hc_device *d, hc_event **out)
{
    cuda_device *c = impl(d);
    *out = NULL;
    hc_status st = flush_op(c, "event_create");
    if (st != HC_OK) return st;
    hc_event *ev = calloc(1, sizeof *ev);
    if (!ev) return hc_error(HC_E_NOMEM, "cuda event_create: out of memory");
    cudaError_t e = cudaEventCreate(&ev->ev); /* timing events: event_elapsed gives real device times */
    if (e != cudaSuccess) {
        free(ev);
        return cu_fail(e, "event_create");
    }
    *out = ev;
    return HC_OK;
}

static void cuda_event_destroy(hc_device *d, hc_event *ev)
{
    if (!ev) return;
    (void)graph_flush(impl(d));
    cudaEventDestroy(ev->ev);
    free(ev);
}

static hc_status cuda_event_record(hc_device *d, hc_event *ev)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "event_record");
    if (st != HC_OK) return st;
    CU_CHECK(cudaEventRecord(ev->ev, c->stream), "event_record");
    return HC_OK;
}

static hc_status cuda_event_wait(hc_device *d, hc_event *ev)
{
    hc_status st = graph_flush(impl(d)); /* the host waits: what was recorded must be launched */
    if (st != HC_OK) return st;
    CU_CHECK(cudaEventSynchronize(ev->ev), "event_wait");
    return HC_OK;
}

/* Both queues: the compute queue, and the copy queue's downloads and uploads (download_async, upload_copyq). */
static hc_status cuda_synchronize(hc_device *d)
{
    cuda_device *c = impl(d);
    hc_status st = flush_op(c, "synchronize");
    if (st != HC_OK) return st;
    CU_CHECK(cudaStreamSynchronize(c->stream), "synchronize");
    if (c->has_copy) CU_CHECK(cudaStreamSynchronize(c->copy), "synchronize (copy queue)");
    return HC_OK;
}

/* ---------------- host arrays to the device ---------------- */

/* Copies n int32 of host memory to a device buffer, in stream order; *dev stays valid for the
 * kernels enqueued next (the slot is reused only CU_STAGE_SLOTS calls later). */
static hc_status stage_ints(cuda_device *c, const int32_t *src, int n, const int32_t **dev, const char *op)
{
    hc_status st = graph_flush(c); /* the slot's event and its pinned buffer are the host's to reuse */
    if (st != HC_OK) return st;
    cu_stage *s = &c->stage[c->next_stage];
    c->next_stage = (c->next_stage + 1) % CU_STAGE_SLOTS;
    if (s->pending) {
        CU_CHECK(cudaEventSynchronize(s->copied), op);
        s->pending = 0;
    }
    if ((size_t)n > s->cap) {
        size_t cap = n < 1024 ? 1024 : (size_t)n;
        CU_CHECK(cudaStreamSynchronize(c->stream), op); /* kernels may still read the old device buffer */
        cudaFreeHost(s->host);
        cudaFree(s->dev);
        s->host = NULL;
        s->dev = NULL;
        s->cap = 0;
        CU_CHECK(cudaMallocHost((void **)&s->host, cap * sizeof *s->host), op);
        CU_CHECK(cudaMalloc((void **)&s->dev, cap * sizeof *s->dev), op);
        s->cap = cap;
    }
    memcpy(s->host, src, (size_t)n * sizeof *src);
    CU_CHECK(cudaMemcpyAsync(s->dev, s->host, (size_t)n * sizeof *src, cudaMemcpyHostToDevice, c->stream), op);
    CU_CHECK(cudaEventRecord(s->copied, c->stream), op);
    s->pending = 1;
    *dev = s->dev;
    return HC_OK;
}

/* ---------------- matmul and embeddings ---------------- */

static const char *tname(const hc_tensor *t) { return t->name ? t->name : "(unnamed)"; }

/* The CUDA kernels of t's packed format, asked of its quant plugin (device_kernels(params, "cuda")),
 * or NULL with the reason in *why. */
static const hc_quant_cuda_kernels *packed_kernels(const hc_tensor *t, char *why, size_t cap)
{
    const hc_quant_format *f = t->qfmt;
    why[0] = 0;
    if (!f || !f->ops) {
        snprintf(why, cap, "the tensor has no quant format");
        return NULL;
    }
    if (!f->ops->device_kernels) {
        snprintf(why, cap, "the plugin has no device_kernels hook");
        return NULL;
    }
    hc_clear_error();
    const hc_quant_cuda_kernels *k = f->ops->device_kernels(f->params, "cuda");
    if (!k) {
        snprintf(why, cap, "the plugin gives no kernels for device cuda%s%.400s", hc_last_error()[0] ? ": " : "", hc_last_error());
        return NULL;
    }
    if (k->abi != HC_QUANT_CUDA_ABI || !k->gemv || !k->dequant_rows || k->max_fused_tokens < 1) {
        snprintf(why, cap, "its CUDA kernel table is of version %u, this device reads version %u", k->abi, HC_QUANT_CUDA_ABI);
        return NULL;
    }
    if (k->check && k->check(f->params, t->ne[1], t->ne[0]) != 0) {
        snprintf(why, cap, "its CUDA kernels cannot read a %lld x %lld weight", (long long)t->ne[1], (long long)t->ne[0]);
        return NULL;
    }
    return k;
}

/* HC_OK when the kernels can read t's weights (its data is not looked at); the message names the
 * tensor, its format and the reason. */
static hc_status check_format(const hc_tensor *t, const char *op, const hc_quant_cuda_kernels **pk)
{
    if (pk) *pk = NULL;
    if (t->ne[0] <= 0 || t->ne[0] > INT_MAX || t->ne[1] <= 0 || t->ne[1] > INT_MAX)
        return hc_error(HC_E_ARG, "cuda %s %s: bad shape %lld x %lld", op, tname(t), (long long)t->ne[0], (long long)t->ne[1]);
    if (t->dtype == HC_PACKED) {
        const char *plugin = t->qfmt && t->qfmt->plugin[0] ? t->qfmt->plugin : "?";
        const char *spec = t->qfmt && t->qfmt->spec[0] ? t->qfmt->spec : plugin;
        char why[512];
        const hc_quant_cuda_kernels *k = packed_kernels(t, why, sizeof why);
        if (!k)
            return hc_error(HC_E_UNSUPPORTED,
                            "cuda %s %s: weights in the packed format of quant plugin '%s' (%s) have no CUDA kernel: %s "
                            "(use a format with one, e.g. rtn or gptq, a standard type such as q4_K, q8_0 or f16, or the cpu device)",
                            op, tname(t), plugin, spec, why);
        if (pk) *pk = k;
        return HC_OK;
    }
    if (!hc_cu_dtype_supported(t->dtype))
        return hc_error(HC_E_UNSUPPORTED, "cuda %s %s: weight type %s has no CUDA kernel (supported: f32, f16, bf16, "
                                          "q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, and the packed "
                                          "formats whose plugins give CUDA kernels)", op, tname(t), hc_dtype_name(t->dtype));
    if (hc_dtype_row_bytes(t->dtype, t->ne[0]) == 0)
        return hc_error(HC_E_ARG, "cuda %s %s: bad shape %lld x %lld for type %s", op, tname(t), (long long)t->ne[0],
                        (long long)t->ne[1], hc_dtype_name(t->dtype));
    return HC_OK;
}

/* check_format, and the tensor must have its data. */
static hc_status check_weights(const hc_tensor *t, const char *op, const hc_quant_cuda_kernels **pk)
{
    hc_status st = check_format(t, op, pk);
    if (st != HC_OK) return st;
    if (!t->data) return hc_error(HC_E_ARG, "cuda %s %s: the tensor has no data", op, tname(t));
    return HC_OK;
}

/* The device op: before any byte of a model is uploaded, whether matmul and get_rows can read w. */
static hc_status cuda_check_weights(hc_device *d, const hc_tensor *w)
{
    (void)d;
    if (w->n_dims < 2 && w->dtype == HC_F32) return HC_OK; /* vectors: norms and biases, read as floats */
    return check_format(w, "weights", NULL);
}

/* *buf (of *have bytes) grown to at least n bytes; what was there is not kept. */
static hc_status ensure_buffer(cuda_device *c, void **buf, size_t *have, size_t n, const char *op)
{
    if (n <= *have) return HC_OK;
    hc_status st = graph_flush(c);
    if (st != HC_OK) return st;
    CU_CHECK(cudaStreamSynchronize(c->stream), op); /* the old buffer may still be read */
    cudaFree(*buf);
    *buf = NULL;
    *have = 0;
    CU_CHECK(cudaMalloc(buf, n), op);
    *have = n;
    return HC_OK;
}

static hc_status ensure_scratch(cuda_device *c, size_t bytes)
{
    return ensure_buffer(c, &c->scratch, &c->scratch_bytes, bytes, "matmul (scratch for dequantized weights)");
}

/* Scratch for x_rows rows of `in` activations quantized to int8 (hc_cu_gemv's xq) when the block type
 * t's GEMV takes them (HC_CUDA_GEMV_INT8, runs of 32, at most CU_XQ_MAX_BYTES), else NULL in *xq. */
static hc_status gemv_xq(cuda_device *c, hc_dtype t, int64_t in, int64_t x_rows, void **xq)
{
    *xq = NULL;
    size_t n = hc_cu_q8x_bytes(x_rows, in);
    if (!c->gemv_int8 || !hc_cu_dtype_supported((int)t) || hc_cu_block_elems((int)t) == 1 || in % HC_CU_RUN ||
        n > CU_XQ_MAX_BYTES)
        return HC_OK;
    hc_status st = ensure_buffer(c, &c->xq, &c->xq_bytes, n, "matmul (activations quantized to int8)");
    if (st == HC_OK) *xq = c->xq;
    return st;
}

static cublasOperation_t blas_op(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* n_tok > 1 tokens of a quantized weight (hc_cu_batched_f16) on the tensor cores: per chunk of
 * tokens, the activations to f16 divided by a power of two s (found on the device), then per chunk
 * of rows, the rows dequantized to f16 (the format's kernel k, or the type's) and one f16 GEMM with
 * f32 sums; the chunk's outputs are then multiplied by s (a kernel reading s on the device, so that
 * cuBLAS keeps host constants alpha 1, beta 0, and C need not hold numbers before). */
static hc_status matmul_f16(cuda_device *c, const hc_tensor *w, const hc_quant_cuda_kernels *k, const float *x, float *y,
                            int n_tok)
{
    static const float one = 1.0f, zero = 0.0f;
    int64_t in = w->ne[0], out = w->ne[1];
    int64_t rows = hc_cu_matmul_chunk_rows(in, out, CU_SCRATCH_MAX_BYTES / sizeof(uint16_t));
    int tc = hc_cu_f16_token_chunk(in, n_tok);
    hc_status st = graph_flush(c); /* cuBLAS is not recorded: its workspace is its own */
    if (st == HC_OK) st = ensure_scratch(c, (size_t)rows * (size_t)in * sizeof(uint16_t));
    if (st == HC_OK)
        st = ensure_buffer(c, &c->x16, &c->x16_bytes, (size_t)tc * (size_t)in * sizeof(uint16_t),
                           "matmul (activations in f16)");
    if (st != HC_OK) return st;
    size_t row_bytes = k ? 0 : hc_dtype_row_bytes(w->dtype, in);
    for (int t0 = 0; t0 < n_tok; t0 += tc) {
        int nt = n_tok - t0 < tc ? n_tok - t0 : tc;
        CU_CHECK(hc_cu_to_f16_scaled(c->stream, x + (size_t)t0 * (size_t)in, (size_t)nt * (size_t)in, c->x16, c->consts),
                 "matmul (activations to f16)");
        for (int64_t r0 = 0; r0 < out; r0 += rows) {
            int64_t nr = out - r0 < rows ? out - r0 : rows;
            if (k)
                CU_CHECK((cudaError_t)k->dequant_rows(w->qfmt->params, c->stream, w->data, in, NULL, r0, (int)nr, c->scratch, 1),
                         "matmul (packed dequant kernel, f16)");
            else
                CU_CHECK(hc_cu_dequant_rows(c->stream, (int)w->dtype, w->data, row_bytes, in, NULL, r0, (int)nr, c->scratch, 1),
                         "matmul (dequant kernel, f16)");
            hc_cu_gemm_args g = hc_cu_matmul_gemm_args(in, out, nr, nt);
            BLAS_CHECK(cublasGemmEx(c->blas, blas_op(g.trans_a), blas_op(g.trans_b), g.m, g.n, g.k, &one, c->scratch,
                                    CUDA_R_16F, g.lda, c->x16, CUDA_R_16F, g.ldb, &zero,
                                    y + (size_t)t0 * (size_t)out + (size_t)r0, CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT), "matmul (f16 GEMM)");
        }
        CU_CHECK(hc_cu_scale_by(c->stream, y + (size_t)t0 * (size_t)out, (size_t)nt * (size_t)out, c->consts),
                 "matmul (the f16 GEMM's scale)");
    }
    return HC_OK;
}

/* Whether a packed format's GEMVs take x in int8: HC_CUDA_GEMV_INT8 asks, and its kernels can. */
static int packed_q8(const cuda_device *c, const hc_quant_cuda_kernels *k) { return c->gemv_int8 && k->gemv_q8; }

/* A packed weight: the format's fused GEMV for up to max_fused_tokens tokens (with x quantized to int8
 * where its kernels can: HC_CUDA_GEMV_INT8), else matmul_f16. */
static hc_status matmul_packed(cuda_device *c, const hc_tensor *w, const hc_quant_cuda_kernels *k, const float *x, float *y,
                               int n_tok)
{
    if (n_tok <= k->max_fused_tokens) {
        hc_status st = graph_op(c);
        if (st != HC_OK) return st;
        int int8 = packed_q8(c, k);
        __typeof__(k->gemv) fn = int8 ? k->gemv_q8 : k->gemv;
        CU_CHECK((cudaError_t)fn(w->qfmt->params, c->stream, w->data, w->ne[0], w->ne[1], x, n_tok, y),
                 int8 ? "matmul (packed gemv kernel, x in int8)" : "matmul (packed gemv kernel)");
        return HC_OK;
    }
    return matmul_f16(c, w, k, x, y, n_tok);
}

static hc_status matmul_impl(cuda_device *c, const hc_tensor *w, const float *x, float *y, int n_tok)
{
    static const float one = 1.0f, zero = 0.0f;
    int64_t in = w->ne[0], out = w->ne[1];
    size_t row_bytes = hc_dtype_row_bytes(w->dtype, in);
    if (w->dtype == HC_F32 && n_tok > 1) { /* one token: the GEMV kernel below, which a graph can hold */
        hc_status st = graph_flush(c); /* cuBLAS is not recorded */
        if (st != HC_OK) return st;
        hc_cu_gemm_args g = hc_cu_matmul_gemm_args(in, out, out, n_tok);
        BLAS_CHECK(cublasSgemm(c->blas, blas_op(g.trans_a), blas_op(g.trans_b), g.m, g.n, g.k, &one, w->data, g.lda, x,
                               g.ldb, &zero, y, g.ldc), "matmul");
        return HC_OK;
    }
    if (n_tok == 1) {
        void *xq = NULL;
        hc_status st = gemv_xq(c, w->dtype, in, 1, &xq);
        if (st == HC_OK) st = graph_op(c);
        if (st != HC_OK) return st;
        CU_CHECK(hc_cu_gemv(c->stream, (int)w->dtype, w->data, row_bytes, in, out, x, y, c->gemv_rows, xq),
                 "matmul (gemv kernel)");
        return HC_OK;
    }
    if (hc_cu_batched_f16((int)w->dtype)) return matmul_f16(c, w, NULL, x, y, n_tok);
    int64_t rows = hc_cu_matmul_chunk_rows(in, out, CU_SCRATCH_MAX_BYTES / sizeof(float));
    hc_status st = graph_flush(c);
    if (st == HC_OK) st = ensure_scratch(c, (size_t)rows * (size_t)in * sizeof(float));
    if (st != HC_OK) return st;
    for (int64_t r0 = 0; r0 < out; r0 += rows) {
        int64_t nr = out - r0 < rows ? out - r0 : rows;
        CU_CHECK(hc_cu_dequant_rows(c->stream, (int)w->dtype, w->data, row_bytes, in, NULL, r0, (int)nr, c->scratch, 0),
                 "matmul (dequant kernel)");
        hc_cu_gemm_args g = hc_cu_matmul_gemm_args(in, out, nr, n_tok);
        BLAS_CHECK(cublasSgemm(c->blas, blas_op(g.trans_a), blas_op(g.trans_b), g.m, g.n, g.k, &one, c->scratch, g.lda, x,
                               g.ldb, &zero, y + r0, g.ldc), "matmul");
    }
    return HC_OK;
}

static hc_status cuda_matmul(hc_device *d, const hc_tensor *w, const float *x, float *y, int n_tok)
{
    cuda_device *c = impl(d);
    const hc_quant_cuda_kernels *k;
    hc_status st = check_weights(w, "matmul", &k);
    if (st != HC_OK) return st;
    if (n_tok <= 0) return n_tok ? hc_error(HC_E_ARG, "cuda matmul %s: %d tokens", tname(w), n_tok) : HC_OK;
    if ((st = enter(c, "matmul")) != HC_OK) return st;
    st = k ? matmul_packed(c, w, k, x, y, n_tok) : matmul_impl(c, w, x, y, n_tok);
    if (st != HC_OK) return hc_error_context(st, "%s: ", tname(w));
    return HC_OK;
}

_Static_assert(HC_MATMUL_SET_MAX <= HC_CU_GEMV_SET_MAX && HC_MATMUL_SET_MAX <= HC_QUANT_CUDA_SET_MAX &&
                   HC_MATMUL_SET_MAX <= HC_CU_ADD_SET_MAX,
               "matmul_set's and add_set's most arrays fit the kernels' sets");

/* Whether the weights of a set go through one launch: one token, one width, and either weights of one
 * type of the device's own (hc_cu_gemv_set; *pk NULL), or packed weights of one format (the same kernels
 * and spec) whose kernels have gemv_set (*pk: those kernels). */
static int set_launch(int n, const hc_tensor *const *w, int n_tok, const hc_quant_cuda_kernels **pk)
{
    const hc_quant_cuda_kernels *k0 = NULL;
    *pk = NULL;
    if (n_tok != 1 || n < 2) return 0;
    for (int m = 0; m < n; m++) {
        const hc_quant_cuda_kernels *k = NULL;
        if (check_weights(w[m], "matmul", &k) != HC_OK || w[m]->ne[0] != w[0]->ne[0] || w[m]->dtype != w[0]->dtype ||
            (m && k != k0))
            return 0;
        if (k && (!k->gemv_set || w[m]->qfmt->ops != w[0]->qfmt->ops || strcmp(w[m]->qfmt->spec, w[0]->qfmt->spec))) return 0;
        k0 = k;
    }
    *pk = k0;
    return 1;
}

/* Weights sharing their input: one token of weights of one type (or packed format) in one launch
 * (set_launch), others a matmul each. */
static hc_status cuda_matmul_set(hc_device *d, int n, const hc_tensor *const *w, const float *x, float *const *y, int n_tok)
{
    cuda_device *c = impl(d);
    if (n < 1 || n > HC_MATMUL_SET_MAX) return hc_error(HC_E_ARG, "cuda matmul_set: %d weights (1 .. %d)", n, HC_MATMUL_SET_MAX);
    const hc_quant_cuda_kernels *k = NULL;
    if (!set_launch(n, w, n_tok, &k)) {
        for (int m = 0; m < n; m++) {
            hc_status st = cuda_matmul(d, w[m], x, y[m], n_tok);
            if (st != HC_OK) return st;
        }
        return HC_OK;
    }
    const void *ws[HC_MATMUL_SET_MAX];
    int64_t rows[HC_MATMUL_SET_MAX], in = w[0]->ne[0];
    for (int m = 0; m < n; m++) ws[m] = w[m]->data, rows[m] = w[m]->ne[1];
    void *xq = NULL;
    hc_status st = enter(c, "matmul_set");
    if (st == HC_OK && !k) st = gemv_xq(c, w[0]->dtype, in, 1, &xq);
    if (st == HC_OK) st = graph_op(c);
    if (st != HC_OK) return st;
    cudaError_t e;
    if (k) e = (cudaError_t)k->gemv_set(w[0]->qfmt->params, c->stream, n, ws, rows, in, x, y, packed_q8(c, k));
    else
        e = hc_cu_gemv_set(c->stream, (int)w[0]->dtype, n, ws, hc_dtype_row_bytes(w[0]->dtype, in), in, rows, x, y, c->gemv_rows,
                           xq);
    if (e != cudaSuccess)
        return hc_error_context(cu_fail(e, k ? "matmul_set (packed gemv kernel)" : "matmul_set (gemv kernel)"),
                                "%s and %d more: ", tname(w[0]), n - 1);
    return HC_OK;
}

static hc_status cuda_get_rows(hc_device *d, const hc_tensor *table, const int32_t *ids, int n, float *out)
{
    cuda_device *c = impl(d);
    const hc_quant_cuda_kernels *k;
    hc_status st = check_weights(table, "get_rows", &k);
    if (st != HC_OK) return st;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->ne[1])
            return hc_error(HC_E_ARG, "cuda get_rows %s: row %d is out of range (0..%lld)", tname(table), (int)ids[i],
                            (long long)table->ne[1] - 1);
    if (n <= 0) return HC_OK;
    if ((st = enter(c, "get_rows")) != HC_OK) return st;
    const int32_t *dev_ids;
    if ((st = stage_ints(c, ids, n, &dev_ids, "get_rows")) != HC_OK) return st;
    if (k) {
        CU_CHECK((cudaError_t)k->dequant_rows(table->qfmt->params, c->stream, table->data, table->ne[0], dev_ids, 0, n, out, 0),
                 "get_rows (packed dequant kernel)");
        return HC_OK;
    }
    CU_CHECK(hc_cu_dequant_rows(c->stream, (int)table->dtype, table->data, hc_dtype_row_bytes(table->dtype, table->ne[0]),
                                table->ne[0], dev_ids, 0, n, out, 0), "get_rows");
    return HC_OK;
}

/* ---------------- row-wise ops ---------------- */

static hc_status cuda_rmsnorm(hc_device *d, const float *x, const float *w, float *y, int n_tok, int dim, float eps)
{
    cuda_device *c = impl(d);
    if (n_tok < 0 || dim <= 0) return hc_error(HC_E_ARG, "cuda rmsnorm: bad shape %d x %d", n_tok, dim);
    if (!n_tok) return HC_OK;
    const cu_held h = { .kind = HELD_RMSNORM, .y = y, .r = x, .w = w, .n_tok = n_tok, .dim = dim, .eps = eps,
                        .n = (size_t)n_tok * (size_t)dim };
    return op_hold_or_launch(c, &h); /* by flags its output may be published next (the first layer's input) */
}

/* x[t][i] += r[t][i], then the norm of the sums: the residual add and the next norm in one launch. */
static hc_status cuda_add_rmsnorm(hc_device *d, float *x, const float *r, const float *w, float *y, int n_tok, int dim, float eps)
{
    cuda_device *c = impl(d);
    if (n_tok < 0 || dim <= 0) return hc_error(HC_E_ARG, "cuda add_rmsnorm: bad shape %d x %d", n_tok, dim);
    if (!n_tok) return HC_OK;
    const float *in[1] = { r };
    const size_t len[1] = { (size_t)n_tok * (size_t)dim };
    cu_held h = { .kind = HELD_ADD_RMSNORM, .x = x, .y = y, .r = r, .w = w, .n_tok = n_tok, .dim = dim, .eps = eps,
                  .n = len[0] };
    h.has_merge = pend_fold(c, 1, in, len, &h.m); /* r's corrections, where they are held back */
    return op_hold_or_launch(c, &h);
}

/* RoPE of q and, unless k is NULL, of k, in one launch; with v (and k), k's and v's rows then stored into
 * the KV cache (k_dst, v_dst of kv_dtype) by the same launch. */
static hc_status rope_launch(cuda_device *c, float *q, float *k, const float *v, int n_tok, int n_head, int n_head_kv,
                             int head_dim, int n_rot, const int32_t *pos, float theta, hc_rope_mode mode, void *k_dst,
                             void *v_dst, hc_dtype kv_dtype)
{
    if (n_rot <= 0 || n_rot % 2 || n_rot > head_dim)
        return hc_error(HC_E_ARG, "cuda rope: n_rot %d must be positive, even and at most head_dim %d", n_rot, head_dim);
    if (mode != HC_ROPE_NORM && mode != HC_ROPE_NEOX) return hc_error(HC_E_ARG, "cuda rope: unknown mode %d", (int)mode);
    if (v && kv_dtype != HC_F32 && kv_dtype != HC_F16)
        return hc_error(HC_E_UNSUPPORTED, "cuda rope_store into %s", hc_dtype_name(kv_dtype));
    if (!k || n_head_kv < 0) n_head_kv = 0;
    if (n_head < 0) n_head = 0;
    if (n_tok <= 0 || n_head + n_head_kv <= 0) return HC_OK;
    hc_cu_merge m;
    int fold = 0;
    if (v && n_head_kv) { /* q's, k's and v's corrections, where they are held back */
        const float *in[3] = { q, k, v };
        const size_t head = (size_t)n_tok * (size_t)head_dim;
        const size_t len[3] = { head * (size_t)n_head, head * (size_t)n_head_kv, head * (size_t)n_head_kv };
        fold = pend_fold(c, 3, in, len, &m);
    }
    int consecutive = 1;
    for (int t = 0; t < n_tok; t++) {
        if (pos[t] < 0) return hc_error(HC_E_ARG, "cuda rope: negative position %d", (int)pos[t]);
        if (pos[t] != pos[0] + t) consecutive = 0;
    }
    hc_status st = enter(c, "rope");
    if (st != HC_OK) return st;
    const int32_t *dev_pos = NULL; /* consecutive positions (the usual case) need no copy */
    if (!consecutive && (st = stage_ints(c, pos, n_tok, &dev_pos, "rope")) != HC_OK) return st;
    if ((st = graph_op(c)) != HC_OK) return st;
    if (v && n_head_kv)
        CU_CHECK(hc_cu_rope_store(c->stream, q, k, v, n_tok, n_head, n_head_kv, head_dim, n_rot, dev_pos, pos[0], theta,
                                  (int)mode, k_dst, v_dst, kv_dtype == HC_F16, fold ? &m : NULL),
                 "rope_store");
    else
        CU_CHECK(hc_cu_rope_qk(c->stream, q, k, n_tok, n_head, n_head_kv, head_dim, n_rot, dev_pos, pos[0], theta, (int)mode),
                 "rope");
    return HC_OK;
}

static hc_status cuda_rope_qk(hc_device *d, float *q, float *k, int n_tok, int n_head, int n_head_kv, int head_dim, int n_rot,
                              const int32_t *pos, float theta, hc_rope_mode mode)
{
    return rope_launch(impl(d), q, k, NULL, n_tok, n_head, n_head_kv, head_dim, n_rot, pos, theta, mode, NULL, NULL, HC_F32);
}

static hc_status cuda_rope_store(hc_device *d, float *q, float *k, const float *v, int n_tok, int n_head, int n_head_kv,
                                 int head_dim, int n_rot, const int32_t *pos, float theta, hc_rope_mode mode, void *k_dst,
                                 void *v_dst, hc_dtype kv_dtype)
{
    if (!k || !v || n_head_kv <= 0) return hc_error(HC_E_ARG, "cuda rope_store: needs k and v of 1 or more heads");
    return rope_launch(impl(d), q, k, v, n_tok, n_head, n_head_kv, head_dim, n_rot, pos, theta, mode, k_dst, v_dst, kv_dtype);
}

static hc_status cuda_rope(hc_device *d, float *x, int n_tok, int n_head, int head_dim, int n_rot, const int32_t *pos,
                           float theta, hc_rope_mode mode)
{
    return cuda_rope_qk(d, x, NULL, n_tok, n_head, 0, head_dim, n_rot, pos, theta, mode);
}

static hc_status cuda_attention(hc_device *d, const hc_attn_args *a)
{
    cuda_device *c = impl(d);
    if (a->kv_dtype != HC_F32 && a->kv_dtype != HC_F16)
        return hc_error(HC_E_UNSUPPORTED, "cuda attention: a KV cache of %s (f32 or f16 only)", hc_dtype_name(a->kv_dtype));
    if (a->pos0 < 0 || a->pos0 + a->n_tok > a->n_ctx)
        return hc_error(HC_E_STATE, "cuda attention: positions %d..%d exceed the context of %d", a->pos0,
                        a->pos0 + a->n_tok - 1, a->n_ctx);
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv)
        return hc_error(HC_E_ARG, "cuda attention: %d heads is not a multiple of %d kv heads", a->n_head, a->n_head_kv);
    if (a->head_dim <= 0 || a->head_dim > HC_CU_ATTN_MAX_DIM)
        return hc_error(HC_E_UNSUPPORTED, "cuda attention: head_dim %d is outside the kernel's range 1..%d", a->head_dim,
                        HC_CU_ATTN_MAX_DIM);
    if (a->n_tok <= 0) return HC_OK;
    hc_status st = enter(c, "attention");
    if (st != HC_OK) return st;
    int n_splits = hc_cu_attn_n_splits(a->n_tok, a->n_head, a->pos0);
    size_t need = hc_cu_attn_scratch_floats(a->n_tok, a->n_head, a->head_dim, n_splits) * sizeof(float);
    st = ensure_buffer(c, &c->attn_scratch, &c->attn_scratch_bytes, need, "attention (scratch for the key splits)");
    if (st != HC_OK) return st;
    const cu_held h = { .kind = HELD_ATTENTION, .y = a->out, .n = (size_t)a->n_tok * (size_t)a->n_head * (size_t)a->head_dim,
                        .attn = *a, .n_splits = n_splits };
    return op_hold_or_launch(c, &h);
}

/* ---------------- element-wise ---------------- */

static hc_status cuda_swiglu(hc_device *d, const float *gate, const float *up, float *out, size_t n)
{
    cuda_device *c = impl(d);
    if (!n) return HC_OK;
    const float *in[2] = { gate, up };
    const size_t len[2] = { n, n };
    cu_held h = { .kind = HELD_SWIGLU, .y = out, .gate = gate, .up = up, .n = n };
    h.has_merge = pend_fold(c, 2, in, len, &h.m); /* gate's and up's corrections, where they are held back */
    return op_hold_or_launch(c, &h);
}

/* gemma's gated FFN */
static hc_status cuda_geglu(hc_device *d, const float *gate, const float *up, float *out, size_t n)
{
    hc_status st = stream_op(impl(d), "geglu");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_geglu(impl(d)->stream, gate, up, out, n), "geglu");
    return HC_OK;
}

static hc_status cuda_add(hc_device *d, float *y, const float *x, size_t n)
{
    hc_status st = stream_op(impl(d), "add");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_add(impl(d)->stream, y, x, n), "add");
    return HC_OK;
}

static hc_status cuda_add_bias(hc_device *d, float *y, const float *b, int n_tok, int width)
{
    if (n_tok < 0 || width < 0) return hc_error(HC_E_ARG, "cuda add_bias: bad shape %d x %d", n_tok, width);
    hc_status st = stream_op(impl(d), "add_bias");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_add_bias(impl(d)->stream, y, b, n_tok, width), "add_bias");
    return HC_OK;
}

static hc_status cuda_scale(hc_device *d, float *x, size_t n, float s)
{
    hc_status st = stream_op(impl(d), "scale");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_scale(impl(d)->stream, x, n, s), "scale");
    return HC_OK;
}

static hc_status cuda_gate_rows(hc_device *d, float *y, const float *g, int n_tok, int width)
{
    if (n_tok < 0 || width < 0) return hc_error(HC_E_ARG, "cuda gate_rows: bad shape %d x %d", n_tok, width);
    hc_status st = stream_op(impl(d), "gate_rows");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_gate_rows(impl(d)->stream, y, g, n_tok, width), "gate_rows");
    return HC_OK;
}

/* ---------------- experts routed on the device ---------------- */

static hc_status cuda_moe_topk(hc_device *d, const float *logits, int n_tok, int n_expert, int k, int norm, int32_t *ids,
                               float *weights)
{
    if (n_tok < 0 || n_expert <= 0 || n_expert > HC_CU_MOE_MAX_EXPERTS || k <= 0 || k > n_expert || k > HC_CU_MOE_MAX_K)
        return hc_error(HC_E_UNSUPPORTED, "cuda moe_topk: %d of %d experts (the kernel takes up to %d of %d)", k, n_expert,
                        HC_CU_MOE_MAX_K, HC_CU_MOE_MAX_EXPERTS);
    hc_status st = stream_op(impl(d), "moe_topk");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_moe_topk(impl(d)->stream, logits, n_tok, n_expert, k, norm, ids, weights), "moe_topk");
    return HC_OK;
}

/* n_rows GEMVs by id (the type's kernel, or the packed format's gemv_id k: gemv_id_q8 where it has one
 * and HC_CUDA_GEMV_INT8 wants x in int8), enqueued */
static cudaError_t gemv_id(cuda_device *c, const hc_tensor *w, const hc_quant_cuda_kernels *k, size_t slice, const int32_t *ids,
                           const float *x, int x_div, float *y, int n_rows, void *xq)
{
    int64_t in = w->ne[0], out = w->ne[1];
    if (k) {
        __typeof__(k->gemv_id) fn = c->gemv_int8 && k->gemv_id_q8 ? k->gemv_id_q8 : k->gemv_id;
        return (cudaError_t)fn(w->qfmt->params, c->stream, w->data, slice, ids, in, out, x, x_div, n_rows, y);
    }
    return hc_cu_gemv_id(c->stream, (int)w->dtype, w->data, slice, ids, hc_dtype_row_bytes(w->dtype, in), in, out, x, x_div, y,
                         n_rows, c->gemv_rows, xq);
}

/* A long pass's routed rows: sorted by expert (stably), their input rows gathered in that order, the
 * GEMVs by id on them, the outputs put back. An expert's rows then run one after another, so its
 * weights come from memory once and from the GPU's cache for its other rows, not once a row. In
 * chunks of rows whose inputs and outputs fit CU_MOE_ROWS_MAX_BYTES. */
static hc_status matmul_id_sorted(cuda_device *c, const hc_tensor *w, const hc_quant_cuda_kernels *k, size_t slice,
                                  const int32_t *ids, const float *x, int x_div, float *y, int n_rows)
{
    int64_t n_expert = w->ne[2] > 1 ? w->ne[2] : 1, in = w->ne[0], out = w->ne[1];
    size_t per_row = (size_t)(in + out) * sizeof(float);
    int chunk = c->moe_rows_max / per_row > (size_t)n_rows ? n_rows : (int)(c->moe_rows_max / per_row);
    if (chunk < 1) chunk = 1;
    if (n_expert > HC_CU_MOE_MAX_EXPERTS)
        return hc_error(HC_E_UNSUPPORTED, "cuda matmul_id %s: %lld experts (the sort by expert takes up to %d)", tname(w),
                        (long long)n_expert, HC_CU_MOE_MAX_EXPERTS);
    hc_status st = ensure_buffer(c, &c->moe_ints, &c->moe_ints_bytes, (size_t)3 * (size_t)n_rows * sizeof(int32_t),
                                 "matmul_id (the rows sorted by expert)");
    if (st == HC_OK)
        st = ensure_buffer(c, &c->moe_rows, &c->moe_rows_bytes, (size_t)chunk * per_row, "matmul_id (the sorted rows)");
    void *xq = NULL;
    if (st == HC_OK && !k) st = gemv_xq(c, w->dtype, in, chunk, &xq);
    if (st == HC_OK) st = stream_op(c, "matmul_id");
    if (st != HC_OK) return st;
    int32_t *order = c->moe_ints, *sorted_ids = order + n_rows, *src = sorted_ids + n_rows;
    float *xs = c->moe_rows, *ys = xs + (size_t)chunk * (size_t)in;
    const char *what = k ? "matmul_id (packed expert gemv kernel)" : "matmul_id";
    CU_CHECK(hc_cu_moe_sort(c->stream, ids, n_rows, (int)n_expert, x_div, order, sorted_ids, src), "matmul_id (sort by expert)");
    for (int p0 = 0; p0 < n_rows; p0 += chunk) {
        int np = n_rows - p0 < chunk ? n_rows - p0 : chunk;
        CU_CHECK(hc_cu_dequant_rows(c->stream, HC_F32, x, (size_t)in * sizeof(float), in, src + p0, 0, np, xs, 0),
                 "matmul_id (the sorted input rows)");
        CU_CHECK(gemv_id(c, w, k, slice, sorted_ids + p0, xs, 1, ys, np, xq), what);
        CU_CHECK(hc_cu_scatter_rows(c->stream, ys, order + p0, np, (int)out, y), "matmul_id (the outputs put back)");
    }
    return HC_OK;
}

/* The routed experts' GEMVs: the type's kernel by id, or the packed format's gemv_id; a long pass's
 * rows sorted by expert first (matmul_id_sorted). */
static hc_status cuda_matmul_id(hc_device *d, const hc_tensor *w, const int32_t *ids, const float *x, int x_div, float *y,
                                int n_rows)
{
    cuda_device *c = impl(d);
    const hc_quant_cuda_kernels *k;
    hc_status st = check_format(w, "matmul_id", &k);
    if (st != HC_OK) return st;
    int64_t n_expert = w->ne[2] > 1 ? w->ne[2] : 1;
    size_t slice = w->nbytes / (size_t)n_expert;
    if (k && !k->gemv_id)
        return hc_error(HC_E_UNSUPPORTED, "cuda matmul_id %s: the %s kernels have no expert GEMV", tname(w), k->name);
    if (n_rows < 0 || n_rows > (int)HC_CU_MAX_GRID_YZ || x_div < 1)
        return hc_error(HC_E_ARG, "cuda matmul_id %s: %d rows (at most %u), x_div %d", tname(w), n_rows, HC_CU_MAX_GRID_YZ, x_div);
    if (!n_rows) return HC_OK;
    if (!w->data) return hc_error(HC_E_ARG, "cuda matmul_id %s: the tensor has no data", tname(w));
    if (n_rows > CU_MOE_SORT_ROWS) return matmul_id_sorted(c, w, k, slice, ids, x, x_div, y, n_rows);
    void *xq = NULL;
    if (!k && (st = gemv_xq(c, w->dtype, w->ne[0], (n_rows - 1) / x_div + 1, &xq)) != HC_OK) return st;
    if ((st = stream_op(c, "matmul_id")) != HC_OK) return st;
    CU_CHECK(gemv_id(c, w, k, slice, ids, x, x_div, y, n_rows, xq), k ? "matmul_id (packed expert gemv kernel)" : "matmul_id");
    return HC_OK;
}

static hc_status cuda_moe_combine(hc_device *d, const float *y, const float *weights, int n_tok, int k, int width, float *out)
{
    if (n_tok < 0 || k <= 0 || width < 0) return hc_error(HC_E_ARG, "cuda moe_combine: bad shape %d x %d x %d", n_tok, k, width);
    hc_status st = stream_op(impl(d), "moe_combine");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_moe_combine(impl(d)->stream, y, weights, n_tok, k, width, out), "moe_combine");
    return HC_OK;
}

/* A branch job's packed corrections into its stages' outputs, one launch. */
static hc_status cuda_add_set(hc_device *d, int n, float *const *y, const float *x, const size_t *len)
{
    if (n < 1 || n > HC_MATMUL_SET_MAX) return hc_error(HC_E_ARG, "cuda add_set: %d outputs (1 .. %d)", n, HC_MATMUL_SET_MAX);
    size_t total = 0;
    for (int k = 0; k < n; k++) total += len[k];
    if (!total) return HC_OK;
    hc_status st = stream_op(impl(d), "add_set");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_add_set(impl(d)->stream, n, y, x, len), "add_set");
    return HC_OK;
}

/* ---------------- the hand-off by flags ---------------- */

/* A decode step's arrays in one kernel (the copy over the bus from the SMs, then the flag); a longer
 * pass's on the copy engine, then the flag's kernel. */
static hc_status cuda_publish(hc_device *d, float *host_dst, const float *src, size_t n, uint32_t *flag, uint32_t seq)
{
    cuda_device *c = impl(d);
    if (n && n <= HC_CU_HANDOFF_KERNEL_MAX && pend_owner == c && c->held.kind != HELD_NONE && c->held.y == src &&
        c->held.n == n) { /* the op that makes src publishes it */
        const hc_cu_publish_to p = { .host_dst = host_dst, .flag = flag, .seq = seq, .count = c->pub_count };
        return held_launch(c, &p);
    }
    hc_status st = stream_op(c, "publish");
    if (st != HC_OK) return st;
    if (n <= HC_CU_HANDOFF_KERNEL_MAX) {
        c->published = 1;
        CU_CHECK(hc_cu_publish(c->stream, host_dst, src, n, flag, seq), "publish");
        return HC_OK;
    }
    CU_CHECK(cudaMemcpyAsync(host_dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, c->stream), "publish");
    CU_CHECK(hc_cu_set_flag(c->stream, flag, seq), "publish");
    return HC_OK;
}

/* A decode step's corrections in one kernel: the wait, then the add reading them from page-locked
 * memory. A longer pass's: the wait (a one-thread kernel), their copy to the device, the add. */
static hc_status cuda_merge_when(hc_device *d, float *y, const float *host_src, size_t n, const uint32_t *flag, uint32_t seq,
                                 uint32_t *err)
{
    cuda_device *c = impl(d);
    int held = 0;
    hc_status st = n && n <= HC_CU_HANDOFF_KERNEL_MAX ? pend_add(c, 1, &y, host_src, &n, flag, seq, err, &held) : HC_OK;
    if (st != HC_OK || held) return st;
    st = enter(c, "merge_when");
    if (st == HC_OK && n > HC_CU_HANDOFF_KERNEL_MAX)
        st = ensure_buffer(c, (void **)&c->handoff, &c->handoff_bytes, n * sizeof(float), "merge_when (the corrections on the device)");
    if (st == HC_OK) st = graph_op(c);
    if (st != HC_OK) return st;
    if (n <= HC_CU_HANDOFF_KERNEL_MAX) {
        if (n || flag) CU_CHECK(hc_cu_wait_add_set(c->stream, 1, &y, host_src, &n, flag, seq, err, c->patience_ns), "merge_when");
        return HC_OK;
    }
    if (flag) CU_CHECK(hc_cu_wait_flag(c->stream, flag, seq, err, c->patience_ns), "merge_when (wait)");
    CU_CHECK(cudaMemcpyAsync(c->handoff, host_src, n * sizeof(float), cudaMemcpyHostToDevice, c->stream), "merge_when (copy)");
    CU_CHECK(hc_cu_add(c->stream, y, c->handoff, n), "merge_when (add)");
    return HC_OK;
}

/* A branch job's corrections into its stages' outputs: one kernel for a decode step's (the wait, then the
 * adds reading page-locked memory), else merge_when a stage. */
static hc_status cuda_merge_set(hc_device *d, int n, float *const *y, const float *host_src, const size_t *len,
                                const uint32_t *flag, uint32_t seq, uint32_t *err)
{
    cuda_device *c = impl(d);
    if (n < 1 || n > HC_MATMUL_SET_MAX) return hc_error(HC_E_ARG, "cuda merge_set: %d outputs (1 .. %d)", n, HC_MATMUL_SET_MAX);
    size_t total = 0;
    for (int k = 0; k < n; k++) total += len[k];
    if (total > HC_CU_HANDOFF_KERNEL_MAX) {
        size_t off = 0;
        for (int k = 0; k < n; k++) {
            hc_status st = cuda_merge_when(d, y[k], host_src + off, len[k], k ? NULL : flag, seq, err);
            if (st != HC_OK) return st;
            off += len[k];
        }
        return HC_OK;
    }
    int held = 0;
    hc_status st = total ? pend_add(c, n, y, host_src, len, flag, seq, err, &held) : HC_OK;
    if (st != HC_OK || held) return st;
    st = stream_op(c, "merge_set");
    if (st != HC_OK) return st;
    CU_CHECK(hc_cu_wait_add_set(c->stream, n, y, host_src, len, flag, seq, err, c->patience_ns), "merge_set");
    return HC_OK;
}

/* dst (f32 or f16) = n floats of src: the KV cache's rows. */
static hc_status cuda_store_rows(hc_device *d, void *dst, hc_dtype t, const float *src, size_t n)
{
    if (t != HC_F32 && t != HC_F16) return hc_error(HC_E_UNSUPPORTED, "cuda store_rows into %s", hc_dtype_name(t));
    hc_status st = enter(impl(d), "store_rows");
    if (st == HC_OK && t != HC_F32) st = graph_op(impl(d)); /* f32: cuda_copy's */
    if (st != HC_OK) return st;
    if (t == HC_F32) return cuda_copy(d, dst, src, n * sizeof(float));
    CU_CHECK(hc_cu_to_f16(impl(d)->stream, src, dst, n), "store_rows");
    return HC_OK;
}

/* ---------------- life cycle ---------------- */

static void cuda_destroy(hc_device *d)
{
    if (!d) return;
    cuda_device *c = impl(d);
    if (c) {
        /* not enter(): its error would replace the one that made create fail; the thread's current
           device is what the call left (unknown when it failed, so that the next enter sets it) */
        current_index = cudaSetDevice(c->index) == cudaSuccess ? c->index : -1;
        if (c->capturing) { /* destroyed inside a pass: what was recorded is dropped */
            cudaGraph_t g = NULL;
            if (cudaStreamEndCapture(c->stream, &g) == cudaSuccess) cudaGraphDestroy(g);
        }
        if (step_device == c) step_device = NULL;
        if (pend_owner == c) pend_owner = NULL; /* a merge or an op still held back is dropped */
        if (c->has_stream) cudaStreamSynchronize(c->stream);
        for (int i = 0; i < CU_GRAPH_SEGMENTS; i++)
            if (c->segs[i].has_exec) cudaGraphExecDestroy(c->segs[i].exec);
        for (size_t i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].ptr); /* what callers left behind */
        free(c->allocs);
        cudaFree(c->scratch);
        cudaFree(c->x16);
        cudaFree(c->xq);
        cudaFree(c->consts);
        cudaFree(c->attn_scratch);
        cudaFree(c->moe_ints);
        cudaFree(c->moe_rows);
        cudaFree(c->handoff);
        cudaFree(c->pub_count);
        for (int i = 0; i < CU_STAGE_SLOTS; i++) {
            cudaFreeHost(c->stage[i].host);
            cudaFree(c->stage[i].dev);
            if (c->stage[i].has_event) cudaEventDestroy(c->stage[i].copied);
        }
        if (c->has_copy) {
            cudaStreamSynchronize(c->copy);
            cudaStreamDestroy(c->copy);
        }
        if (c->has_copy_after) cudaEventDestroy(c->copy_after);
        if (c->has_blas) cublasDestroy(c->blas);
        if (c->has_stream) cudaStreamDestroy(c->stream);
        if (c->has_lock) pthread_mutex_destroy(&c->lock);
        (void)cudaGetLastError();
        free(c);
    }
    free(d);
}

static const hc_device_ops cuda_ops = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .download_async = cuda_download_async,
    .upload_async = cuda_upload_async,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_wait = cuda_event_wait,
    .synchronize = cuda_synchronize,
    .matmul = cuda_matmul,
    .get_rows = cuda_get_rows,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .attention = cuda_attention,
    .swiglu = cuda_swiglu,
    .geglu = cuda_geglu,
    .add = cuda_add,
    .add_bias = cuda_add_bias,
    .scale = cuda_scale,
    .mem_used = cuda_mem_used,
    .destroy = cuda_destroy,
    .store_rows = cuda_store_rows,
    .upload_copyq = cuda_upload_copyq,
    .queue_wait = cuda_queue_wait,
    .event_elapsed = cuda_event_elapsed,
    .mem_info = cuda_mem_info,
    .check_weights = cuda_check_weights,
    .graph_step = cuda_graph_step,
    .gate_rows = cuda_gate_rows,
    .moe_topk = cuda_moe_topk,
    .matmul_id = cuda_matmul_id,
    .moe_combine = cuda_moe_combine,
    .publish = cuda_publish,
    .merge_when = cuda_merge_when,
    .add_rmsnorm = cuda_add_rmsnorm,
    .rope_qk = cuda_rope_qk,
    .rope_store = cuda_rope_store,
    .matmul_set = cuda_matmul_set,
    .add_set = cuda_add_set,
    .merge_set = cuda_merge_set,
};

/* An integer setting from the environment: unset, its default; else lo .. hi, or an error saying what
 * it sets. HC_CUDA_GRAPH_OPS: the most ops in a recorded stretch of a pass (0: no graphs);
 * HC_CUDA_HANDOFF_PATIENCE_MS: how long the device waits for a branch's flag; HC_CUDA_MOE_ROWS_BYTES:
 * the most bytes of a long MoE pass's sorted rows at a time (matmul_id_sorted); HC_CUDA_GEMV_ROWS: the
 * rows a warp of the block types' GEMV holds (1 or 4); HC_CUDA_GEMV_INT8: 1 (the GEMVs' x quantized to
 * int8 for the block types and the packed formats with gemv_q8) or 0 (f32); HC_CUDA_FUSE: 1 (the device
 * offers add_rmsnorm, rope_qk, rope_store, matmul_set, add_set and merge_set, several ops a launch, and
 * folds a merge by flags into the op after it and a publish into the op before it: cu_pending, cu_held)
 * or 0 (not: the engine makes each op). */
static hc_status env_setting(const char *name, long def, long lo, long hi, const char *what, long *out)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v) return HC_OK;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) return hc_error(HC_E_ARG, "%s='%.40s': give %s, %ld to %ld", name, v, what, lo, hi);
    *out = n;
    return HC_OK;
}

/* The steps of create that can fail, on a zeroed device; cuda_destroy undoes any prefix of them. */
static hc_status cuda_init(hc_device *d, cuda_device *c)
{
    if (pthread_mutex_init(&c->lock, NULL)) return hc_error(HC_E_NOMEM, "cuda device: cannot create a mutex");
    c->has_lock = 1;
    long ops = 0, patience_ms = 0, moe_rows = 0, gemv_rows = 0, gemv_int8 = 0, fuse = 0;
    hc_status st = env_setting("HC_CUDA_GRAPH_OPS", CU_GRAPH_OPS_DEFAULT, 0, CU_GRAPH_OPS_MAX,
                               "the most ops per recorded stretch of a pass (0: no CUDA graphs)", &ops);
    if (st == HC_OK)
        st = env_setting("HC_CUDA_HANDOFF_PATIENCE_MS", 30000, 1, 3600000, "the milliseconds the GPU waits for a branch", &patience_ms);
    if (st == HC_OK)
        st = env_setting("HC_CUDA_MOE_ROWS_BYTES", (long)CU_MOE_ROWS_MAX_BYTES, 1, (long)CU_MOE_ROWS_MAX_BYTES,
                         "the most bytes of a MoE pass's rows sorted by expert at a time", &moe_rows);
    if (st == HC_OK)
        st = env_setting("HC_CUDA_GEMV_ROWS", HC_CU_GEMV_RUN_ROWS, 1, HC_CU_GEMV_RUN_ROWS,
                         "the rows a warp of the GGUF types' one-token GEMV holds", &gemv_rows);
    if (st == HC_OK && gemv_rows != 1 && gemv_rows != HC_CU_GEMV_RUN_ROWS)
        st = hc_error(HC_E_ARG, "HC_CUDA_GEMV_ROWS=%ld: give 1 or %d, the rows a warp of the GGUF types' one-token GEMV holds",
                      gemv_rows, HC_CU_GEMV_RUN_ROWS);
    if (st == HC_OK)
        st = env_setting("HC_CUDA_GEMV_INT8", 1, 0, 1, "1 (the GEMVs of the GGUF types and of packed formats that can take x "
                         "quantized to int8 do, as the cpu device does) or 0 (x in f32)", &gemv_int8);
    if (st == HC_OK)
        st = env_setting("HC_CUDA_FUSE", 1, 0, 1, "1 (a residual add and the next norm, q's and k's RoPE with the KV "
                         "cache's store, and matmuls sharing their input, a launch each; merges and publishes by flags "
                         "folded into the ops beside them) or 0 (a launch an op)", &fuse);
    if (st != HC_OK) return st;
    c->ops = cuda_ops;
    if (!fuse) { /* the engine's ops one by one */
        c->ops.add_rmsnorm = NULL, c->ops.rope_qk = NULL, c->ops.rope_store = NULL;
        c->ops.matmul_set = NULL, c->ops.add_set = NULL, c->ops.merge_set = NULL;
    }
    d->ops = &c->ops;
    c->fuse = (int)fuse;
    c->gemv_int8 = (int)gemv_int8;
    c->gemv_rows = (int)gemv_rows;
    c->moe_rows_max = (size_t)moe_rows;
    c->graph_ops = (int)ops;
    c->patience_ns = (uint64_t)patience_ms * 1000000u;
    st = enter(c, "create (cudaSetDevice)");
    if (st != HC_OK) return st;
    struct cudaDeviceProp prop;
    CU_CHECK(cudaGetDeviceProperties(&prop, c->index), "create (cudaGetDeviceProperties)");
    snprintf(c->gpu, sizeof c->gpu, "%.200s, sm_%d%d", prop.name, prop.major, prop.minor);
    if (prop.major < 7 || (prop.major == 7 && prop.minor < 5))
        return hc_error(HC_E_UNSUPPORTED, "cuda device %d (%s): compute capability below 7.5 is not supported by this build",
                        c->index, c->gpu);
    CU_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "create (cudaStreamCreate)");
    c->has_stream = 1;
    CU_CHECK(cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking), "create (cudaStreamCreate, copy queue)");
    c->has_copy = 1;
    CU_CHECK(cudaEventCreateWithFlags(&c->copy_after, cudaEventDisableTiming), "create (cudaEventCreate)");
    c->has_copy_after = 1;
    BLAS_CHECK(cublasCreate(&c->blas), "create (cublasCreate)");
    c->has_blas = 1;
    BLAS_CHECK(cublasSetStream(c->blas, c->stream), "create (cublasSetStream)");
    CU_CHECK(cudaMalloc((void **)&c->consts, HC_CU_F16_CONSTS * sizeof(float)), "create (cudaMalloc)");
    CU_CHECK(cudaMalloc((void **)&c->pub_count, sizeof *c->pub_count), "create (cudaMalloc)");
    CU_CHECK(cudaMemsetAsync(c->pub_count, 0, sizeof *c->pub_count, c->stream), "create (cudaMemsetAsync)");
    for (int i = 0; i < CU_STAGE_SLOTS; i++) {
        CU_CHECK(cudaEventCreateWithFlags(&c->stage[i].copied, cudaEventDisableTiming), "create (cudaEventCreate)");
        c->stage[i].has_event = 1;
    }
    return HC_OK;
}

static hc_status cuda_create(const hc_device_config *cfg, hc_device **out)
{
    *out = NULL;
    hc_device_config conf = cfg ? *cfg : (hc_device_config){ 0 };
    hc_status st = cuda_probe();
    if (st != HC_OK) return st;
    int count = 0;
    CU_CHECK(cudaGetDeviceCount(&count), "create");
    if (conf.device_index < 0 || conf.device_index >= count)
        return hc_error(HC_E_ARG, "cuda device: device_index %d is out of range (%d CUDA device%s present)",
                        conf.device_index, count, count == 1 ? " is" : "s are");
    hc_device *d = calloc(1, sizeof *d);
    cuda_device *c = calloc(1, sizeof *c);
    if (!d || !c) {
        free(d);
        free(c);
        return hc_error(HC_E_NOMEM, "cuda device: out of memory");
    }
    c->index = conf.device_index;
    d->ops = &cuda_ops;
    d->name = "cuda";
    d->config = conf;
    d->host_memory = 0;
    d->impl = c;
    st = cuda_init(d, c);
    if (st != HC_OK) {
        cuda_destroy(d);
        return st;
    }
    *out = d;
    return HC_OK;
}

static const hc_device_plugin_ops cuda_plugin_ops = { .probe = cuda_probe, .create = cuda_create };

static const hc_plugin_desc cuda_descriptor = {
    .abi_version = HC_ABI_VERSION,
    .kind = HC_PLUGIN_DEVICE,
    .name = "cuda",
    .version = "0.1.0",
    .description = "NVIDIA GPU device: cuBLAS plus hcinfer's CUDA kernels (f32, f16, bf16, q4_0 .. q8_0, q2_K .. q6_K, "
                   "and packed formats whose quant plugins give CUDA kernels: rtn, gptq)",
    .ops = &cuda_plugin_ops,
};

HC_PLUGIN_DEFINE(cuda_descriptor)
