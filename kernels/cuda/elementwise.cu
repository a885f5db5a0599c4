/* elementwise.cu: the element-wise kernels of a decoder layer (SwiGLU, GeGLU, add, into several arrays at once,
 * add_bias, scale, gated rows, f32 to f16 for the KV cache), grid-stride loops over flat arrays (elementwise.cuh). */
#include "cuda_kernels.h"
#include "elementwise.cuh"
#include "handoff.cuh"


__global__ void swiglu_kernel(const float *gate, const float *up, float *out, size_t n)
{
    HC_CU_EW_LOOP(i, n) out[i] = hc_cu_silu_mul(gate[i], up[i]);
}

/* swiglu_kernel with gate's and up's corrections (hc_cu_merge) added first, and out published (hc_cu_publish_to) */
__global__ void swiglu_handoff_kernel(const float *gate, const float *up, float *out, size_t n, const hc_cu_merge m,
                                      const hc_cu_publish_to p)
{
    hc_cu_merge_wait(m);
    HC_CU_EW_LOOP(i, n) {
        float g = m.src[0] ? hc_cu_merged(m, 0, i) : gate[i], u = m.src[1] ? hc_cu_merged(m, 1, i) : up[i];
        float v = hc_cu_silu_mul(g, u);
        out[i] = v;
        if (p.flag) p.host_dst[i] = v;
    }
    hc_cu_publish_end(p);
}

__global__ void geglu_kernel(const float *gate, const float *up, float *out, size_t n)
{
    HC_CU_EW_LOOP(i, n) out[i] = hc_cu_gelu_mul(gate[i], up[i]);
}

__global__ void add_kernel(float *y, const float *x, size_t n)
{
    HC_CU_EW_LOOP(i, n) y[i] += x[i];
}

/* y[k][i] += x[end[k - 1] + i] (hc_cu_add_target) */
__global__ void add_set_kernel(const hc_cu_add_targets set, const float *x)
{
    HC_CU_EW_LOOP(e, set.end[set.n - 1]) *hc_cu_add_target(set, e) += x[e];
}

__global__ void add_bias_kernel(float *y, const float *b, size_t n, int width)
{
    HC_CU_EW_LOOP(i, n) y[i] += b[hc_cu_bias_index(i, width)];
}

__global__ void gate_rows_kernel(float *y, const float *g, size_t n, int width)
{
    HC_CU_EW_LOOP(i, n) y[i] *= hc_cu_sigmoid(g[i / (size_t)width]);
}

__global__ void scale_kernel(float *x, size_t n, float f)
{
    HC_CU_EW_LOOP(i, n) x[i] *= f;
}

#define HC_CU_EW_LAUNCH(n, kernel, ...)                                                            \
    do {                                                                                           \
        if ((n) == 0) return cudaSuccess;                                                          \
        hc_cu_launch l = hc_cu_elementwise_geometry((n), HC_CU_EW_MAX_BLOCKS);                     \
        kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), l.shared_bytes, s>>>(__VA_ARGS__);       \
        return cudaGetLastError();                                                                 \
    } while (0)

extern "C" cudaError_t hc_cu_swiglu(cudaStream_t s, const float *gate, const float *up, float *out, size_t n,
                                    const hc_cu_merge *m, const hc_cu_publish_to *p)
{
    if ((m || p) && n) { /* with m its blocks poll the flag as wait_add_set's do: no more of them */
        hc_cu_launch l = hc_cu_elementwise_geometry(n, m ? HC_CU_WAIT_ADD_MAX_BLOCKS : HC_CU_EW_MAX_BLOCKS);
        swiglu_handoff_kernel<<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(gate, up, out, n, hc_cu_or_none(m),
                                                                               hc_cu_or_none(p));
        return cudaGetLastError();
    }
    HC_CU_EW_LAUNCH(n, swiglu_kernel, gate, up, out, n);
}

extern "C" cudaError_t hc_cu_geglu(cudaStream_t s, const float *gate, const float *up, float *out, size_t n)
{
    HC_CU_EW_LAUNCH(n, geglu_kernel, gate, up, out, n);
}

extern "C" cudaError_t hc_cu_add(cudaStream_t s, float *y, const float *x, size_t n)
{
    HC_CU_EW_LAUNCH(n, add_kernel, y, x, n);
}

extern "C" cudaError_t hc_cu_add_set(cudaStream_t s, int n, float *const *y, const float *x, const size_t *len)
{
    if (n < 1 || n > HC_CU_ADD_SET_MAX) return cudaErrorInvalidValue;
    hc_cu_add_targets set = hc_cu_add_targets_of(n, y, len);
    HC_CU_EW_LAUNCH(set.end[n - 1], add_set_kernel, set, x);
}

extern "C" cudaError_t hc_cu_add_bias(cudaStream_t s, float *y, const float *b, int n_tok, int width)
{
    if (width <= 0) return cudaSuccess;
    size_t n = (size_t)n_tok * (size_t)width;
    HC_CU_EW_LAUNCH(n, add_bias_kernel, y, b, n, width);
}

extern "C" cudaError_t hc_cu_gate_rows(cudaStream_t s, float *y, const float *g, int n_tok, int width)
{
    if (width <= 0 || n_tok <= 0) return cudaSuccess;
    size_t n = (size_t)n_tok * (size_t)width;
    HC_CU_EW_LAUNCH(n, gate_rows_kernel, y, g, n, width);
}

__global__ void to_f16_kernel(const float *x, uint16_t *y, size_t n)
{
    HC_CU_EW_LOOP(i, n) y[i] = (uint16_t)hc_cu_f32_to_f16(x[i]);
}

extern "C" cudaError_t hc_cu_to_f16(cudaStream_t s, const float *x, void *y, size_t n)
{
    HC_CU_EW_LAUNCH(n, to_f16_kernel, x, (uint16_t *)y, n);
}

extern "C" cudaError_t hc_cu_scale(cudaStream_t s, float *x, size_t n, float f)
{
    HC_CU_EW_LAUNCH(n, scale_kernel, x, n, f);
}
