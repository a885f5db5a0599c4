/* gemm_f16.cu: the activations of a batched matmul into f16 for the tensor cores: their max |x| (one
 * reduction), each element divided by the power of two hc_cu_f16_input_scale gives; the sums times it. */
#include "cuda_kernels.h"
#include "elementwise.cuh"
#include "gemm_f16.cuh"

/* consts[0] = max |x| as bits (non-negative floats order as their bits). A NaN is passed over
 * here (fmaxf); it stays NaN in the conversion and shows in the output, as in f32. */
__global__ void amax_kernel(const float *x, size_t n, unsigned *amax_bits)
{
    float m = 0.0f;
    HC_CU_EW_LOOP(i, n) m = fmaxf(m, fabsf(x[i]));
    for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    if ((threadIdx.x % HC_CU_WARP) == 0) atomicMax(amax_bits, __float_as_uint(m));
}

__global__ void to_f16_scaled_kernel(const float *x, size_t n, uint16_t *y, float *consts)
{
    float s = hc_cu_f16_input_scale(__uint_as_float(*(const unsigned *)consts)), inv = 1.0f / s;
    if (blockIdx.x == 0 && threadIdx.x == 0) consts[1] = s;
    HC_CU_EW_LOOP(i, n) y[i] = hc_cu_f32_to_f16(x[i] * inv);
}

__global__ void scale_by_kernel(float *y, size_t n, const float *consts)
{
    float s = consts[1];
    HC_CU_EW_LOOP(i, n) y[i] *= s;
}

extern "C" cudaError_t hc_cu_scale_by(cudaStream_t s, float *y, size_t n, const float *consts)
{
    if (n == 0) return cudaSuccess;
    hc_cu_launch l = hc_cu_elementwise_geometry(n, HC_CU_EW_MAX_BLOCKS);
    scale_by_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(y, n, consts);
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_to_f16_scaled(cudaStream_t s, const float *x, size_t n, void *y, float *consts)
{
    if (n == 0) return cudaSuccess;
    cudaError_t e = cudaMemsetAsync(consts, 0, sizeof(float), s);
    if (e != cudaSuccess) return e;
    hc_cu_launch l = hc_cu_elementwise_geometry(n, HC_CU_EW_MAX_BLOCKS);
    amax_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(x, n, (unsigned *)consts);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    to_f16_scaled_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(x, n, (uint16_t *)y, consts);
    return cudaGetLastError();
}
