/* rmsnorm.cuh: the RMSNorm kernels' math and geometry (alone, and after a residual add): one block per token,
 * each thread sums the squares of a strided slice, a shared-memory tree adds the slices, then every thread scales its slice. */
#ifndef HC_CUDA_RMSNORM_CUH
#define HC_CUDA_RMSNORM_CUH

#include "cuda_common.cuh"

/* Threads per token; a power of two (the tree halves it). */
#define HC_CU_NORM_THREADS 256

static inline HC_CU_HD hc_cu_launch hc_cu_rmsnorm_geometry(int n_tok)
{
    return hc_cu_launch_1d((unsigned)n_tok, HC_CU_NORM_THREADS, 0);
}

/* Thread tid's share of sum(x^2): elements tid, tid + n_threads, ... */
static inline HC_CU_HD float hc_cu_rmsnorm_partial(const float *x, int dim, int tid, int n_threads)
{
    float s = 0.0f;
    for (int i = tid; i < dim; i += n_threads) s += x[i] * x[i];
    return s;
}

/* One step of the tree: in round `stride` (n_threads/2, n_threads/4, ..., 1) thread tid < stride
 * adds slot tid + stride into slot tid; afterwards slot 0 holds the total. */
static inline HC_CU_HD void hc_cu_tree_step(float *slots, int tid, int stride)
{
    if (tid < stride) slots[tid] += slots[tid + stride];
}

/* The residual add first (add_rmsnorm): x[i] += r[i] for the thread's slice, and its share of sum(x^2)
 * of the sums. The same thread scales the same slice afterwards, so y may equal x or r. */
static inline HC_CU_HD float hc_cu_add_rmsnorm_partial(float *x, const float *r, int dim, int tid, int n_threads)
{
    float s = 0.0f;
    for (int i = tid; i < dim; i += n_threads) {
        float v = x[i] + r[i];
        x[i] = v;
        s += v * v;
    }
    return s;
}

static inline HC_CU_HD float hc_cu_rmsnorm_inv(float sum_sq, int dim, float eps)
{
    return 1.0f / sqrtf(sum_sq / (float)dim + eps);
}

/* y[i] = x[i] * inv * w[i] for the thread's slice (y may equal x: each thread reads before it writes). */
static inline HC_CU_HD void hc_cu_rmsnorm_apply(const float *x, const float *w, float *y, int dim, float inv, int tid,
                                                int n_threads)
{
    for (int i = tid; i < dim; i += n_threads) y[i] = x[i] * inv * w[i];
}

#endif
