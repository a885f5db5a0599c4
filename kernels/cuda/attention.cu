/* attention.cu: causal grouped-query attention over the KV cache (f32 or f16), one block per (token,
 * head), online softmax per warp and a merge of the warps (see attention.cuh for the math). */
#include "attention.cuh"
#include "cuda_kernels.h"

template <int F16>
__global__ void attention_kernel(hc_attn_args a)
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
    int n_keys = hc_cu_attn_n_keys(a.pos0, t);
    for (int j = warp; j < n_keys; j += HC_CU_ATTN_WARPS) {
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

    float *out = a.out + ((size_t)t * a.n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) out[d] = hc_cu_attn_merge(&sh, d);
}

extern "C" cudaError_t hc_cu_attention(cudaStream_t s, const hc_attn_args *a)
{
    if (a->n_tok <= 0 || a->n_head <= 0) return cudaSuccess;
    if (a->head_dim <= 0 || a->head_dim > HC_CU_ATTN_MAX_DIM || a->n_head_kv <= 0) return cudaErrorInvalidValue;
    hc_cu_launch l = hc_cu_attention_geometry(a->n_tok, a->n_head);
    if (a->kv_dtype == HC_F16) attention_kernel<1><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(*a);
    else if (a->kv_dtype == HC_F32) attention_kernel<0><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(*a);
    else return cudaErrorInvalidValue;
    return cudaGetLastError();
}
