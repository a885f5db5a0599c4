/* qrtn_cuda.cu: the CUDA kernels of the rtn/gptq packed format: the fused dequant-GEMV for 1..8 tokens
 * (decode; wide with x in f32 or in int8, plain beside them), also per routed row with its expert's
 * weights or over a set of matrices sharing x, and rows dequantized to f32 or f16 (embeddings, prefill
 * tiles); math in qrtn_cuda.cuh. */
#include <cuda_runtime_api.h>

#include "gemv_set.cuh"
#include "qrtn_cuda.cuh"
#include "qrtn_cuda_api.h"

/* With ids (NT 1), row blockIdx.y of x (its row blockIdx.y / x_div) times the weights of expert
 * ids[blockIdx.y] (w + ids[r] slice) into row blockIdx.y of y: the routed experts of a MoE layer. */
#define ROUTE(w, x, y)                                                                                             \
    if (ids) {                                                                                                     \
        unsigned r_ = blockIdx.y;                                                                                  \
        w += (size_t)ids[r_] * slice;                                                                              \
        x += (size_t)(r_ / (unsigned)x_div) * (size_t)cols;                                                        \
        y += (size_t)r_ * (size_t)rows;                                                                            \
    }

/* The warp's N sums (each lane's share in acc) by a shuffle tree; lane 0 leaves them in its warp's
 * slots of part, and the block meets at a barrier. */
template <int N>
__device__ static void warp_sums(float *acc, float *part, int lane)
{
#pragma unroll
    for (int j = 0; j < N; j++)
        for (int off = HC_CU_WARP / 2; off > 0; off >>= 1) acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], off);
    int warp = (int)threadIdx.x / HC_CU_WARP;
    if (lane == 0)
#pragma unroll
        for (int j = 0; j < N; j++) part[warp * HC_QRTN_CU_MAX_TOK + j] = acc[j];
    __syncthreads();
}

/* The plain GEMV (hc_qrtn_cu_lane_dot): a warp reads a unit a step, lane p its byte p. */
template <int BITS, int NT>
__global__ void __launch_bounds__(HC_QRTN_CU_THREADS) qrtn_gemv_kernel(const uint8_t *__restrict__ w, int group, int64_t cols,
                                                                         int64_t rows, const float *__restrict__ x,
                                                                         float *__restrict__ y, const int32_t *ids, size_t slice,
                                                                         int x_div)
{
    extern __shared__ float part[]; /* [warp][HC_QRTN_CU_MAX_TOK] */
    ROUTE(w, x, y)
    int64_t row;
    int wi, wpr, lane;
    hc_qrtn_cu_gemv_thread(rows, cols, blockIdx.x, threadIdx.x, &row, &wi, &wpr, &lane);
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    if (row < rows)
        hc_qrtn_cu_lane_dot(BITS, group, cols, w + (size_t)row * hc_qrtn_cu_row_bytes(BITS, group, cols), x, NT, 0, wi, wpr,
                            lane, acc);
    warp_sums<NT>(acc, part, lane);
    int warp = (int)threadIdx.x / HC_CU_WARP;
    if (wi == 0 && lane < NT && row < rows) {
        float s = 0.0f;
        for (int k = 0; k < wpr; k++) s += part[(warp + k) * HC_QRTN_CU_MAX_TOK + lane];
        y[(size_t)lane * (size_t)rows + (size_t)row] = s;
    }
}

/* x's NT rows (16-byte aligned) quantized into shared memory, codes to sq and scales to sd, by the
 * block's threads, 2 a block of 32 (hc_qrtn_cu_q8_*), the block meeting at a barrier after. A warp goes
 * round whole (its lanes past the end idle through the shuffle), so the shuffle stays complete. */
