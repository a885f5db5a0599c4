/* norm_rope.cu: the RMSNorm kernels (one block per token, shared-memory tree; alone or after a residual add)
 * and the RoPE kernels (one block per token and head, of q and k at once; also storing k and v into the KV
 * cache); their math: rmsnorm.cuh, rope.cuh. */
#include "cuda_kernels.h"
#include "handoff.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"

/* The block's sum of its threads' partial sums (slot 0 of the tree), every thread back from the barrier. */
static __device__ float block_sum(float *slots, float partial)
{
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    slots[tid] = partial;
    __syncthreads();
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        hc_cu_tree_step(slots, tid, stride);
        __syncthreads();
    }
    return slots[0];
}

/* y = rmsnorm(x) * w (y published too, with p: the first layer's input, by flags) */
__global__ void rmsnorm_kernel(const float *x, const float *w, float *y, int dim, float eps, const hc_cu_publish_to p)
{
    __shared__ float slots[HC_CU_NORM_THREADS];
    size_t row = (size_t)blockIdx.x * dim;
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    float sum = block_sum(slots, hc_cu_rmsnorm_partial(x + row, dim, tid, n));
    hc_cu_rmsnorm_apply(x + row, w, y + row, dim, hc_cu_rmsnorm_inv(sum, dim, eps), tid, n);
    if (p.flag) {
        for (int i = tid; i < dim; i += n) p.host_dst[row + i] = y[row + i]; /* the thread's own slice of y */
        hc_cu_publish_end(p);
    }
}

/* x += r, then y = rmsnorm(x) * w: the residual add and the next norm in one pass over the row (r's
 * corrections first, with m; y published too, with p). */
__global__ void add_rmsnorm_kernel(float *x, const float *r, const float *w, float *y, int dim, float eps, const hc_cu_merge m,
                                   const hc_cu_publish_to p)
{
    __shared__ float slots[HC_CU_NORM_THREADS];
    size_t row = (size_t)blockIdx.x * dim;
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    hc_cu_merge_wait(m);
    hc_cu_merge_span(m, 0, row, (size_t)dim);
    float sum = block_sum(slots, hc_cu_add_rmsnorm_partial(x + row, r + row, dim, tid, n));
    hc_cu_rmsnorm_apply(x + row, w, y + row, dim, hc_cu_rmsnorm_inv(sum, dim, eps), tid, n);
    if (p.flag) {
        for (int i = tid; i < dim; i += n) p.host_dst[row + i] = y[row + i]; /* the thread's own slice of y */
        hc_cu_publish_end(p);
    }
}

