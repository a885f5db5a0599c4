/* matmul.cu: the weight kernels: dequantizing rows to f32 or f16 (get_rows, and the n_tok > 1 matmul
 * before cuBLAS; block types a run of 32 a thread where aligned) and the dequant-GEMVs for one token
 * (block types by runs, several rows a warp; by elements, a row a warp, where rows are not in runs of
 * 32 or not aligned), also per routed row with its expert's weights, or over a set of matrices sharing
 * x in one launch; one instance per weight type. */
#include "cuda_kernels.h"
#include "dequant.cuh"
#include "gemv_set.cuh"

template <int DT, int F16>
__global__ void dequant_rows_kernel(const uint8_t *w, size_t row_bytes, int64_t width, const int32_t *ids, int64_t row0,
                                    void *out)
{
    const uint8_t *row = w + (size_t)hc_cu_dequant_src_row(ids, row0, blockIdx.x) * row_bytes;
    size_t base = (size_t)blockIdx.x * (size_t)width;
    for (int64_t k = threadIdx.x; k < width; k += blockDim.x) {
        float v = hc_cu_deq_elem(DT, row, k);
        if (F16) ((uint16_t *)out)[base + (size_t)k] = hc_cu_f32_to_f16(v);
        else ((float *)out)[base + (size_t)k] = v;
    }
}

/* dequant_rows by runs (hc_cu_dequant_runs_ok): a thread a run of 32 of the row of block blockIdx.x. */
template <int DT, int F16>
__global__ void dequant_runs_kernel(const uint8_t *w, size_t row_bytes, int64_t width, const int32_t *ids, int64_t row0,
                                    void *out)
{
    const uint8_t *row = w + (size_t)hc_cu_dequant_src_row(ids, row0, blockIdx.x) * row_bytes;
    uint8_t *dst = (uint8_t *)out + (size_t)blockIdx.x * (size_t)width * (F16 ? 2u : 4u);
    for (int64_t r = threadIdx.x; r < width / HC_CU_RUN; r += blockDim.x) hc_cu_dequant_run(DT, row, r, dst, F16);
}

/* The warp's sums of s[i] (i < R) into y[o + i] for the rows below out (lane 0 writes). */
static __device__ void warp_sums_store(int R, float s[HC_CU_GEMV_RUN_ROWS], int64_t o, int64_t out, float *y)
{
    HC_CU_UNROLL
    for (int i = 0; i < R; i++) {
        for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) s[i] += __shfl_down_sync(0xffffffffu, s[i], off);
        if (threadIdx.x == 0 && o + i < out) y[o + i] = s[i];
    }
}

/* The warp's rows of y = W x in block block_x of the grid: a warp per row of W (per ROWS rows for block
 * types by runs), each lane's part by runs (RUNS 1: hc_cu_gemv_runs_ok) or by elements, then the warp's
 * sums. */
template <int DT, int RUNS, int ROWS>
__device__ static __forceinline__ void gemv_body(const uint8_t *__restrict__ w, size_t row_bytes, int64_t in, int64_t out,
                                                 const float *__restrict__ x, float *y, unsigned block_x)
{
    const int R = hc_cu_gemv_warp_rows(DT, RUNS, ROWS);
    int64_t o = hc_cu_gemv_row(block_x, blockDim.y, threadIdx.y, R);
    if (o >= out) return; /* o is the same for the whole warp: the shuffles below stay complete */
    int lane = (int)threadIdx.x;
    float s[HC_CU_GEMV_RUN_ROWS];
    if (R > 1) {
        hc_cu_gemv_lane_runs_rows(DT, w, row_bytes, o, out, x, in, lane, s);
    } else {
        const uint8_t *row = w + (size_t)o * row_bytes;
        s[0] = RUNS ? hc_cu_gemv_lane_runs(DT, row, x, in, lane) : hc_cu_gemv_lane_partial(DT, row, x, in, lane);
    }
    warp_sums_store(R, s, o, out, y);
}