template <int NT>
__device__ static void quantize_x(const float *__restrict__ x, int64_t cols, uint8_t *sq, float *sd)
{
    constexpr int P = HC_QRTN_CU_Q8_PER_THREAD;
    const int n = NT * (int)(cols / P), lane = (int)threadIdx.x % HC_CU_WARP;
    for (int q0 = (int)threadIdx.x - lane; q0 < n; q0 += (int)blockDim.x) {
        const int q = q0 + lane; /* n is even: a block's 2 threads are both in or both out */
        float v[P];
#pragma unroll
        for (int i = 0; i < P; i += 4) {
            if (q < n) hc_cu_ld_f4(x + (size_t)P * (size_t)q + i, v + i);
            else v[i] = v[i + 1] = v[i + 2] = v[i + 3] = 0.0f;
        }
        float a = hc_qrtn_cu_q8_amax16(v), id;
        a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, 1));
        const float d = hc_qrtn_cu_q8_scale(a, &id);
        if (q < n) {
            uint32_t c[4];
#pragma unroll
            for (int i = 0; i < 4; i++) c[i] = hc_qrtn_cu_q8_pack4(v + 4 * i, id);
            hc_cu_st16(sq + (size_t)P * (size_t)q, c);
            if (!(lane & 1)) sd[q / 2] = d;
        }
    }
    __syncthreads();
}

/* The wide GEMV's work in block `block` of a matrix's grid (hc_qrtn_cu_wide_dot): a warp's R rows,
 * four units a step, by words; x in f32 or, with Q8, the block's tokens of x quantized into shared
 * memory (after the partial sums) first. */
template <int BITS, int NT, int Q8>
__device__ static __forceinline__ void wide_body(const uint8_t *__restrict__ w, int group, int64_t cols, int64_t rows,
                                                 const float *__restrict__ x, float *__restrict__ y, unsigned block)
{
    constexpr int R = HC_QRTN_CU_MAX_TOK / NT > HC_QRTN_CU_WIDE_MAX_ROWS ? HC_QRTN_CU_WIDE_MAX_ROWS : HC_QRTN_CU_MAX_TOK / NT;
    extern __shared__ float part[]; /* [warp][R * NT <= HC_QRTN_CU_MAX_TOK], then (Q8) x's codes and scales */
    uint8_t *sq = (uint8_t *)(part + HC_QRTN_CU_WARPS * HC_QRTN_CU_MAX_TOK);
    float *sd = (float *)(sq + (size_t)NT * (size_t)cols);
    if (Q8) quantize_x<NT>(x, cols, sq, sd);
    int64_t row0;
    int wi, wpr, lane;
    hc_qrtn_cu_wide_thread(rows, cols, R, block, threadIdx.x, &row0, &wi, &wpr, &lane);
    float acc[R * NT];
#pragma unroll
    for (int j = 0; j < R * NT; j++) acc[j] = 0.0f;
    const size_t rb = hc_qrtn_cu_row_bytes(BITS, group, cols);
    if (row0 < rows) hc_qrtn_cu_wide_dot(BITS, group, cols, w, rb, row0, rows, R, x, Q8, sq, sd, NT, wi, wpr, lane, acc);
    warp_sums<R * NT>(acc, part, lane);
    int warp = (int)threadIdx.x / HC_CU_WARP;
    int64_t row = row0 + lane / NT;
    if (wi == 0 && lane < R * NT && row < rows) {
        float s = 0.0f;
        for (int k = 0; k < wpr; k++) s += part[(warp + k) * HC_QRTN_CU_MAX_TOK + lane];
        y[(size_t)(lane % NT) * (size_t)rows + (size_t)row] = s;
    }
}

/* The wide GEMV of NT tokens (with ids the row blockIdx.y / x_div of x, as ROUTE takes it). */
template <int BITS, int NT, int Q8>
__global__ void __launch_bounds__(HC_QRTN_CU_THREADS) qrtn_gemv_wide_kernel(const uint8_t *__restrict__ w, int group,
                                                                              int64_t cols, int64_t rows,
                                                                              const float *__restrict__ x, float *__restrict__ y,
                                                                              const int32_t *ids, size_t slice, int x_div)
{
    ROUTE(w, x, y)
    wide_body<BITS, NT, Q8>(w, group, cols, rows, x, y, blockIdx.x);
}

/* A set of matrices of one format sharing x (gemv_set.cuh), one token, each block as its own launch of
 * the wide kernel would run it. */
template <int BITS, int Q8>
__global__ void __launch_bounds__(HC_QRTN_CU_THREADS) qrtn_gemv_set_kernel(const hc_cu_set set, int group, int64_t cols,
                                                                             const float *__restrict__ x)
{
    const uint8_t *w;
    float *y;
    int64_t rows;
    unsigned b = hc_cu_set_pick(set, &w, &y, &rows);
    wide_body<BITS, 1, Q8>(w, group, cols, rows, x, y, b);
}

