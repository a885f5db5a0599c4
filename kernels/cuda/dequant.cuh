/* dequant.cuh: one weight element of any type the CUDA kernels read (f32, f16, bf16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0), and the geometry of the dequantizing kernels (rows to f32, warp-per-row GEMV). */
#ifndef HC_CUDA_DEQUANT_CUH
#define HC_CUDA_DEQUANT_CUH

#include "cuda_common.cuh"
#include "hc/hc_tensor.h"

/* Elements per block of the block formats below. */
#define HC_CU_QBLOCK 32

/* 1 when the CUDA kernels can read weights of type t. */
static inline HC_CU_HD int hc_cu_dtype_supported(int t)
{
    switch (t) {
    case HC_F32: case HC_F16: case HC_BF16:
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: case HC_Q8_0: return 1;
    default: return 0;
    }
}

/* ---- element j (0..31) of one block ---- */

/* Q4_0: f16 d, qs[16]; element j < 16 is the low nibble of qs[j], element j >= 16 the high
 * nibble of qs[j - 16]; w = d * (q - 8). */
static inline HC_CU_HD float hc_cu_q4_0_elem(const uint8_t *b, int j)
{
    uint32_t q = b[2 + (j & 15)];
    int v = (int)(j < 16 ? (q & 0xfu) : (q >> 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(v - 8);
}

/* Q4_1: f16 d, f16 m, qs[16] (nibbles as Q4_0); w = d * q + m. */
static inline HC_CU_HD float hc_cu_q4_1_elem(const uint8_t *b, int j)
{
    uint32_t q = b[4 + (j & 15)];
    int v = (int)(j < 16 ? (q & 0xfu) : (q >> 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)v + hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
}

/* Q5_0: f16 d, u32 qh, qs[16]; the fifth bit of element j is bit j of qh; w = d * (q - 16). */
static inline HC_CU_HD float hc_cu_q5_0_elem(const uint8_t *b, int j)
{
    uint32_t q = b[6 + (j & 15)];
    uint32_t hi = (hc_cu_rd_u32(b + 2) >> j) & 1u;
    int v = (int)((j < 16 ? (q & 0xfu) : (q >> 4)) | (hi << 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(v - 16);
}

/* Q5_1: f16 d, f16 m, u32 qh, qs[16]; w = d * q + m. */
static inline HC_CU_HD float hc_cu_q5_1_elem(const uint8_t *b, int j)
{
    uint32_t q = b[8 + (j & 15)];
    uint32_t hi = (hc_cu_rd_u32(b + 4) >> j) & 1u;
    int v = (int)((j < 16 ? (q & 0xfu) : (q >> 4)) | (hi << 4));
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)v + hc_cu_f16_to_f32(hc_cu_rd_u16(b + 2));
}

/* Q8_0: f16 d, int8 qs[32]; w = d * q. */
static inline HC_CU_HD float hc_cu_q8_0_elem(const uint8_t *b, int j)
{
    return hc_cu_f16_to_f32(hc_cu_rd_u16(b)) * (float)(int8_t)b[2 + j];
}

/* Bytes of one block (one element for plain types); 0 for a type the kernels cannot read. */
static inline HC_CU_HD int hc_cu_block_bytes(int t)
{
    switch (t) {
    case HC_F32: return 4;
    case HC_F16: case HC_BF16: return 2;
    case HC_Q4_0: return 18;
    case HC_Q4_1: return 20;
    case HC_Q5_0: return 22;
    case HC_Q5_1: return 24;
    case HC_Q8_0: return 34;
    default: return 0;
    }
}

/* Element k of a row of type t starting at `row`. Inside a kernel templated on t the switch
 * folds away. NaN for an unsupported type (the host refuses those before launching). */
static inline HC_CU_HD float hc_cu_deq_elem(int t, const uint8_t *row, int64_t k)
{
    const uint8_t *blk = row + (size_t)(k / HC_CU_QBLOCK) * (size_t)hc_cu_block_bytes(t);
    int j = (int)(k % HC_CU_QBLOCK);
    switch (t) {
    case HC_F32: return hc_cu_bits_f32(hc_cu_rd_u32(row + (size_t)k * 4));
    case HC_F16: return hc_cu_f16_to_f32(hc_cu_rd_u16(row + (size_t)k * 2));
    case HC_BF16: return hc_cu_bf16_to_f32(hc_cu_rd_u16(row + (size_t)k * 2));
    case HC_Q4_0: return hc_cu_q4_0_elem(blk, j);
    case HC_Q4_1: return hc_cu_q4_1_elem(blk, j);
    case HC_Q5_0: return hc_cu_q5_0_elem(blk, j);
    case HC_Q5_1: return hc_cu_q5_1_elem(blk, j);
    case HC_Q8_0: return hc_cu_q8_0_elem(blk, j);
    default: return NAN;
    }
}

/* ---- dequant_rows: out[r][k] = element k of weight row (ids ? ids[r] : row0 + r) ----
 * One block of HC_CU_DEQ_THREADS threads per output row; thread k0 writes k0, k0 + threads, ... */
#define HC_CU_DEQ_THREADS 256

static inline HC_CU_HD hc_cu_launch hc_cu_dequant_rows_geometry(int n_rows)
{
    return hc_cu_launch_1d((unsigned)n_rows, HC_CU_DEQ_THREADS, 0);
}

static inline HC_CU_HD int64_t hc_cu_dequant_src_row(const int32_t *ids, int64_t row0, unsigned block)
{
    return ids ? (int64_t)ids[block] : row0 + (int64_t)block;
}

/* ---- GEMV (one token): y[o] = sum_k W[o][k] * x[k] ----
 * A block holds HC_CU_GEMV_ROWS warps, one output row each (threadIdx.y picks the row). Lane l
 * sums elements l, l + 32, ...: for block formats a warp reads one whole 32-block per step, lane
 * j element j, so the qs bytes and x are read coalesced. A shuffle tree then sums the lanes. */
#define HC_CU_GEMV_ROWS 4

static inline HC_CU_HD hc_cu_launch hc_cu_gemv_geometry(int64_t out)
{
    hc_cu_launch l = hc_cu_launch_1d(hc_cu_div_up((size_t)out, HC_CU_GEMV_ROWS), HC_CU_WARP, 0);
    l.block.y = HC_CU_GEMV_ROWS;
    return l;
}

static inline HC_CU_HD int64_t hc_cu_gemv_row(unsigned block_x, unsigned thread_y)
{
    return (int64_t)block_x * HC_CU_GEMV_ROWS + thread_y;
}

/* The part of row `row`'s dot product that lane `lane` sums before the warp reduction. */
static inline HC_CU_HD float hc_cu_gemv_lane_partial(int t, const uint8_t *row, const float *x, int64_t in, int lane)
{
    float s = 0.0f;
    for (int64_t k = lane; k < in; k += HC_CU_WARP) s += hc_cu_deq_elem(t, row, k) * x[k];
    return s;
}

/* ---- n_tok > 1: dequantize a chunk of rows to f32 scratch, then one cuBLAS SGEMM per chunk ---- */

/* Rows per chunk so that a chunk of `in`-wide f32 rows fits max_floats (at least one row). */
static inline HC_CU_HD int64_t hc_cu_matmul_chunk_rows(int64_t in, int64_t out, size_t max_floats)
{
    int64_t rows = in > 0 ? (int64_t)(max_floats / (size_t)in) : out;
    if (rows < 1) rows = 1;
    return rows < out ? rows : out;
}

/* cuBLAS is column-major. A row-major W [out][in] is the column-major matrix W^T (in x out,
 * lda = in); x [n_tok][in] is column-major X (in x n_tok); y [n_tok][out] column-major Y
 * (out x n_tok, ldc = out). So Y = op(A) * X with op = transpose, m = rows, n = n_tok, k = in. */
typedef struct hc_cu_gemm_args {
    int trans_a;          /* 1: CUBLAS_OP_T on A */
    int trans_b;          /* 1: CUBLAS_OP_T on B */
    int m, n, k;
    int lda, ldb, ldc;
} hc_cu_gemm_args;

/* Arguments of cublasSgemm for rows [row0, row0 + rows) of W (A points at row row0, C at y + row0). */
static inline HC_CU_HD hc_cu_gemm_args hc_cu_matmul_gemm_args(int64_t in, int64_t out, int64_t rows, int n_tok)
{
    hc_cu_gemm_args g;
    g.trans_a = 1;
    g.trans_b = 0;
    g.m = (int)rows;
    g.n = n_tok;
    g.k = (int)in;
    g.lda = (int)in;
    g.ldb = (int)in;
    g.ldc = (int)out;
    return g;
}

/* Arguments of cublasSgemv for one token on f32 weights: y = op(A) * x with A the column-major
 * in x out matrix (lda = in) and op = transpose: m = in, n = out. */
static inline HC_CU_HD hc_cu_gemm_args hc_cu_matmul_gemv_args(int64_t in, int64_t out)
{
    hc_cu_gemm_args g;
    g.trans_a = 1;
    g.trans_b = 0;
    g.m = (int)in;
    g.n = (int)out;
    g.k = 1;
    g.lda = (int)in;
    g.ldb = 1;    /* incx */
    g.ldc = 1;    /* incy */
    return g;
}

#endif
