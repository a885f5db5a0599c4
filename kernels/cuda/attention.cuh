/* attention.cuh: the attention kernel's GQA mapping, causal window and online softmax: one block per
 * (token, head), each warp a strided share of the keys, the warps' partial softmaxes merged at the end. */
#ifndef HC_CUDA_ATTENTION_CUH
#define HC_CUDA_ATTENTION_CUH

#include "cuda_common.cuh"

#define HC_CU_ATTN_THREADS 128                          /* 4 warps */
#define HC_CU_ATTN_WARPS (HC_CU_ATTN_THREADS / HC_CU_WARP)
#define HC_CU_ATTN_DPL 8                                /* head dims per lane */
#define HC_CU_ATTN_MAX_DIM (HC_CU_ATTN_DPL * HC_CU_WARP) /* 256 */

/* Shared memory of one block: q, and each warp's running max, sum and output. */
typedef struct hc_cu_attn_shared {
    float q[HC_CU_ATTN_MAX_DIM];
    float m[HC_CU_ATTN_WARPS];
    float l[HC_CU_ATTN_WARPS];
    float acc[HC_CU_ATTN_WARPS][HC_CU_ATTN_MAX_DIM];
} hc_cu_attn_shared;

static inline HC_CU_HD hc_cu_launch hc_cu_attention_geometry(int n_tok, int n_head)
{
    return hc_cu_launch_1d((unsigned)((size_t)n_tok * (size_t)n_head), HC_CU_ATTN_THREADS, 0);
}

static inline HC_CU_HD void hc_cu_attn_block(unsigned block, int n_head, int *t, int *h)
{
    *t = (int)(block / (unsigned)n_head);
    *h = (int)(block % (unsigned)n_head);
}

/* Grouped-query attention: n_head / n_head_kv query heads share one kv head. */
static inline HC_CU_HD int hc_cu_attn_kv_head(int h, int n_head, int n_head_kv) { return h / (n_head / n_head_kv); }

/* Causal: token t (at position pos0 + t) sees cache rows 0 .. pos0 + t. */
static inline HC_CU_HD int hc_cu_attn_n_keys(int pos0, int t) { return pos0 + t + 1; }

/* Element d of a cache row of f32 (f16 = 0) or IEEE f16 (f16 = 1) elements: an f16 KV cache is
 * read widened exactly, as the reference reads it. */
static inline HC_CU_HD float hc_cu_kv_at(const void *row, int d, int f16)
{
    if (f16) return hc_cu_f16_to_f32(((const uint16_t *)row)[d]);
    return ((const float *)row)[d];
}

/* Lane's share of q . k over dims lane, lane + 32, ... < head_dim (loops of constant length, so
 * nvcc unrolls them and keeps acc[] in registers). */
static inline HC_CU_HD float hc_cu_attn_lane_dot(const float *q, const void *k, int head_dim, int lane, int f16)
{
    float s = 0.0f;
    for (int i = 0; i < HC_CU_ATTN_DPL; i++) {
        int d = lane + i * HC_CU_WARP;
        if (d < head_dim) s += q[d] * hc_cu_kv_at(k, d, f16);
    }
    return s;
}

/* Online softmax: takes score s into running max *m and sum *l; returns via *corr the factor the
 * old output must be scaled by and via *p the new key's weight. */
static inline HC_CU_HD void hc_cu_softmax_step(float *m, float *l, float s, float *corr, float *p)
{
    float m_new = s > *m ? s : *m;
    *corr = *m == -INFINITY ? 0.0f : expf(*m - m_new);
    *p = expf(s - m_new);
    *l = *l * *corr + *p;
    *m = m_new;
}

/* acc[i] (dim lane + 32 i) = acc[i] * corr + p * v[dim]. */
static inline HC_CU_HD void hc_cu_attn_lane_accumulate(float *acc, const void *v, int head_dim, int lane, float corr,
                                                       float p, int f16)
{
    for (int i = 0; i < HC_CU_ATTN_DPL; i++) {
        int d = lane + i * HC_CU_WARP;
        if (d < head_dim) acc[i] = acc[i] * corr + p * hc_cu_kv_at(v, d, f16);
    }
}

/* The final output of dim d from the warps' partial softmaxes (a warp with no key has l = 0). */
static inline HC_CU_HD float hc_cu_attn_merge(const hc_cu_attn_shared *sh, int d)
{
    float mx = -INFINITY;
    for (int w = 0; w < HC_CU_ATTN_WARPS; w++)
        if (sh->l[w] > 0.0f && sh->m[w] > mx) mx = sh->m[w];
    float num = 0.0f, den = 0.0f;
    for (int w = 0; w < HC_CU_ATTN_WARPS; w++) {
        if (sh->l[w] <= 0.0f) continue;
        float f = expf(sh->m[w] - mx);
        num += sh->acc[w][d] * f;
        den += sh->l[w] * f;
    }
    return num / den;
}

/* Row j of a cache [n_ctx][n_head_kv * head_dim] (f32, or f16 when f16) for kv head kvh. */
static inline HC_CU_HD const void *hc_cu_attn_cache_row(const void *cache, int j, int n_head_kv, int head_dim, int kvh, int f16)
{
    size_t i = (size_t)j * n_head_kv * head_dim + (size_t)kvh * head_dim;
    return (const uint8_t *)cache + i * (f16 ? 2u : 4u);
}

#endif