/* y = W x (gemv_body). One row of x per blockIdx.y: y and x of row blockIdx.y (x's row blockIdx.y /
 * x_div) and, with ids, the weights of expert ids[blockIdx.y] (slices of slice bytes). */
template <int DT, int RUNS, int ROWS>
__global__ void gemv_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t in, int64_t out,
                            const float *__restrict__ x, float *y, const int32_t *ids, size_t slice, int x_div)
{
    unsigned r = blockIdx.y;
    if (ids) w += (size_t)ids[r] * slice;
    x += (size_t)(r / (unsigned)x_div) * (size_t)in;
    y += (size_t)r * (size_t)out;
    gemv_body<DT, RUNS, ROWS>(w, row_bytes, in, out, x, y, blockIdx.x);
}

template <int DT, int RUNS, int ROWS>
__global__ void gemv_set_kernel(const hc_cu_set set, size_t row_bytes, int64_t in, const float *__restrict__ x)
{
    const uint8_t *w;
    float *y;
    int64_t out;
    unsigned b = hc_cu_set_pick(set, &w, &y, &out);
    gemv_body<DT, RUNS, ROWS>(w, row_bytes, in, out, x, y, b);
}

/* x's blocks of 32 quantized to int8 (hc_cu_q8x_block), a thread a block: n_blocks blocks, codes to q,
 * scales to ds. */
__global__ void quantize_q8_kernel(const float *__restrict__ x, int64_t n_blocks, uint8_t *q, float *ds)
{
    int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b < n_blocks) hc_cu_q8x_block(x + HC_CU_RUN * b, q + HC_CU_RUN * b, ds + 2 * b);
}

/* x's x_rows rows quantized to int8 into xq (hc_cu_q8x_bytes of them): the codes at *q, then the scales
 * at *ds. */
static void quantize_x(cudaStream_t s, const float *x, int64_t x_rows, int64_t in, void *xq, uint8_t **q, float **ds)
{
    const int64_t nb = x_rows * (in / HC_CU_RUN);
    *q = (uint8_t *)xq;
    *ds = (float *)(*q + (size_t)x_rows * (size_t)in);
    quantize_q8_kernel<<<hc_cu_div_up((size_t)nb, HC_CU_DEQ_THREADS), HC_CU_DEQ_THREADS, 0, s>>>(x, nb, *q, *ds);
}

/* gemv_body by runs of a block type with x quantized to int8 (hc_cu_gemv_lane_q8_rows): xq and xds
 * hold x quantized. */
template <int DT, int ROWS>
__device__ static __forceinline__ void gemv_q8_body(const uint8_t *__restrict__ w, size_t row_bytes, int64_t in, int64_t out,
                                                    const uint8_t *__restrict__ xq, const float *__restrict__ xds, float *y,
                                                    unsigned block_x)
{
    int64_t o = hc_cu_gemv_row(block_x, blockDim.y, threadIdx.y, ROWS);
    if (o >= out) return; /* the whole warp */
    float s[HC_CU_GEMV_RUN_ROWS];
    hc_cu_gemv_lane_q8_rows(DT, ROWS, w, row_bytes, o, out, xq, xds, in, (int)threadIdx.x, s);
    warp_sums_store(ROWS, s, o, out, y);
}

/* gemv_q8_body: xq and xds hold x's rows quantized, row blockIdx.y / x_div for y's row blockIdx.y. */
template <int DT, int ROWS>
__global__ void gemv_q8_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t in, int64_t out,
                               const uint8_t *__restrict__ xq, const float *__restrict__ xds, float *y, const int32_t *ids,
                               size_t slice, int x_div)
{
    unsigned r = blockIdx.y, xr = r / (unsigned)x_div;
    if (ids) w += (size_t)ids[r] * slice;
    xq += (size_t)xr * (size_t)in;
    xds += (size_t)xr * (size_t)(in / HC_CU_RUN) * 2;
    y += (size_t)r * (size_t)out;
    gemv_q8_body<DT, ROWS>(w, row_bytes, in, out, xq, xds, y, blockIdx.x);
}

