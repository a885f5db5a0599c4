/* norm_rope.cu: the RMSNorm kernels (one block per token, shared-memory tree; alone or after a residual add)
 * and the RoPE kernel (one block per token and head, of q and k at once); their math: rmsnorm.cuh, rope.cuh. */
#include "cuda_kernels.h"
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

__global__ void rmsnorm_kernel(const float *x, const float *w, float *y, int dim, float eps)
{
    __shared__ float slots[HC_CU_NORM_THREADS];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    float sum = block_sum(slots, hc_cu_rmsnorm_partial(xr, dim, tid, n));
    hc_cu_rmsnorm_apply(xr, w, yr, dim, hc_cu_rmsnorm_inv(sum, dim, eps), tid, n);
}

/* x += r, then y = rmsnorm(x) * w: the residual add and the next norm in one pass over the row. */
__global__ void add_rmsnorm_kernel(float *x, const float *r, const float *w, float *y, int dim, float eps)
{
    __shared__ float slots[HC_CU_NORM_THREADS];
    size_t row = (size_t)blockIdx.x * dim;
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    float sum = block_sum(slots, hc_cu_add_rmsnorm_partial(x + row, r + row, dim, tid, n));
    hc_cu_rmsnorm_apply(x + row, w, y + row, dim, hc_cu_rmsnorm_inv(sum, dim, eps), tid, n);
}

extern "C" cudaError_t hc_cu_rmsnorm(cudaStream_t s, const float *x, const float *w, float *y, int n_tok, int dim,
                                     float eps)
{
    if (n_tok <= 0 || dim <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    rmsnorm_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, w, y, dim, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_add_rmsnorm(cudaStream_t s, float *x, const float *r, const float *w, float *y, int n_tok,
                                         int dim, float eps)
{
    if (n_tok <= 0 || dim <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    add_rmsnorm_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, r, w, y, dim, eps);
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
