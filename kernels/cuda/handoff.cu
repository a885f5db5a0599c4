/* handoff.cu: the branches' hand-off without the host's driver calls: a flag set in page-locked host
 * memory once the work before it is done, and a wait (one thread a block) until the host sets its flag. */
#include "cuda_kernels.h"
#include "elementwise.cuh"
#include "handoff.cuh"

/* flag = seq after the writes before it (the copies the stream ran first) */
__global__ void set_flag_kernel(unsigned *flag, unsigned seq)
{
    __threadfence_system();
    *(volatile unsigned *)flag = seq;
}

__global__ void wait_flag_kernel(const unsigned *flag, unsigned seq, unsigned *err, unsigned long long patience_ns)
{
    hc_cu_wait_for_flag(flag, seq, err, patience_ns);
}

/* host_dst[i] = src[i] for i < n, written over the bus into page-locked memory, then flag = seq: one
 * block, each thread's stores made visible to the host before the barrier and the flag after it. */
__global__ void publish_kernel(float *host_dst, const float *src, size_t n, unsigned *flag, unsigned seq)
{
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) host_dst[i] = src[i];
    __threadfence_system();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence_system();
        *(volatile unsigned *)flag = seq;
    }
}

/* y[k][i] += host_src[end[k - 1] + i] (hc_cu_add_target), read over the bus from page-locked memory once
 * the flag reached seq (flag NULL: at once): each block's first thread waits, the block reads nothing
 * before it. The loads are volatile: the host rewrites host_src every step, and a line of an earlier step
 * must not be read. One output: merge_when's; several: a branch job's corrections in one launch. */
__global__ void wait_add_set_kernel(const hc_cu_add_targets set, const float *host_src, const unsigned *flag, unsigned seq,
                                    unsigned *err, unsigned long long patience_ns)
{
    if (flag) {
        if (threadIdx.x == 0) hc_cu_wait_for_flag(flag, seq, err, patience_ns);
        __syncthreads();
    }
    const volatile float *src = host_src;
    HC_CU_EW_LOOP(e, set.end[set.n - 1]) *hc_cu_add_target(set, e) += src[e];
}

extern "C" cudaError_t hc_cu_set_flag(cudaStream_t s, uint32_t *flag, uint32_t seq)
{
    set_flag_kernel<<<1, 1, 0, s>>>(flag, seq);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_wait_flag(cudaStream_t s, const uint32_t *flag, uint32_t seq, uint32_t *err, uint64_t patience_ns)
{
    wait_flag_kernel<<<1, 1, 0, s>>>(flag, seq, err, (unsigned long long)patience_ns);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_publish(cudaStream_t s, float *host_dst, const float *src, size_t n, uint32_t *flag, uint32_t seq)
{
    publish_kernel<<<1, HC_CU_PUBLISH_THREADS, 0, s>>>(host_dst, src, n, flag, seq);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_wait_add_set(cudaStream_t s, int n, float *const *y, const float *host_src, const size_t *len,
                                          const uint32_t *flag, uint32_t seq, uint32_t *err, uint64_t patience_ns)
{
    if (n < 1 || n > HC_CU_ADD_SET_MAX) return cudaErrorInvalidValue;
    hc_cu_add_targets set = hc_cu_add_targets_of(n, y, len);
    hc_cu_launch l = hc_cu_elementwise_geometry(set.end[n - 1], HC_CU_WAIT_ADD_MAX_BLOCKS);
    wait_add_set_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(set, host_src, flag, seq, err,
                                                                           (unsigned long long)patience_ns);
    return cudaGetLastError();
}
