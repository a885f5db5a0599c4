/* norm_rope.cu: the RMSNorm kernel (one block per token, shared-memory tree) and the RoPE kernel
 * (one block per token and head); their math lives in rmsnorm.cuh and rope.cuh. */
#include "cuda_kernels.h"
#include "rmsnorm.cuh"
#include "rope.cuh"

__global__ void rmsnorm_kernel(const float *x, const float *w, float *y, int dim, float eps)
{
    __shared__ float slots[HC_CU_NORM_THREADS];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    slots[tid] = hc_cu_rmsnorm_partial(xr, dim, tid, n);
    __syncthreads();
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        hc_cu_tree_step(slots, tid, stride);
        __syncthreads();
    }
    hc_cu_rmsnorm_apply(xr, w, yr, dim, hc_cu_rmsnorm_inv(slots[0], dim, eps), tid, n);
}

extern "C" cudaError_t hc_cu_rmsnorm(cudaStream_t s, const float *x, const float *w, float *y, int n_tok, int dim,
                                     float eps)
{
    if (n_tok <= 0 || dim <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rmsnorm_geometry(n_tok);
    rmsnorm_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, w, y, dim, eps);
    return cudaGetLastError();
}

__global__ void rope_kernel(float *x, int n_head, int head_dim, int n_rot, const int32_t *pos, int pos0, float theta,
                            int mode)
{
    int t, h;
    hc_cu_rope_block(blockIdx.x, n_head, &t, &h);
    hc_cu_rope_thread(x, t, h, (int)threadIdx.x, (int)blockDim.x, n_head, head_dim, n_rot, hc_cu_rope_pos(pos, pos0, t),
                      theta, mode);
}

extern "C" cudaError_t hc_cu_rope(cudaStream_t s, float *x, int n_tok, int n_head, int head_dim, int n_rot,
                                  const int32_t *pos, int pos0, float theta, int mode)
{
    if (n_tok <= 0 || n_head <= 0 || n_rot <= 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_rope_geometry(n_tok, n_head);
    rope_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(x, n_head, head_dim, n_rot, pos, pos0,
                                                                                theta, mode);
    return cudaGetLastError();
}