template <int DT, int ROWS>
__global__ void gemv_q8_set_kernel(const hc_cu_set set, size_t row_bytes, int64_t in, const uint8_t *__restrict__ xq,
                                   const float *__restrict__ xds)
{
    const uint8_t *w;
    float *y;
    int64_t out;
    unsigned b = hc_cu_set_pick(set, &w, &y, &out);
    gemv_q8_body<DT, ROWS>(w, row_bytes, in, out, xq, xds, y, b);
}

/* Calls LAUNCH(type) for the block type t, or returns cudaErrorInvalidValue for another. */
#define HC_CU_SWITCH_BLOCK_TYPE(t, LAUNCH)                                                        \
    switch (t) {                                                                                  \
    case HC_Q4_0: LAUNCH(HC_Q4_0); break;                                                         \
    case HC_Q4_1: LAUNCH(HC_Q4_1); break;                                                         \
    case HC_Q5_0: LAUNCH(HC_Q5_0); break;                                                         \
    case HC_Q5_1: LAUNCH(HC_Q5_1); break;                                                         \
    case HC_Q8_0: LAUNCH(HC_Q8_0); break;                                                         \
    case HC_Q2_K: LAUNCH(HC_Q2_K); break;                                                         \
    case HC_Q3_K: LAUNCH(HC_Q3_K); break;                                                         \
    case HC_Q4_K: LAUNCH(HC_Q4_K); break;                                                         \
    case HC_Q5_K: LAUNCH(HC_Q5_K); break;                                                         \
    case HC_Q6_K: LAUNCH(HC_Q6_K); break;                                                         \
    default: return cudaErrorInvalidValue;                                                        \
    }

/* Calls LAUNCH(type) for the weight type t, or returns cudaErrorInvalidValue for another. */
#define HC_CU_SWITCH_TYPE(t, LAUNCH)                                                              \
    switch (t) {                                                                                  \
    case HC_F32: LAUNCH(HC_F32); break;                                                           \
    case HC_F16: LAUNCH(HC_F16); break;                                                           \
    case HC_BF16: LAUNCH(HC_BF16); break;                                                         \
    default: HC_CU_SWITCH_BLOCK_TYPE(t, LAUNCH)                                                   \
    }

extern "C" cudaError_t hc_cu_dequant_rows(cudaStream_t s, int dtype, const void *w, size_t row_bytes, int64_t width,
                                          const int32_t *ids, int64_t row0, int n_rows, void *out, int out_f16)
{
    if (n_rows <= 0 || width <= 0) return cudaSuccess;
    const uint8_t *wb = (const uint8_t *)w;
    const int runs = hc_cu_dequant_runs_ok(dtype, width, (uintptr_t)w, row_bytes, (uintptr_t)out);
    hc_cu_launch l = runs ? hc_cu_dequant_runs_geometry(n_rows, width) : hc_cu_dequant_rows_geometry(n_rows);
    dim3 g = hc_cu_dim3(l.grid), b = hc_cu_dim3(l.block);
    if (runs) { /* block types only */
#define LAUNCH(T)                                                                                  \
    do {                                                                                           \
        if (out_f16) dequant_runs_kernel<T, 1><<<g, b, 0, s>>>(wb, row_bytes, width, ids, row0, out); \
        else dequant_runs_kernel<T, 0><<<g, b, 0, s>>>(wb, row_bytes, width, ids, row0, out);     \
    } while (0)
        HC_CU_SWITCH_BLOCK_TYPE(dtype, LAUNCH)
#undef LAUNCH
        return cudaGetLastError();
    }
#define LAUNCH(T)                                                                                  \
    do {                                                                                           \
        if (out_f16) dequant_rows_kernel<T, 1><<<g, b, 0, s>>>(wb, row_bytes, width, ids, row0, out); \
        else dequant_rows_kernel<T, 0><<<g, b, 0, s>>>(wb, row_bytes, width, ids, row0, out);     \
    } while (0)
    HC_CU_SWITCH_TYPE(dtype, LAUNCH)
#undef LAUNCH
    return cudaGetLastError();
}

