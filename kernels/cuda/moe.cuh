/* moe.cuh: a mixture of experts routed on the GPU: the top-k kernel's geometry and limits, and the
 * combine's element math; the host's own routing (core/runtime/moe.c) is the reference. */
#ifndef HC_CUDA_MOE_CUH
#define HC_CUDA_MOE_CUH

#include "cuda_common.cuh"

/* Experts a router may have (the top-k kernel keeps their probabilities in shared memory) and the
 * experts a token may choose. */
#define HC_CU_MOE_MAX_EXPERTS 1024
#define HC_CU_MOE_MAX_K 32

/* One warp per token. */
static inline HC_CU_HD hc_cu_launch hc_cu_moe_topk_geometry(int n_tok)
{
    return hc_cu_launch_1d((unsigned)n_tok, HC_CU_WARP, 0);
}

/* The routed rows sorted by expert (moe_sort): one block of this many threads, each counting and
 * placing the rows of its experts. */
#define HC_CU_MOE_SORT_THREADS 256

static inline HC_CU_HD hc_cu_launch hc_cu_moe_sort_geometry(void)
{
    return hc_cu_launch_1d(1, HC_CU_MOE_SORT_THREADS, 0);
}

/* The better of two (probability, expert) candidates: the larger probability, on a tie the lower
 * expert (as the host's hc_moe_route_token). */
static inline HC_CU_HD int hc_cu_moe_better(float p, int e, float q, int f)
{
    return p > q || (p == q && e < f);
}

/* out[t][c] = sum over j < k of weights[t k + j] y[t k + j][c], the best choice first. */
static inline HC_CU_HD float hc_cu_moe_combine_elem(const float *y, const float *weights, size_t i, int width, int k)
{
    size_t t = i / (size_t)width, c = i % (size_t)width;
    float s = 0.0f;
    for (int j = 0; j < k; j++) s += weights[t * (size_t)k + (size_t)j] * y[(t * (size_t)k + (size_t)j) * (size_t)width + c];
    return s;
}

#endif