template <int BITS, int F16>
__global__ void qrtn_dequant_kernel(const uint8_t *__restrict__ w, int group, int64_t cols, const int32_t *ids, int64_t row0,
                                    void *out)
{
    int64_t r = ids ? (int64_t)ids[blockIdx.x] : row0 + (int64_t)blockIdx.x;
    const uint8_t *row = w + (size_t)r * hc_qrtn_cu_row_bytes(BITS, group, cols);
    size_t base = (size_t)blockIdx.x * (size_t)cols;
    const int64_t n128 = cols / 128;
    for (int64_t j = threadIdx.x; j < 8 * n128; j += blockDim.x) {
        float v[16];
        hc_qrtn_cu_dequant_slot(BITS, group, cols, row, j, v);
        size_t c0 = base + (size_t)(128 * (j >> 3) + 4 * (j & 7));
#pragma unroll
        for (int e = 0; e < 16; e++) {
            size_t c = c0 + (size_t)(32 * (e >> 2) + (e & 3));
            if (F16) ((uint16_t *)out)[c] = hc_cu_f32_to_f16(v[e]);
            else ((float *)out)[c] = v[e];
        }
    }
    for (int64_t c = 128 * n128 + threadIdx.x; c < cols; c += blockDim.x) {
        float v = hc_qrtn_cu_elem(BITS, group, cols, row, c);
        if (F16) ((uint16_t *)out)[base + (size_t)c] = hc_cu_f32_to_f16(v);
        else ((float *)out)[base + (size_t)c] = v;
    }
}

static bool valid(int bits, int group, int64_t cols)
{
    return (bits == 2 || bits == 3 || bits == 4 || bits == 8) && (group == 32 || group == 64 || group == 128) && cols > 0 &&
           cols % 32 == 0;
}

/* The GEMV an entry point asks for */
enum gemv_kind { GEMV_WIDE, GEMV_PLAIN, GEMV_Q8 };

/* One GEMV launch of NT tokens (with ids: NT 1, a row of the grid's y per routed row): the wide kernel
 * with x in f32 or (GEMV_Q8) in int8, or the plain one (GEMV_PLAIN, or x not 16-byte aligned); x in
 * int8 only while its codes fit the shared memory (hc_qrtn_cu_wide_q8_ok), else in f32. */
template <int BITS, int NT>
static void launch_gemv(cudaStream_t s, gemv_kind kind, int group, const uint8_t *w, int64_t cols, int64_t rows,
                        const float *x, float *y, const int32_t *ids, size_t slice, int x_div, unsigned n_rows)
{
    const int wide = kind != GEMV_PLAIN && hc_qrtn_cu_wide_ok(cols, (uintptr_t)x);
    const int q8 = kind == GEMV_Q8 && wide && hc_qrtn_cu_wide_q8_ok(cols, NT, (uintptr_t)x);
    hc_cu_launch l = wide ? hc_qrtn_cu_wide_geometry(rows, cols, NT) : hc_qrtn_cu_gemv_geometry(rows, cols);
    dim3 g = hc_cu_dim3(l.grid), b = hc_cu_dim3(l.block);
    g.y = n_rows;
    const size_t sh = l.shared_bytes + (q8 ? hc_qrtn_cu_q8_shared(cols, NT) : 0);
    if (q8) qrtn_gemv_wide_kernel<BITS, NT, 1><<<g, b, sh, s>>>(w, group, cols, rows, x, y, ids, slice, x_div);
    else if (wide) qrtn_gemv_wide_kernel<BITS, NT, 0><<<g, b, sh, s>>>(w, group, cols, rows, x, y, ids, slice, x_div);
    else qrtn_gemv_kernel<BITS, NT><<<g, b, sh, s>>>(w, group, cols, rows, x, y, ids, slice, x_div);
}

