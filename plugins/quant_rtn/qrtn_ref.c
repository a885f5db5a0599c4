/* qrtn_ref.c: the plain C reference of the group-wise integer matmul (qrtn.h): unpack a row's
 * codes, integer dot products with the prepared int8 activations, scaled and summed in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_tensor.h"
#include "qrtn.h"

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return hc_f16_to_f32(h);
}

hc_status hc_qrtn_matmul_rows_ref(int bits, int group, const void *packed, int64_t cols, int64_t rows,
                                  const void *xq, int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    hc_status st = hc_qrtn_matmul_check(bits, group, packed, cols, rows, xq, n_tok, y, ldy, row0, row1);
    if (st != HC_OK || n_tok == 0 || row0 == row1) return st;
    const int64_t nb = cols / 32, G = hc_qrtn_groups(group, cols), bpg = group / 32;
    const int smax = hc_qrtn_shift_max(bits);
    const size_t rb = hc_qrtn_row_bytes(bits, group, cols), xrb = hc_qrtn_input_row_bytes(bits, group, cols);
    uint8_t *q = malloc((size_t)cols);
    if (!q) return hc_error(HC_E_NOMEM, "qrtn matmul: out of memory for a row of %lld codes", (long long)cols);
    for (int64_t o = row0; o < row1; o++) {
        const uint8_t *row = (const uint8_t *)packed + (size_t)o * rb;
        hc_qrtn_read_codes(bits, group, cols, row, q);
        for (int t = 0; t < n_tok; t++) {
            const uint8_t *xt = (const uint8_t *)xq + (size_t)t * xrb;
            const float *dg = (const float *)(xt + (size_t)nb * HC_QRTN_XBLOCK), *sg = dg + ((G + 7) & ~(int64_t)7);
            double acc = 0.0;
            for (int64_t g = 0; g < G; g++) {
                const double d = f16_at(row + 2 * g), m = f16_at(row + 2 * (G + g));
                int64_t isum = 0;   /* sum over the group's blocks of c_b * (q . qx_b) */
                const int64_t b_end = (g + 1) * bpg < nb ? (g + 1) * bpg : nb;   /* the last group may be short */
                for (int64_t b = g * bpg; b < b_end; b++) {
                    const uint8_t *blk = xt + (size_t)b * HC_QRTN_XBLOCK;
                    int16_t cs;
                    memcpy(&cs, blk + 32, 2);
                    int32_t dot = 0;
                    for (int i = 0; i < 32; i++) dot += (int32_t)q[32 * b + i] * (int32_t)(int8_t)blk[i];
                    isum += (int64_t)(cs >> (smax - hc_qrtn_block_shift(bits, cols, b))) * dot;
                }
                acc += d * ldexp((double)dg[g], smax) * (double)isum + m * (double)sg[g];
            }
            y[(size_t)t * (size_t)ldy + (size_t)o] = (float)acc;
        }
    }
    free(q);
    return HC_OK;
}
