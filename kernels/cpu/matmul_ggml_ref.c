/* matmul_ggml_ref.c: the plain C reference of the GGUF-type matmul kernels and of the int8
 * activation quantizer: dequantize a weight block, dot it with the (quantized) activations. */
#include <math.h>
#include <string.h>

#include "matmul_ggml.h"

size_t hc_act_q8_bytes(int64_t n)
{
    if (n < 0 || n % HC_Q8_BLOCK != 0) return 0;
    return (size_t)(n / HC_Q8_BLOCK) * sizeof(hc_q8_block);
}

void hc_act_quantize_q8_ref(const float *x, hc_q8_block *y, int64_t n)
{
    for (int64_t b = 0; b < n / HC_Q8_BLOCK; b++, x += HC_Q8_BLOCK) {
        float amax = 0.0f;
        for (int i = 0; i < HC_Q8_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < HC_Q8_BLOCK; i++) {
            int q = (int)lrintf(x[i] * id);   /* round to nearest, ties to even: as cvtps2dq */
            y[b].q[i] = (int8_t)q;
            sum += q;
        }
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

int hc_matmul_wants_q8(hc_dtype t)
{
    switch (t) {
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: case HC_Q8_0:
    case HC_Q2_K: case HC_Q3_K: case HC_Q4_K: case HC_Q5_K: case HC_Q6_K:
        return 1;
    default:
        return 0;
    }
}

static int has_kernel(hc_dtype t)
{
    return t == HC_F32 || t == HC_F16 || t == HC_BF16 || hc_matmul_wants_q8(t);
}

hc_status hc_matmul_check(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                          int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    if (!has_kernel(wt))
        return hc_error(HC_E_UNSUPPORTED, "cpu matmul: weight type %s (%d) has no cpu kernel",
                        hc_dtype_name(wt), (int)wt);
    int bs = hc_dtype_block_size(wt);
    if (in <= 0 || in % bs != 0)
        return hc_error(HC_E_ARG, "cpu matmul: row length %lld is not a positive multiple of the %s block (%d)",
                        (long long)in, hc_dtype_name(wt), bs);
    if (row0 < 0 || row1 < row0)
        return hc_error(HC_E_ARG, "cpu matmul: bad row range [%lld, %lld)", (long long)row0, (long long)row1);
    if (n_tok < 0) return hc_error(HC_E_ARG, "cpu matmul: negative token count %d", n_tok);
    if (n_tok == 0 || row0 == row1) return HC_OK;
    if (!w || !y) return hc_error(HC_E_ARG, "cpu matmul: missing weights or output");
    if (n_tok > 1 && ldy < row1)
        return hc_error(HC_E_ARG, "cpu matmul: output stride %lld is below the row range end %lld",
                        (long long)ldy, (long long)row1);
    if (hc_matmul_wants_q8(wt) ? !xq : !x)
        return hc_error(HC_E_ARG, "cpu matmul: weight type %s needs %s activations, none given",
                        hc_dtype_name(wt), hc_matmul_wants_q8(wt) ? "int8-quantized (xq)" : "float (x)");
    return HC_OK;
}

/* The largest block: K-quants hold 256 elements. */
#define MAX_BLOCK 256

hc_status hc_matmul_rows_ref(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                             int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    hc_status st = hc_matmul_check(wt, w, in, x, xq, n_tok, y, ldy, row0, row1);
    if (st != HC_OK || n_tok == 0 || row0 == row1) return st;
    size_t row_bytes = hc_dtype_row_bytes(wt, in), block_bytes = hc_dtype_block_bytes(wt);
    int64_t bs = hc_dtype_block_size(wt);
    if (bs == 1) bs = in < MAX_BLOCK ? in : MAX_BLOCK;     /* plain types: any chunk will do */
    while (in % bs) bs--;
    block_bytes *= (size_t)(hc_dtype_block_size(wt) == 1 ? bs : 1);
    int q8 = hc_matmul_wants_q8(wt);
    size_t xq_row = hc_act_q8_bytes(in);
    float wf[MAX_BLOCK], xf[MAX_BLOCK];
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x ? x + (size_t)t * (size_t)in : NULL;
        const hc_q8_block *xqt = q8 ? (const hc_q8_block *)((const char *)xq + (size_t)t * xq_row) : NULL;
        for (int64_t o = row0; o < row1; o++) {
            const char *row = (const char *)w + (size_t)o * row_bytes;
            double acc = 0.0;
            for (int64_t i0 = 0; i0 < in; i0 += bs) {
                hc_dequantize_row(wt, row + (size_t)(i0 / bs) * block_bytes, wf, bs);
                if (q8) {   /* the activations the kernel sees: d * q of each block of 32 */
                    for (int64_t i = 0; i < bs; i++) {
                        const hc_q8_block *b = &xqt[(i0 + i) / HC_Q8_BLOCK];
                        xf[i] = b->d * (float)b->q[(i0 + i) % HC_Q8_BLOCK];
                    }
                } else {
                    memcpy(xf, xt + i0, (size_t)bs * sizeof(float));
                }
                for (int64_t i = 0; i < bs; i++) acc += (double)wf[i] * (double)xf[i];
            }
            y[(size_t)t * (size_t)ldy + (size_t)o] = (float)acc;
        }
    }
    return HC_OK;
}
