/* moe.cu: the experts routed on the GPU: softmax and top-k of each token's router logits (a warp per
 * token), the routed rows sorted by expert and put back, and the weighted combine of its experts' rows;
 * the expert GEMVs are matmul.cu's (by id). */
#include "cuda_kernels.h"
#include "elementwise.cuh"
#include "moe.cuh"

__global__ void moe_topk_kernel(const float *logits, int n_expert, int k, int norm, int32_t *ids, float *weights)
{
    __shared__ float p[HC_CU_MOE_MAX_EXPERTS]; /* exp(logit - max); a chosen expert's becomes -1 */
    int t = (int)blockIdx.x, lane = (int)threadIdx.x;
    const float *lg = logits + (size_t)t * (size_t)n_expert;
    float mx = -INFINITY;
    for (int e = lane; e < n_expert; e += HC_CU_WARP) mx = fmaxf(mx, lg[e]);
    for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    float sum = 0.0f;
    for (int e = lane; e < n_expert; e += HC_CU_WARP) {
        float v = expf(lg[e] - mx);
        p[e] = v;
        sum += v;
    }
    for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    __syncthreads();
    float wsum = 0.0f;
    for (int j = 0; j < k; j++) {
        float bv = -1.0f;
        int be = n_expert;
        for (int e = lane; e < n_expert; e += HC_CU_WARP)
            if (hc_cu_moe_better(p[e], e, bv, be)) bv = p[e], be = e;
        for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            int oe = __shfl_xor_sync(0xffffffffu, be, off);
            if (hc_cu_moe_better(ov, oe, bv, be)) bv = ov, be = oe;
        }
        float w = bv / sum;
        wsum += w;
        if (lane == 0) {
            ids[(size_t)t * k + j] = be;
            weights[(size_t)t * k + j] = w;
            p[be] = -1.0f;
        }
        __syncthreads();
    }
    if (norm && wsum > 0.0f && lane < k) weights[(size_t)t * k + lane] /= wsum;
}

extern "C" cudaError_t hc_cu_moe_topk(cudaStream_t s, const float *logits, int n_tok, int n_expert, int k, int norm, int32_t *ids,
                                      float *weights)
{
    if (n_tok <= 0) return cudaSuccess;
    if (n_expert <= 0 || n_expert > HC_CU_MOE_MAX_EXPERTS || k <= 0 || k > HC_CU_MOE_MAX_K || k > n_expert)
        return cudaErrorInvalidValue;
    hc_cu_launch l = hc_cu_moe_topk_geometry(n_tok);
    moe_topk_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(logits, n_expert, k, norm, ids, weights);
    return cudaGetLastError();
}

__global__ void moe_combine_kernel(const float *y, const float *weights, size_t n, int width, int k, float *out)
{
    HC_CU_EW_LOOP(i, n) out[i] = hc_cu_moe_combine_elem(y, weights, i, width, k);
}

extern "C" cudaError_t hc_cu_moe_combine(cudaStream_t s, const float *y, const float *weights, int n_tok, int k, int width,
                                         float *out)
{
    if (n_tok <= 0 || width <= 0) return cudaSuccess;
    if (k <= 0) return cudaErrorInvalidValue;
    size_t n = (size_t)n_tok * (size_t)width;
    hc_cu_launch l = hc_cu_elementwise_geometry(n, HC_CU_EW_MAX_BLOCKS);
    moe_combine_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(y, weights, n, width, k, out);
    return cudaGetLastError();
}

/* One block: thread e (and e + blockDim, ...) counts expert e's rows, thread 0 sums the counts into
 * offsets, then thread e writes its experts' rows in row order (stable). Rows whose id is out of range
 * go last, in row order, so that order is a permutation of 0 .. n_rows. */
__global__ void moe_sort_kernel(const int32_t *ids, int n_rows, int n_expert, int x_div, int32_t *order, int32_t *sorted_ids,
                                int32_t *src_rows)
{
    __shared__ int off[HC_CU_MOE_MAX_EXPERTS + 1];
    int tid = (int)threadIdx.x;
    for (int e = tid; e < n_expert; e += (int)blockDim.x) {
        int n = 0;
        for (int r = 0; r < n_rows; r++) n += ids[r] == e;
        off[e + 1] = n;
    }
    __syncthreads();
    if (tid == 0) {
        off[0] = 0;
        for (int e = 0; e < n_expert; e++) off[e + 1] += off[e];
        int p = off[n_expert];
        for (int r = 0; r < n_rows; r++)
            if (ids[r] < 0 || ids[r] >= n_expert) {
                order[p] = r;
                sorted_ids[p] = ids[r];
                src_rows[p++] = r / x_div;
            }
    }
    __syncthreads();
    for (int e = tid; e < n_expert; e += (int)blockDim.x) {
        int p = off[e];
        for (int r = 0; r < n_rows; r++)
            if (ids[r] == e) {
                order[p] = r;
                sorted_ids[p] = e;
                src_rows[p++] = r / x_div;
            }
    }
}

extern "C" cudaError_t hc_cu_moe_sort(cudaStream_t s, const int32_t *ids, int n_rows, int n_expert, int x_div, int32_t *order,
                                      int32_t *sorted_ids, int32_t *src_rows)
{
    if (n_rows <= 0) return cudaSuccess;
    if (n_expert <= 0 || n_expert > HC_CU_MOE_MAX_EXPERTS || x_div <= 0) return cudaErrorInvalidValue;
    hc_cu_launch l = hc_cu_moe_sort_geometry();
    moe_sort_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(ids, n_rows, n_expert, x_div, order,
                                                                                     sorted_ids, src_rows);
    return cudaGetLastError();
}

__global__ void scatter_rows_kernel(const float *src, const int32_t *order, size_t n, int width, float *dst)
{
    HC_CU_EW_LOOP(i, n) dst[(size_t)order[i / (size_t)width] * (size_t)width + i % (size_t)width] = src[i];
}

extern "C" cudaError_t hc_cu_scatter_rows(cudaStream_t s, const float *src, const int32_t *order, int n_rows, int width,
                                          float *dst)
{
    if (n_rows <= 0 || width <= 0) return cudaSuccess;
    size_t n = (size_t)n_rows * (size_t)width;
    hc_cu_launch l = hc_cu_elementwise_geometry(n, HC_CU_EW_MAX_BLOCKS);
    scatter_rows_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(src, order, n, width, dst);
    return cudaGetLastError();
}