/* n_rows GEMVs in one launch (gridDim.y): row r of y from row r / x_div of x, with the weights at w,
 * or with ids those of slice ids[r] (w + ids[r] slice); warp_rows and xq as hc_cu_gemv's. */
static cudaError_t gemv_rows(cudaStream_t s, int dtype, const void *w, size_t row_bytes, int64_t in, int64_t out,
                             const float *x, float *y, const int32_t *ids, size_t slice, int x_div, int n_rows, int warp_rows,
                             void *xq)
{
    if (out <= 0 || n_rows <= 0) return cudaSuccess;
    if (x_div <= 0 || (unsigned)n_rows > HC_CU_MAX_GRID_YZ || (warp_rows != 1 && warp_rows != HC_CU_GEMV_RUN_ROWS))
        return cudaErrorInvalidValue;
    const uint8_t *wb = (const uint8_t *)w;
    /* every slice and every row of x must meet the runs kernel's alignment, as the first does */
    int runs = hc_cu_gemv_runs_ok(dtype, in, (uintptr_t)w | (ids ? slice : 0), row_bytes, (uintptr_t)x);
    const int R = hc_cu_gemv_warp_rows(dtype, runs, warp_rows);
    hc_cu_launch l = hc_cu_gemv_geometry(out, R);
    l.grid.y = (unsigned)n_rows;
    dim3 g = hc_cu_dim3(l.grid), b = hc_cu_dim3(l.block);
    const size_t sh = l.shared_bytes;
    if (xq && runs && hc_cu_block_elems(dtype) > 1 && (uintptr_t)xq % 16 == 0) { /* x to int8, then the integer GEMV */
        uint8_t *q;
        float *ds;
        quantize_x(s, x, (n_rows - 1) / x_div + 1, in, xq, &q, &ds);
#define LAUNCH(T)                                                                                  \
    do {                                                                                           \
        if (R == 1) gemv_q8_kernel<T, 1><<<g, b, sh, s>>>(wb, row_bytes, in, out, q, ds, y, ids, slice, x_div); \
        else gemv_q8_kernel<T, HC_CU_GEMV_RUN_ROWS><<<g, b, sh, s>>>(wb, row_bytes, in, out, q, ds, y, ids, slice, x_div); \
    } while (0)
        HC_CU_SWITCH_BLOCK_TYPE(dtype, LAUNCH)
#undef LAUNCH
        return cudaGetLastError();
    }
    if (R > 1) { /* block types by runs only */
#define LAUNCH(T) gemv_kernel<T, 1, HC_CU_GEMV_RUN_ROWS><<<g, b, sh, s>>>(wb, row_bytes, in, out, x, y, ids, slice, x_div)
        HC_CU_SWITCH_BLOCK_TYPE(dtype, LAUNCH)
#undef LAUNCH
        return cudaGetLastError();
    }
#define LAUNCH(T)                                                                                  \
    do {                                                                                           \
        if (!runs) gemv_kernel<T, 0, 1><<<g, b, sh, s>>>(wb, row_bytes, in, out, x, y, ids, slice, x_div); \
        else gemv_kernel<T, 1, 1><<<g, b, sh, s>>>(wb, row_bytes, in, out, x, y, ids, slice, x_div); \
    } while (0)
    HC_CU_SWITCH_TYPE(dtype, LAUNCH)
#undef LAUNCH
    return cudaGetLastError();
}

static_assert(HC_CU_GEMV_SET_MAX == HC_CU_SET_MAX, "cuda_kernels.h's set holds what the kernel's does");

