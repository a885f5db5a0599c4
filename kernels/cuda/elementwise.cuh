/* elementwise.cuh: the element-wise kernels' math (SwiGLU, GeGLU, add, bias, scale) and their grid-stride
 * geometry: blocks of HC_CU_EW_THREADS, at most a capped number of blocks, each thread striding. */
#ifndef HC_CUDA_ELEMENTWISE_CUH
#define HC_CUDA_ELEMENTWISE_CUH

#include "cuda_common.cuh"

#define HC_CU_EW_THREADS 256
#define HC_CU_EW_MAX_BLOCKS 4096u

static inline HC_CU_HD hc_cu_launch hc_cu_elementwise_geometry(size_t n, unsigned max_blocks)
{
    unsigned blocks = hc_cu_div_up(n, HC_CU_EW_THREADS);
    if (blocks > max_blocks) blocks = max_blocks;
    if (blocks == 0) blocks = 1;
    return hc_cu_launch_1d(blocks, HC_CU_EW_THREADS, 0);
}

/* First index of thread (block, tid) and the stride between its indices. */
static inline HC_CU_HD size_t hc_cu_ew_first(unsigned block, unsigned tid) { return (size_t)block * HC_CU_EW_THREADS + tid; }
static inline HC_CU_HD size_t hc_cu_ew_stride(unsigned grid) { return (size_t)grid * HC_CU_EW_THREADS; }

/* A kernel's grid-stride loop over i < n (in the .cu files, where blockIdx and the rest exist). */
#define HC_CU_EW_LOOP(i, n) for (size_t i = hc_cu_ew_first(blockIdx.x, threadIdx.x); i < (n); i += hc_cu_ew_stride(gridDim.x))

static inline HC_CU_HD float hc_cu_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* gemma's GeGLU: gelu(g) u with GELU's tanh form, as kernels/cpu/geglu.c's reference writes it */
static inline HC_CU_HD float hc_cu_gelu_mul(float g, float u)
{
    return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g))) * u;
}

static inline HC_CU_HD float hc_cu_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Element e of [n_tok][width] takes bias element e % width (and gate e / width: gate_rows). */
static inline HC_CU_HD size_t hc_cu_bias_index(size_t e, int width) { return e % (size_t)width; }

#ifdef __cplusplus /* the .cu files (nvcc, or g++ on the emulator) */
#include "cuda_kernels.h" /* HC_CU_ADD_SET_MAX */

/* add_set's outputs, a kernel parameter: y[k] takes the elements from end[k - 1] (0 for k = 0) below end[k]. */
typedef struct hc_cu_add_targets {
    float *y[HC_CU_ADD_SET_MAX];
    size_t end[HC_CU_ADD_SET_MAX];
    int n;
} hc_cu_add_targets;

static inline hc_cu_add_targets hc_cu_add_targets_of(int n, float *const *y, const size_t *len)
{
    hc_cu_add_targets t = {};
    size_t total = 0;
    for (int k = 0; k < n; k++) t.y[k] = y[k], t.end[k] = total += len[k];
    t.n = n;
    return t;
}

/* The output element e of the concatenation goes to: &y[k][e - end[k - 1]] (constant indices: the
 * targets stay in the parameter bank). */
static __device__ inline float *hc_cu_add_target(const hc_cu_add_targets &t, size_t e)
{
    float *y = t.y[0];
    size_t o = 0;
    HC_CU_UNROLL
    for (int k = 1; k < HC_CU_ADD_SET_MAX; k++)
        if (k < t.n && e >= t.end[k - 1]) y = t.y[k], o = t.end[k - 1];
    return y + (e - o);
}
#endif

#endif
