/* matmul_ggml.c: runtime dispatch of the GGUF-type matmul kernels and the activation quantizer:
 * the AVX-512 (VNNI; float types: F/F16C) versions, else the AVX2/FMA/F16C ones when the CPU has
 * them, else the plain reference. */
#include "hc/hc_cpu.h"
#include "matmul_ggml.h"

#include <stdlib.h>
#include <string.h>

void hc_act_quantize_q8(const float *x, hc_q8_block *y, int64_t n)
{
    if (hc_cpu_has_avx2())
        hc_act_quantize_q8_avx2(x, y, n);
    else
        hc_act_quantize_q8_ref(x, y, n);
}

hc_status hc_matmul_rows(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                         int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    const int avx512 = hc_cpu_has_avx512() && (hc_matmul_avx512_has(wt) || (hc_matmul_float_avx512_has(wt) && n_tok <= HC_AVX512_FLOAT_MAX_TOK));
    if (!avx512 && (!hc_cpu_has_avx2() || !hc_matmul_avx2_has(wt)))
        return hc_matmul_rows_ref(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    hc_status st = hc_matmul_check(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    if (st != HC_OK || n_tok == 0 || row0 == row1) return st;
    if (hc_cpu_has_avx512() && hc_matmul_float_avx512_has(wt) && n_tok <= HC_AVX512_FLOAT_MAX_TOK) {
        hc_matmul_float_avx512(wt, w, in, x, n_tok, y, ldy, row0, row1);
        return HC_OK;
    }
    if (avx512 && hc_matmul_rows_avx512(wt, w, in, xq, n_tok, y, ldy, row0, row1)) return HC_OK;
    hc_matmul_rows_avx2(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    return HC_OK;
}

int hc_one_range_next(void *ctx, int64_t *row0, int64_t *row1, int64_t *pf_end)
{
    hc_one_range *r = ctx;
    if (r->given) return 0;
    r->given = 1;
    *row0 = r->row0, *row1 = r->row1, *pf_end = r->row1;
    return 1;
}

hc_status hc_matmul_rows_dyn(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq, int n_tok,
                             float *y, int64_t ldy, int64_t n_rows, hc_rows_next_fn next, void *ctx)
{
    hc_status st = hc_matmul_check(wt, w, in, x, xq, n_tok, y, ldy, 0, n_rows);
    if (st != HC_OK) return st;
    if (hc_cpu_has_avx512() && hc_matmul_float_avx512_has(wt) && n_tok > 0 && n_tok <= HC_AVX512_FLOAT_MAX_TOK) {
        hc_matmul_float_avx512_dyn(wt, w, in, x, n_tok, y, ldy, next, ctx);
        return HC_OK;
    }
    if (hc_cpu_has_avx512() && hc_matmul_avx512_has(wt) && n_tok > 0 &&
        hc_matmul_rows_avx512_dyn(wt, w, in, xq, n_tok, y, ldy, next, ctx))
        return HC_OK;
    int64_t r0, r1, pf;
    while (next(ctx, &r0, &r1, &pf))
        if ((st = hc_matmul_rows(wt, w, in, x, xq, n_tok, y, ldy, r0, r1)) != HC_OK) return st;
    return HC_OK;
}