extern "C" cudaError_t hc_cu_gemv_set(cudaStream_t s, int dtype, int n, const void *const *w, size_t row_bytes, int64_t in,
                                      const int64_t *out, const float *x, float *const *y, int warp_rows, void *xq)
{
    if (n < 1 || n > HC_CU_GEMV_SET_MAX || (warp_rows != 1 && warp_rows != HC_CU_GEMV_RUN_ROWS)) return cudaErrorInvalidValue;
    uintptr_t wa = 0;
    int64_t warps = 0;
    for (int m = 0; m < n; m++) {
        if (out[m] <= 0) return cudaErrorInvalidValue;
        wa |= (uintptr_t)w[m];
    }
    /* every matrix must meet the runs kernel's alignment; the set's kernels are those of the usual case
       (by runs, a block type's 4 rows a warp), the rest a launch a matrix (fewer kernels to build) */
    const int runs = hc_cu_gemv_runs_ok(dtype, in, wa, row_bytes, (uintptr_t)x);
    const int R = hc_cu_gemv_warp_rows(dtype, runs, warp_rows), block = hc_cu_block_elems(dtype) > 1;
    if (!runs || (block && R != HC_CU_GEMV_RUN_ROWS)) {
        for (int m = 0; m < n; m++) {
            cudaError_t e = hc_cu_gemv(s, dtype, w[m], row_bytes, in, out[m], x, y[m], warp_rows, xq);
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    }
    for (int m = 0; m < n; m++) warps += (out[m] + R - 1) / R;
    /* one block shape for the set (a row's sum does not depend on it), the matrices' blocks one after another */
    hc_cu_launch l = hc_cu_gemv_geometry(warps * R, R);
    const unsigned wpb = l.block.y;
    hc_cu_set set = {};
    for (int m = 0; m < n; m++)
        hc_cu_set_add(&set, w[m], y[m], out[m], (unsigned)hc_cu_div_up((size_t)((out[m] + R - 1) / R), wpb));
    l.grid.x = hc_cu_set_blocks(&set);
    dim3 g = hc_cu_dim3(l.grid), b = hc_cu_dim3(l.block);
    if (xq && block && (uintptr_t)xq % 16 == 0) { /* x to int8 once, then the integer GEMVs */
        uint8_t *q;
        float *ds;
        quantize_x(s, x, 1, in, xq, &q, &ds);
#define LAUNCH(T) gemv_q8_set_kernel<T, HC_CU_GEMV_RUN_ROWS><<<g, b, 0, s>>>(set, row_bytes, in, q, ds)
        HC_CU_SWITCH_BLOCK_TYPE(dtype, LAUNCH)
#undef LAUNCH
        return cudaGetLastError();
    }
    switch (dtype) { /* the plain types a row a warp, block types by runs */
    case HC_F32: gemv_set_kernel<HC_F32, 1, 1><<<g, b, 0, s>>>(set, row_bytes, in, x); break;
    case HC_F16: gemv_set_kernel<HC_F16, 1, 1><<<g, b, 0, s>>>(set, row_bytes, in, x); break;
    case HC_BF16: gemv_set_kernel<HC_BF16, 1, 1><<<g, b, 0, s>>>(set, row_bytes, in, x); break;
    default:
#define LAUNCH(T) gemv_set_kernel<T, 1, HC_CU_GEMV_RUN_ROWS><<<g, b, 0, s>>>(set, row_bytes, in, x)
        HC_CU_SWITCH_BLOCK_TYPE(dtype, LAUNCH)
#undef LAUNCH
    }
    return cudaGetLastError();
}

extern "C" cudaError_t hc_cu_gemv(cudaStream_t s, int dtype, const void *w, size_t row_bytes, int64_t in, int64_t out,
                                  const float *x, float *y, int warp_rows, void *xq)
{
    return gemv_rows(s, dtype, w, row_bytes, in, out, x, y, NULL, 0, 1, 1, warp_rows, xq);
}

extern "C" cudaError_t hc_cu_gemv_id(cudaStream_t s, int dtype, const void *w, size_t slice, const int32_t *ids, size_t row_bytes,
                                     int64_t in, int64_t out, const float *x, int x_div, float *y, int n_rows, int warp_rows,
                                     void *xq)
{
    if (!ids) return cudaErrorInvalidValue;
    return gemv_rows(s, dtype, w, row_bytes, in, out, x, y, ids, slice, x_div, n_rows, warp_rows, xq);
}