template <int BITS>
static cudaError_t gemv_bits(cudaStream_t s, gemv_kind kind, int group, const uint8_t *w, int64_t cols, int64_t rows,
                             const float *x, int n_tok, float *y)
{
    switch (n_tok) {
#define CASE(N)                                                                                                    \
    case N: launch_gemv<BITS, N>(s, kind, group, w, cols, rows, x, y, nullptr, 0, 1, 1); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

static int gemv_any(gemv_kind kind, int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows,
                    const float *x, int n_tok, float *y)
{
    if (!valid(bits, group, cols) || rows < 0 || n_tok < 1 || n_tok > HC_QRTN_CU_MAX_TOK) return (int)cudaErrorInvalidValue;
    if (rows == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const uint8_t *wb = (const uint8_t *)w;
    switch (bits) {
    case 2: return (int)gemv_bits<2>(s, kind, group, wb, cols, rows, x, n_tok, y);
    case 3: return (int)gemv_bits<3>(s, kind, group, wb, cols, rows, x, n_tok, y);
    case 4: return (int)gemv_bits<4>(s, kind, group, wb, cols, rows, x, n_tok, y);
    default: return (int)gemv_bits<8>(s, kind, group, wb, cols, rows, x, n_tok, y);
    }
}

static int gemv_id_any(gemv_kind kind, int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids,
                       int64_t cols, int64_t rows, const float *x, int x_div, int n_rows, float *y)
{
    if (!valid(bits, group, cols) || rows < 0 || !ids || x_div < 1 || n_rows < 0 || n_rows > 65535) return (int)cudaErrorInvalidValue;
    if (rows == 0 || n_rows == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const uint8_t *wb = (const uint8_t *)w;
    switch (bits) {
    case 2: launch_gemv<2, 1>(s, kind, group, wb, cols, rows, x, y, ids, slice, x_div, (unsigned)n_rows); break;
    case 3: launch_gemv<3, 1>(s, kind, group, wb, cols, rows, x, y, ids, slice, x_div, (unsigned)n_rows); break;
    case 4: launch_gemv<4, 1>(s, kind, group, wb, cols, rows, x, y, ids, slice, x_div, (unsigned)n_rows); break;
    default: launch_gemv<8, 1>(s, kind, group, wb, cols, rows, x, y, ids, slice, x_div, (unsigned)n_rows);
    }
    return (int)cudaGetLastError();
}

#define GEMV_ENTRY(name, kind)                                                                                     \
    static int name(int bits, int group, void *stream, const void *w, int64_t cols, int64_t rows, const float *x,  \
                    int n_tok, float *y)                                                                           \
    {                                                                                                              \
        return gemv_any(kind, bits, group, stream, w, cols, rows, x, n_tok, y);                                    \
    }
#define GEMV_ID_ENTRY(name, kind)                                                                                  \
    static int name(int bits, int group, void *stream, const void *w, size_t slice, const int32_t *ids,            \
                    int64_t cols, int64_t rows, const float *x, int x_div, int n_rows, float *y)                   \
    {                                                                                                              \
        return gemv_id_any(kind, bits, group, stream, w, slice, ids, cols, rows, x, x_div, n_rows, y);             \
    }
GEMV_ENTRY(qrtn_gemv, GEMV_WIDE)
GEMV_ENTRY(qrtn_gemv_plain, GEMV_PLAIN)
GEMV_ENTRY(qrtn_gemv_q8, GEMV_Q8)
GEMV_ID_ENTRY(qrtn_gemv_id, GEMV_WIDE)
GEMV_ID_ENTRY(qrtn_gemv_id_plain, GEMV_PLAIN)
GEMV_ID_ENTRY(qrtn_gemv_id_q8, GEMV_Q8)

/* One launch of the set kernel: the grids of the matrices' own launches one after another. */
template <int BITS>
static void launch_set(cudaStream_t s, int q8, int group, int n, const void *const *w, const int64_t *rows, int64_t cols,
                       const float *x, float *const *y)
{
    hc_cu_set set = {};
    hc_cu_launch l = {};
    for (int m = 0; m < n; m++) {
        l = hc_qrtn_cu_wide_geometry(rows[m], cols, 1);
        hc_cu_set_add(&set, w[m], y[m], rows[m], l.grid.x);
    }
    l.grid.x = hc_cu_set_blocks(&set);
    const size_t sh = l.shared_bytes + (q8 ? hc_qrtn_cu_q8_shared(cols, 1) : 0);
    if (q8) qrtn_gemv_set_kernel<BITS, 1><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), sh, s>>>(set, group, cols, x);
    else qrtn_gemv_set_kernel<BITS, 0><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), sh, s>>>(set, group, cols, x);
}

/* gemv (wide, or q8) of n matrices sharing x, one token: one launch when the wide kernel takes x, else a
 * GEMV each (the plain kernel's x alignment), with the same results either way. */
static_assert(HC_QRTN_CUDA_SET_MAX == HC_CU_SET_MAX, "the api's set holds what the kernel's does");

static int qrtn_gemv_set(int bits, int group, void *stream, int n, const void *const *w, const int64_t *rows, int64_t cols,
                         const float *x, float *const *y, int q8)
{
    if (!valid(bits, group, cols) || n < 1 || n > HC_QRTN_CUDA_SET_MAX) return (int)cudaErrorInvalidValue;
    int64_t total_rows = 0;
    for (int m = 0; m < n; m++) {
        if (rows[m] <= 0) return (int)cudaErrorInvalidValue;
        total_rows += rows[m];
    }
    gemv_kind kind = q8 ? GEMV_Q8 : GEMV_WIDE;
    if (!hc_qrtn_cu_wide_ok(cols, (uintptr_t)x) || (q8 && !hc_qrtn_cu_wide_q8_ok(cols, 1, (uintptr_t)x)) ||
        total_rows > (int64_t)1 << 30) {
        for (int m = 0; m < n; m++) {
            int e = gemv_any(kind, bits, group, stream, w[m], cols, rows[m], x, 1, y[m]);
            if (e) return e;
        }
        return 0;
    }
    cudaStream_t s = (cudaStream_t)stream;
    switch (bits) {
    case 2: launch_set<2>(s, q8, group, n, w, rows, cols, x, y); break;
    case 3: launch_set<3>(s, q8, group, n, w, rows, cols, x, y); break;
    case 4: launch_set<4>(s, q8, group, n, w, rows, cols, x, y); break;
    default: launch_set<8>(s, q8, group, n, w, rows, cols, x, y);
    }
    return (int)cudaGetLastError();
}

template <int BITS>
static cudaError_t dequant_bits(cudaStream_t s, int group, const uint8_t *w, int64_t cols, const int32_t *ids, int64_t row0,
                                int n_rows, void *out, int out_f16)
{
    hc_cu_launch l = hc_qrtn_cu_dequant_geometry(n_rows);
    if (out_f16)
        qrtn_dequant_kernel<BITS, 1><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(w, group, cols, ids, row0, out);
    else
        qrtn_dequant_kernel<BITS, 0><<<hc_cu_dim3(l.grid), hc_cu_dim3(l.block), 0, s>>>(w, group, cols, ids, row0, out);
    return cudaGetLastError();
}

static int qrtn_dequant_rows(int bits, int group, void *stream, const void *w, int64_t cols, const int32_t *ids, int64_t row0,
                             int n_rows, void *out, int out_f16)
{
    if (!valid(bits, group, cols) || n_rows < 0) return (int)cudaErrorInvalidValue;
    if (n_rows == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const uint8_t *wb = (const uint8_t *)w;
    switch (bits) {
    case 2: return (int)dequant_bits<2>(s, group, wb, cols, ids, row0, n_rows, out, out_f16);
    case 3: return (int)dequant_bits<3>(s, group, wb, cols, ids, row0, n_rows, out, out_f16);
    case 4: return (int)dequant_bits<4>(s, group, wb, cols, ids, row0, n_rows, out, out_f16);
    default: return (int)dequant_bits<8>(s, group, wb, cols, ids, row0, n_rows, out, out_f16);
    }
}

static const hc_qrtn_cuda_api api = { HC_QRTN_CUDA_API, HC_QRTN_CU_MAX_TOK, qrtn_gemv,    qrtn_dequant_rows, qrtn_gemv_id,
                                      qrtn_gemv_plain,  qrtn_gemv_id_plain, qrtn_gemv_q8, qrtn_gemv_id_q8, qrtn_gemv_set };

extern "C" __attribute__((visibility("default"))) const hc_qrtn_cuda_api *hc_qrtn_cuda_entry(void) { return &api; }
