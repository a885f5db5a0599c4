/* selftest.cu: kernels for testing the emulator itself (tests/cuda_emu): a shared-memory reduction that
 * needs its barriers, the misuses a GPU would not forgive, which the emulator must report, and a race
 * that its orders show. */
#include <cuda_runtime_api.h>
#include <stdint.h>

#include "cuda_emu_stats.h"

/* out = the sum of 1, 2, ... n (n <= 256 threads): correct only when __syncthreads holds every thread */
__global__ void block_sum_kernel(float *out)
{
    __shared__ float v[256];
    unsigned t = threadIdx.x;
    v[t] = (float)(t + 1);
    __syncthreads();
    for (unsigned s = 128; s > 0; s >>= 1) {
        if (t < s && t + s < blockDim.x) v[t] += v[t + s];
        __syncthreads();
    }
    if (t == 0) *out = v[0];
}

/* half of the warp leaves before a full-mask shuffle */
__global__ void half_warp_shuffle_kernel(float *out)
{
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 1);
}

/* half of warp 1 shuffles while the rest of the block waits at a barrier: neither completes */
__global__ void divergent_barrier_kernel(float *out)
{
    if (threadIdx.x >= 48) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    else __syncthreads();
}

__global__ void nothing_kernel(float *out) { out[0] = 1.0f; }

/* a race: each thread writes its index and reads its right neighbour's without a barrier between, so
   what it reads depends on the order the threads run in (the emulator's HC_EMU_ORDER) */
__global__ void missing_barrier_kernel(float *out)
{
    __shared__ float v[64];
    unsigned t = threadIdx.x;
    v[t] = (float)t;
    out[t] = v[(t + 1) % blockDim.x];
}

/* out[b] = what block b finds in its static shared memory before writing it (garbage: NaN) */
__global__ void fresh_shared_kernel(float *out)
{
    __shared__ float v[1];
    if (threadIdx.x) return;
    out[blockIdx.x] = v[0];
    v[0] = (float)blockIdx.x;
}

/* each block appends its index to order[] (count: the blocks run so far) */
__global__ void block_order_kernel(unsigned *order, unsigned *count)
{
    if (threadIdx.x == 0) order[atomicAdd(count, 1u)] = blockIdx.x;
}

extern "C" int hc_emu_selftest_block_sum(int n_threads, float *out)
{
    block_sum_kernel<<<1, n_threads, 0, 0>>>(out);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_half_warp_shuffle(void)
{
    float out[32];
    half_warp_shuffle_kernel<<<1, 32, 0, 0>>>(out);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_divergent_barrier(void)
{
    float out[64];
    divergent_barrier_kernel<<<1, 64, 0, 0>>>(out);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_oversized_block(void)
{
    float out[1];
    nothing_kernel<<<1, 2048, 0, 0>>>(out);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_missing_barrier(int n_threads, float *out)
{
    missing_barrier_kernel<<<1, n_threads, 0, 0>>>(out);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_block_order(int n_blocks, unsigned *order)
{
    unsigned count = 0;
    block_order_kernel<<<n_blocks, 32, 0, 0>>>(order, &count);
    return (int)cudaGetLastError();
}

extern "C" int hc_emu_selftest_fresh_shared(int n_blocks, float *out)
{
    fresh_shared_kernel<<<n_blocks, 32, 0, 0>>>(out);
    return (int)cudaGetLastError();
}
