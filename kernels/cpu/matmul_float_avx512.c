/* matmul_float_avx512.c: AVX-512 kernels of the float-type matmuls (f32, f16, bf16): one row at a
 * time, 16 elements per vector, the row prefetched 12 KiB ahead (a large f16 output head). */
#include <immintrin.h>

#include "hc/hc_avx512.h"

#include "avx512_common.h"
#include "matmul_ggml.h"

/* A row is read once per 4 tokens (from memory for the first, from L1 for the others), 32
 * elements per step in two accumulators per token; f16 by vcvtph2ps, bf16 by a 16-bit shift. The
 * AVX2 kernel reads 4 rows in step and nothing ahead: an f16 head of 128256 x 2048 read at 13 GB/s. */

#define PREFETCH_DIST 12288   /* as the GGUF kernels (matmul_ggml_avx512.c) */
#define TOK 4                 /* tokens per pass over a row */

/* y[t * ldy] = row . x[t * in] for T tokens; prefetches PREFETCH_DIST ahead, short of end. */
AI void row_tokens(const hc_dtype ty, const int T, const uint8_t *row, int64_t in, const float *x, float *y, int64_t ldy,
                   const uint8_t *end)
{
    const size_t es = hc_float_elem_bytes(ty);
    __m512 acc[TOK][2];
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= in; i += 32) {
        const uint8_t *pf = row + (size_t)i * es + PREFETCH_DIST;
        if (pf < end) {
            _mm_prefetch((const char *)pf, _MM_HINT_T0);
            if (es == 4) _mm_prefetch((const char *)pf + 64, _MM_HINT_T0);
        }
        const __m512 w0 = hc_avx512_row16(ty, row, i, 0xffff), w1 = hc_avx512_row16(ty, row, i + 16, 0xffff);
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * (size_t)in + i;
            acc[t][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xt), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt + 16), acc[t][1]);
        }
    }
    for (; i < in; i += 16) {   /* the last 1..31 elements, masked */
        const __mmask16 m = hc_avx512_first(in - i);
        const __m512 w0 = hc_avx512_row16(ty, row, i, m);
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
            acc[t][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + (size_t)t * (size_t)in + i), acc[t][0]);
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) y[(size_t)t * (size_t)ldy] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
}

AI void float_rows(const hc_dtype ty, const uint8_t *w, int64_t in, const float *x, int n_tok, float *y, int64_t ldy,
                   hc_rows_next_fn next, void *ctx)
{
    const size_t rb = hc_dtype_row_bytes(ty, in);
    int64_t row0, row1, pf;
    while (next(ctx, &row0, &row1, &pf)) {
        const uint8_t *end = w + (size_t)pf * rb;
        for (int64_t o = row0; o < row1; o++) {
            const uint8_t *row = w + (size_t)o * rb;
            for (int t0 = 0; t0 < n_tok; t0 += TOK) {
                const float *xt = x + (size_t)t0 * (size_t)in;
                float *yt = y + (size_t)t0 * (size_t)ldy + (size_t)o;
                switch (n_tok - t0 >= TOK ? TOK : n_tok - t0) {
                case 4: row_tokens(ty, 4, row, in, xt, yt, ldy, end); break;
                case 3: row_tokens(ty, 3, row, in, xt, yt, ldy, end); break;
                case 2: row_tokens(ty, 2, row, in, xt, yt, ldy, end); break;
                default: row_tokens(ty, 1, row, in, xt, yt, ldy, end); break;
                }
                end = row;   /* the other tokens' passes find the row in L1: no prefetching */
            }
            end = w + (size_t)pf * rb;
        }
    }
}

#define FLOAT_KERNEL(name, type)                                                                              \
    static __attribute__((noinline)) void name(const void *w, int64_t in, const float *x, int n_tok, float *y, \
                                               int64_t ldy, hc_rows_next_fn next, void *ctx)                  \
    {                                                                                                         \
        float_rows(type, w, in, x, n_tok, y, ldy, next, ctx);                                                 \
    }

FLOAT_KERNEL(float_f32, HC_F32)
FLOAT_KERNEL(float_f16, HC_F16)
FLOAT_KERNEL(float_bf16, HC_BF16)

int hc_matmul_float_avx512_has(hc_dtype t) { return t == HC_F32 || t == HC_F16 || t == HC_BF16; }

void hc_matmul_float_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const float *x, int n_tok, float *y,
                                int64_t ldy, hc_rows_next_fn next, void *ctx)
{
    switch (wt) {
    case HC_F32: float_f32(w, in, x, n_tok, y, ldy, next, ctx); break;
    case HC_F16: float_f16(w, in, x, n_tok, y, ldy, next, ctx); break;
    case HC_BF16: float_bf16(w, in, x, n_tok, y, ldy, next, ctx); break;
    default: break;
    }
}

void hc_matmul_float_avx512(hc_dtype wt, const void *w, int64_t in, const float *x, int n_tok, float *y, int64_t ldy,
                            int64_t row0, int64_t row1)
{
    hc_one_range r = {row0, row1, 0};
    hc_matmul_float_avx512_dyn(wt, w, in, x, n_tok, y, ldy, hc_one_range_next, &r);
}
