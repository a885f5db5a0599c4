/* attention.cu: causal grouped-query attention over the KV cache (f32 or f16): one block per (token,
 * head, key split), online softmax per warp, the warps merged, then the splits (see attention.cuh). */
#include "attention.cuh"
#include "cuda_kernels.h"
#include "handoff.cuh"

/* Keys [j0, j1) of block (t, h) for split blockIdx.y of gridDim.y (chunk keys each). With one split
 * the block writes the output (published too, with pub); with several, its partial (max, sum,
 * unnormalised output) to part. */
template <int F16>
__global__ void attention_kernel(hc_attn_args a, int chunk, float *part, const hc_cu_publish_to pub)
{
    __shared__ hc_cu_attn_shared sh;
    int t, h;
    hc_cu_attn_block(blockIdx.x, a.n_head, &t, &h);
    int hd = a.head_dim, kvh = hc_cu_attn_kv_head(h, a.n_head, a.n_head_kv);
    const float *q = a.q + ((size_t)t * a.n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) sh.q[d] = q[d];
    __syncthreads();

    int warp = (int)threadIdx.x / HC_CU_WARP, lane = (int)threadIdx.x % HC_CU_WARP;
    float m = -INFINITY, l = 0.0f, acc[HC_CU_ATTN_DPL];
    for (int i = 0; i < HC_CU_ATTN_DPL; i++) acc[i] = 0.0f;
    int j0, j1;
    hc_cu_attn_split_range((int)blockIdx.y, chunk, hc_cu_attn_n_keys(a.pos0, t), &j0, &j1);
    for (int j = j0 + warp; j < j1; j += HC_CU_ATTN_WARPS) {
        float s = hc_cu_attn_lane_dot(sh.q, hc_cu_attn_cache_row(a.k_cache, j, a.n_head_kv, hd, kvh, F16), hd, lane, F16);
        for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        float corr, p;
        hc_cu_softmax_step(&m, &l, s * a.scale, &corr, &p);
        hc_cu_attn_lane_accumulate(acc, hc_cu_attn_cache_row(a.v_cache, j, a.n_head_kv, hd, kvh, F16), hd, lane, corr, p, F16);
    }
    if (lane == 0) {
        sh.m[warp] = m;
        sh.l[warp] = l;
    }
    for (int i = 0; i < HC_CU_ATTN_DPL; i++) {
        int d = lane + i * HC_CU_WARP;
        if (d < hd) sh.acc[warp][d] = acc[i];
    }
    __syncthreads();

    if (gridDim.y == 1) {
        size_t at = ((size_t)t * a.n_head + h) * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float v = hc_cu_attn_merge(&sh, d);
            a.out[at + d] = v;
            if (pub.flag) pub.host_dst[at + d] = v;
        }
        hc_cu_publish_end(pub);
        return;
    }
    float *p = hc_cu_attn_part(part, blockIdx.x, (int)blockIdx.y, (int)gridDim.y, hd);
    float mx = hc_cu_attn_warps_max(&sh);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float num, den;
        hc_cu_attn_warps_sum(&sh, mx, d, &num, &den);
        p[2 + d] = num;
        if (d == 0) p[0] = mx, p[1] = den;
    }
}

/* out of (token, head) blockIdx.x from the n_splits partials (published too, with pub). */
__global__ void attention_merge_kernel(hc_attn_args a, int n_splits, const float *part, const hc_cu_publish_to pub)
{
    int t, h;
    hc_cu_attn_block(blockIdx.x, a.n_head, &t, &h);
    const float *p = hc_cu_attn_part((float *)part, blockIdx.x, 0, n_splits, a.head_dim);
    size_t at = ((size_t)t * a.n_head + h) * a.head_dim;
    for (int d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
        float v = hc_cu_attn_merge_splits(p, n_splits, a.head_dim, d);
        a.out[at + d] = v;
        if (pub.flag) pub.host_dst[at + d] = v;
    }
    hc_cu_publish_end(pub);
}

extern "C" cudaError_t hc_cu_attention(cudaStream_t s, const hc_attn_args *a, int n_splits, float *scratch,
                                       const hc_cu_publish_to *p)
{
    const hc_cu_publish_to none = {}, pub = hc_cu_or_none(p);
    if (a->n_tok <= 0 || a->n_head <= 0) return cudaSuccess;
    if (a->head_dim <= 0 || a->head_dim > HC_CU_ATTN_MAX_DIM || a->n_head_kv <= 0) return cudaErrorInvalidValue;
    if (n_splits < 1 || n_splits > HC_CU_ATTN_MAX_SPLITS || (n_splits > 1 && !scratch)) return cudaErrorInvalidValue;
    int chunk = hc_cu_attn_split_chunk(a->n_tok, a->pos0, n_splits);
    hc_cu_launch l = hc_cu_attention_geometry(a->n_tok, a->n_head, n_splits);
    if (a->kv_dtype == HC_F16)
        attention_kernel<1><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(*a, chunk, scratch,
                                                                                         n_splits > 1 ? none : pub);
    else if (a->kv_dtype == HC_F32)
        attention_kernel<0><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(*a, chunk, scratch,
                                                                                         n_splits > 1 ? none : pub);
    else return cudaErrorInvalidValue;
    if (n_splits > 1) {
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        hc_cu_launch m = hc_cu_attn_merge_geometry(a->n_tok, a->n_head);
        attention_merge_kernel<<<hc_cu_dim3(m.grid), hc_cu_dim3(m.block), 0, s>>>(*a, n_splits, scratch, pub);
    }
    return cudaGetLastError();
}
