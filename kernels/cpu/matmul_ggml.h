/* matmul_ggml.h: CPU matrix-vector / small matrix-matrix kernels for weights in GGUF's standard
 * types (f32, f16, bf16, Q4_0 .. Q8_0, K-quants): y[t][o] = sum_i W[o][i] x[t][i] over a row range. */
#ifndef HC_MATMUL_GGML_H
#define HC_MATMUL_GGML_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_cpu.h"
#include "hc/hc_status.h"
#include "hc/hc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activations quantized per block of 32 to int8: x[i] ~ d * q[i], with s = d * sum(q) (the
 * block sum, used for the min/offset term of Q4_1, Q5_1, K-quants...). q is in [-127, 127]. */
typedef struct hc_q8_block {
    float d;
    float s;
    int8_t q[32];
} hc_q8_block;

#define HC_Q8_BLOCK 32

/* Bytes of a quantized row of n floats (n % 32 == 0); 0 when n is not a multiple of 32. */
size_t hc_act_q8_bytes(int64_t n);

/* Quantizes one row of n floats (n % 32 == 0) to n / 32 blocks. Round to nearest (ties to
 * even) of x / d with d = max|x| / 127; the SIMD and the reference versions give identical bytes. */
void hc_act_quantize_q8(const float *x, hc_q8_block *y, int64_t n);   /* dispatching */
void hc_act_quantize_q8_ref(const float *x, hc_q8_block *y, int64_t n);

/* 1 when the kernels of type t take int8 activations (xq) -- every block type -- and 0 when
 * they take float activations (f32, f16, bf16) or t is unknown. */
int hc_matmul_wants_q8(hc_dtype t);

/* y[t*ldy + o] = dot(row o of W, x_t) for o in [row0, row1) and t in [0, n_tok); nothing else
 * of y is written.
 * w: the whole weight tensor data (rows of `in` elements of type wt, each row
 *    hc_dtype_row_bytes(wt, in) bytes, row o at o * row_bytes).
 * x: f32 activations [n_tok][in] (may be NULL when xq is given and the type wants q8);
 * xq: the same quantized with hc_act_quantize_q8 (row t at t * hc_act_q8_bytes(in)) when
 *    hc_matmul_wants_q8(wt), else ignored.
 * Errors: HC_E_UNSUPPORTED for a type without a kernel, HC_E_ARG for a bad size or range
 * (in not a multiple of the block, a missing input, ldy < row1 with n_tok > 1). */
hc_status hc_matmul_rows(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                         int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);

/* A source of row ranges for a matmul whose rows several threads share: each call gives the
 * calling thread its next range [*row0, *row1) and returns 1, or returns 0 when no rows are left.
 * *pf_end: the row up to which the thread may prefetch (where its coming ranges likely end). */
typedef int (*hc_rows_next_fn)(void *ctx, int64_t *row0, int64_t *row1, int64_t *pf_end);

/* hc_matmul_rows over every range next(ctx) gives, all within [0, n_rows), with one preparation
 * of the activations for all of them (the AVX-512 kernels lay them out per call). Arguments are
 * checked against [0, n_rows) before the first range is asked for. */
hc_status hc_matmul_rows_dyn(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq, int n_tok,
                             float *y, int64_t ldy, int64_t n_rows, hc_rows_next_fn next, void *ctx);

/* The plain reference behind it (no SIMD): the same contract, every standard block type. */
hc_status hc_matmul_rows_ref(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                             int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);

/* ---- internals shared by the implementations (and the tests) ---- */

/* Checks the arguments of hc_matmul_rows* (the message names the problem). */
hc_status hc_matmul_check(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                          int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);

/* The AVX2/FMA/F16C kernels (call only when hc_cpu_has_avx2()). hc_matmul_avx2_has(t) says
 * whether a type has one; hc_matmul_rows_avx2 assumes checked arguments and a supported type. */
int hc_matmul_avx2_has(hc_dtype t);
void hc_matmul_rows_avx2(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                         int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1);
void hc_act_quantize_q8_avx2(const float *x, hc_q8_block *y, int64_t n);

/* The AVX-512 kernels (call only when hc_cpu_has_avx512()): Q4_0, Q4_1, Q8_0, Q4_K, Q6_K
 * (hc_matmul_avx512_has). hc_matmul_rows_avx512 assumes checked arguments and a supported type;
 * it returns 0 without touching y when it could not get its scratch memory (the caller then runs
 * another kernel), 1 when done. */
int hc_matmul_avx512_has(hc_dtype t);
int hc_matmul_rows_avx512(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                          int64_t ldy, int64_t row0, int64_t row1);
/* The same over the ranges next(ctx) gives (see hc_matmul_rows_dyn); 0 before asking for any. */
int hc_matmul_rows_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                              int64_t ldy, hc_rows_next_fn next, void *ctx);
/* The same types for many tokens (prefill: 16 tokens in the vector lanes), any n_tok >= 1; what
 * hc_matmul_rows_avx512 runs from HC_AVX512_BATCH_MIN tokens on. Returns as above. */
#define HC_AVX512_BATCH_MIN 8
int hc_matmul_batch_avx512(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                           int64_t ldy, int64_t row0, int64_t row1);
int hc_matmul_batch_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                               int64_t ldy, hc_rows_next_fn next, void *ctx);

/* The AVX-512 kernels of the float types f32, f16, bf16 (hc_matmul_float_avx512_has; call only
 * when hc_cpu_has_avx512()): x in f32, any n_tok >= 1, checked arguments (matmul_float_avx512.c).
 * The dispatch runs them up to HC_AVX512_FLOAT_MAX_TOK tokens (decoding; the AVX2 kernel's tiles of
 * 2 rows x 4 tokens measured faster from 16 tokens on: 55 against 63 ns per row and token). */
#define HC_AVX512_FLOAT_MAX_TOK 4
int hc_matmul_float_avx512_has(hc_dtype t);
void hc_matmul_float_avx512(hc_dtype wt, const void *w, int64_t in, const float *x, int n_tok, float *y, int64_t ldy,
                            int64_t row0, int64_t row1);
void hc_matmul_float_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const float *x, int n_tok, float *y,
                                int64_t ldy, hc_rows_next_fn next, void *ctx);

/* A next() giving one range once (hc_one_range_next, ctx an hc_one_range). */
typedef struct hc_one_range {
    int64_t row0, row1;
    int given;
} hc_one_range;
int hc_one_range_next(void *ctx, int64_t *row0, int64_t *row1, int64_t *pf_end);

#ifdef __cplusplus
}
#endif
#endif