extern "C" cudaError_t hc_cu_rmsnorm(cudaStream_t s, const float *x, const float *w, float *y, int n_tok, int dim,
                                     float eps, const hc_cu_publish_to *p)
{
    if (n_tok <= 0 || dim <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    rmsnorm_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, w, y, dim, eps, hc_cu_or_none(p));
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_add_rmsnorm(cudaStream_t s, float *x, const float *r, const float *w, float *y, int n_tok,
                                         int dim, float eps, const hc_cu_merge *m, const hc_cu_publish_to *p)
{
    if (n_tok <= 0 || dim <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    add_rmsnorm_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, r, w, y, dim, eps,
                                                                                      hc_cu_or_none(m),
                                                                                      hc_cu_or_none(p));
    return cudaGetLastError();
}

/* Blocks below n_first (n_tok * n_head) rotate x's (token, head) pairs, the blocks after them x2's
 * (n_head2 heads a token): q and k in one launch. */
__global__ void rope_kernel(float *x, int n_head, unsigned n_first, float *x2, int n_head2, int head_dim, int n_rot,
                            const int32_t *pos, int pos0, float theta, int mode)
{
    unsigned block = blockIdx.x;
    if (block >= n_first) {
        block -= n_first;
        x = x2;
        n_head = n_head2;
    }
    int t, h;
    hc_cu_rope_block(block, n_head, &t, &h);
    hc_cu_rope_thread(x, t, h, (int)threadIdx.x, (int)blockDim.x, n_head, head_dim, n_rot, hc_cu_rope_pos(pos, pos0, t),
                      theta, mode);
}

/* A head's head_dim values from src into dst, f32 or (F16) f16, by the block's threads. */
template <int F16>
__device__ static void store_head(const float *src, void *dst, int head_dim)
{
    for (int i = (int)threadIdx.x; i < head_dim; i += (int)blockDim.x) {
        if (F16) ((uint16_t *)dst)[i] = hc_cu_f32_to_f16(src[i]);
        else ((float *)dst)[i] = src[i];
    }
}

/* rope_kernel's blocks of q (n_q = n_tok * n_head) and of k (n_k = n_tok * n_head_kv), each k head also
 * stored, once rotated, into its row of the KV cache (k_dst), then n_k blocks storing v's heads into
 * v_dst: RoPE and the KV cache's store in one launch (with m, each block's head corrected first). */
template <int F16>
__global__ void rope_store_kernel(float *q, int n_head, unsigned n_q, float *k, int n_head_kv, unsigned n_k, const float *v,
                                  void *k_dst, void *v_dst, int head_dim, int n_rot, const int32_t *pos, int pos0, float theta,
                                  int mode, const hc_cu_merge m)
{
    unsigned block = blockIdx.x;
    int t, h;
    hc_cu_merge_wait(m);
    if (block < n_q) {
        hc_cu_merge_span(m, 0, (size_t)block * head_dim, (size_t)head_dim);
        hc_cu_rope_block(block, n_head, &t, &h);
        hc_cu_rope_thread(q, t, h, (int)threadIdx.x, (int)blockDim.x, n_head, head_dim, n_rot, hc_cu_rope_pos(pos, pos0, t),
                          theta, mode);
        return;
    }
    block -= n_q;
    const size_t esz = F16 ? 2u : 4u;
    if (block < n_k) {
        hc_cu_merge_span(m, 1, (size_t)block * head_dim, (size_t)head_dim);
        hc_cu_rope_block(block, n_head_kv, &t, &h);
        hc_cu_rope_thread(k, t, h, (int)threadIdx.x, (int)blockDim.x, n_head_kv, head_dim, n_rot,
                          hc_cu_rope_pos(pos, pos0, t), theta, mode);
        __syncthreads(); /* the head rotated, by all its threads */
        store_head<F16>(k + (size_t)block * head_dim, (uint8_t *)k_dst + (size_t)block * head_dim * esz, head_dim);
        return;
    }
    block -= n_k;
    hc_cu_merge_span(m, 2, (size_t)block * head_dim, (size_t)head_dim);
    store_head<F16>(v + (size_t)block * head_dim, (uint8_t *)v_dst + (size_t)block * head_dim * esz, head_dim);
}

extern "C" cudaError_t hc_cu_rope_store(cudaStream_t s, float *q, float *k, const float *v, int n_tok, int n_head, int n_head_kv,
                                        int head_dim, int n_rot, const int32_t *pos, int pos0, float theta, int mode, void *k_dst,
                                        void *v_dst, int kv_f16, const hc_cu_merge *m)
{
    if (n_tok <= 0 || n_head < 0 || n_head_kv <= 0 || n_rot <= 0) return cudaSuccess;
    const hc_cu_merge mm = hc_cu_or_none(m);
    hc_cu_launch l = hc_cu_rope_geometry(n_tok, n_head + 2 * n_head_kv);
    unsigned n_q = (unsigned)((size_t)n_tok * (size_t)n_head), n_k = (unsigned)((size_t)n_tok * (size_t)n_head_kv);
    if (kv_f16)
        rope_store_kernel<1><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(q, n_head, n_q, k, n_head_kv, n_k, v,
                                                                                           k_dst, v_dst, head_dim, n_rot, pos,
                                                                                           pos0, theta, mode, mm);
    else
        rope_store_kernel<0><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(q, n_head, n_q, k, n_head_kv, n_k, v,
                                                                                           k_dst, v_dst, head_dim, n_rot, pos,
                                                                                           pos0, theta, mode, mm);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_rope(cudaStream_t s, float *x, int n_tok, int n_head, int head_dim, int n_rot,
                                  const int32_t *pos, int pos0, float theta, int mode)
{
    return hc_cu_rope_qk(s, x, NULL, n_tok, n_head, 0, head_dim, n_rot, pos, pos0, theta, mode);
}

extern "C" cudaError_t hc_cu_rope_qk(cudaStream_t s, float *q, float *k, int n_tok, int n_head, int n_head_kv, int head_dim,
                                     int n_rot, const int32_t *pos, int pos0, float theta, int mode)
{
    if (!k) n_head_kv = 0;
    if (n_tok <= 0 || n_head < 0 || n_head_kv < 0 || n_head + n_head_kv <= 0 || n_rot <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rope_geometry(n_tok, n_head + n_head_kv);
    unsigned n_first = (unsigned)((size_t)n_tok * (size_t)n_head);
    rope_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(q, n_head, n_first, k, n_head_kv, head_dim,
                                                                                n_rot, pos, pos0, theta, mode);
    return cudaGetLastError();
}
