/* matmul_ggml.c: runtime dispatch of the GGUF-type matmul kernels and the activation quantizer:
 * the AVX2/FMA/F16C versions when the CPU has them, the plain reference otherwise. */
#include "hc/hc_cpu.h"
#include "matmul_ggml.h"

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
    if (!hc_cpu_has_avx2() || !hc_matmul_avx2_has(wt))
        return hc_matmul_rows_ref(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    hc_status st = hc_matmul_check(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    if (st != HC_OK || n_tok == 0 || row0 == row1) return st;
    hc_matmul_rows_avx2(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    return HC_OK;
}
