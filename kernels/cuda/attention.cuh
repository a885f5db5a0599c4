/* attention.cuh: the attention kernel's GQA mapping, causal window and online softmax: one block per
 * (token, head, key split), each warp a strided share of its keys, the partial softmaxes merged. */
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

/* ---------------- splitting the keys (decode) ----------------
 * One token over a long context gives n_head blocks, too few for a GPU of 132 SMs, each walking
 * every key. Then the keys are cut into splits: block (token, head, split s) takes keys
 * [s * chunk, (s + 1) * chunk) of its causal window, writes its partial softmax (max, sum and the
 * unnormalised output) to scratch, and a second kernel merges the splits of each (token, head). */
#define HC_CU_ATTN_TARGET_BLOCKS 264   /* two per SM of a 132-SM H100 */
#define HC_CU_ATTN_MIN_SPLIT_KEYS 128  /* fewer keys than this are not worth a block of their own */
#define HC_CU_ATTN_MAX_SPLITS 64

/* Splits of the keys for n_tok tokens at pos0 over n_head heads: 1 when the (token, head) blocks
 * already fill the GPU or the keys are few; else as many as bring the blocks to the target, each
 * with at least HC_CU_ATTN_MIN_SPLIT_KEYS keys of the longest window. */
static inline HC_CU_HD int hc_cu_attn_n_splits(int n_tok, int n_head, int pos0)
{
    long long blocks = (long long)n_tok * n_head, max_keys = (long long)pos0 + n_tok;
    if (blocks <= 0 || blocks >= HC_CU_ATTN_TARGET_BLOCKS) return 1;
    long long by_keys = max_keys / HC_CU_ATTN_MIN_SPLIT_KEYS;
    long long by_blocks = (HC_CU_ATTN_TARGET_BLOCKS + blocks - 1) / blocks;
    long long n = by_keys < by_blocks ? by_keys : by_blocks;
    if (n > HC_CU_ATTN_MAX_SPLITS) n = HC_CU_ATTN_MAX_SPLITS;
    return n < 1 ? 1 : (int)n;
}

/* Keys per split: the longest window (pos0 + n_tok keys) cut into n_splits equal chunks. */
static inline HC_CU_HD int hc_cu_attn_split_chunk(int n_tok, int pos0, int n_splits)
{
    return (pos0 + n_tok + n_splits - 1) / n_splits;
}

/* Keys [*j0, *j1) of split s for a window of n_keys keys (*j1 <= *j0: the split has none). */
static inline HC_CU_HD void hc_cu_attn_split_range(int s, int chunk, int n_keys, int *j0, int *j1)
{
    long long a = (long long)s * chunk, b = a + chunk;
    *j0 = a < n_keys ? (int)a : n_keys;
    *j1 = b < n_keys ? (int)b : n_keys;
}

/* A split's partial result in scratch: max, sum, then head_dim unnormalised outputs. */
static inline HC_CU_HD size_t hc_cu_attn_part_floats(int head_dim) { return (size_t)head_dim + 2; }

/* Floats of scratch the splits of n_tok tokens over n_head heads need (0 when n_splits is 1). */
static inline HC_CU_HD size_t hc_cu_attn_scratch_floats(int n_tok, int n_head, int head_dim, int n_splits)
{
    if (n_splits <= 1) return 0;
    return (size_t)n_tok * (size_t)n_head * (size_t)n_splits * hc_cu_attn_part_floats(head_dim);
}

/* The partial of (token-head block b, split s) among n_splits. */
static inline HC_CU_HD float *hc_cu_attn_part(float *scratch, unsigned b, int s, int n_splits, int head_dim)
{
    return scratch + ((size_t)b * (size_t)n_splits + (size_t)s) * hc_cu_attn_part_floats(head_dim);
}

/* Grid x: the (token, head) blocks; grid y: the key splits. */
static inline HC_CU_HD hc_cu_launch hc_cu_attention_geometry(int n_tok, int n_head, int n_splits)
{
    hc_cu_launch l = hc_cu_launch_1d((unsigned)((size_t)n_tok * (size_t)n_head), HC_CU_ATTN_THREADS, 0);
    l.grid.y = (unsigned)n_splits;
    return l;
}

/* The merge of the splits: one block per (token, head), its threads over the head's dims. */
static inline HC_CU_HD hc_cu_launch hc_cu_attn_merge_geometry(int n_tok, int n_head)
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

/* The largest running max of the warps that saw a key (-INFINITY when none did). */
static inline HC_CU_HD float hc_cu_attn_warps_max(const hc_cu_attn_shared *sh)
{
    float mx = -INFINITY;
    for (int w = 0; w < HC_CU_ATTN_WARPS; w++)
        if (sh->l[w] > 0.0f && sh->m[w] > mx) mx = sh->m[w];
    return mx;
}

/* The warps' partial softmaxes rescaled to max mx: *num the unnormalised output of dim d, *den
 * the sum of weights (both 0 when no warp saw a key). */
static inline HC_CU_HD void hc_cu_attn_warps_sum(const hc_cu_attn_shared *sh, float mx, int d, float *num, float *den)
{
    float n = 0.0f, e = 0.0f;
    for (int w = 0; w < HC_CU_ATTN_WARPS; w++) {
        if (sh->l[w] <= 0.0f) continue;
        float f = expf(sh->m[w] - mx);
        n += sh->acc[w][d] * f;
        e += sh->l[w] * f;
    }
    *num = n;
    *den = e;
}

/* The final output of dim d from the warps' partial softmaxes (a warp with no key has l = 0). */
static inline HC_CU_HD float hc_cu_attn_merge(const hc_cu_attn_shared *sh, int d)
{
    float num, den;
    hc_cu_attn_warps_sum(sh, hc_cu_attn_warps_max(sh), d, &num, &den);
    return num / den;
}

/* The output of dim d from the n_splits partials of one (token, head) (part: the first; a split
 * without keys has sum 0; split 0 always holds key 0, so the sum is positive). */
static inline HC_CU_HD float hc_cu_attn_merge_splits(const float *part, int n_splits, int head_dim, int d)
{
    size_t stride = hc_cu_attn_part_floats(head_dim);
    float mx = -INFINITY;
    for (int s = 0; s < n_splits; s++) {
        const float *p = part + (size_t)s * stride;
        if (p[1] > 0.0f && p[0] > mx) mx = p[0];
    }
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < n_splits; s++) {
        const float *p = part + (size_t)s * stride;
        if (p[1] <= 0.0f) continue;
        float f = expf(p[0] - mx);
        num += p[2 + d] * f;
        den += p[1] * f;
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
