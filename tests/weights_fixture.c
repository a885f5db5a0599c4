/* weights_fixture.c: random weight matrices of every type the kernels read (weights_fixture.h), shared
 * by test_cuda_plugin and test_cuda_emu. */
#include "weights_fixture.h"

#include <stdlib.h>
#include <string.h>

static float uniform(uint64_t *s) /* in [-1, 1) */
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 4503599627370496.0 - 1.0);
}

uint8_t *hc_test_weights(hc_dtype t, int64_t rows, int64_t in, size_t *bytes, uint64_t *rng)
{
    size_t rb = hc_dtype_row_bytes(t, in);
    *bytes = rb * (size_t)rows;
    uint8_t *w = malloc(*bytes ? *bytes : 1);
    if (!w) return NULL;
    if (hc_dtype_block_size(t) == 1) {
        for (int64_t i = 0; i < rows * in; i++) {
            float v = uniform(rng);
            if (t == HC_F32) memcpy(w + 4 * i, &v, 4);
            else {
                uint16_t h = t == HC_F16 ? hc_f32_to_f16(v) : hc_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return w;
    }
    size_t bb = hc_dtype_block_bytes(t);
    for (size_t b = 0; b < *bytes / bb; b++) {
        uint8_t *blk = w + b * bb;
        for (size_t i = 0; i < bb; i++) blk[i] = (uint8_t)(uniform(rng) * 127 + 128);
        uint16_t d = hc_f32_to_f16(uniform(rng) * 0.1f), m = hc_f32_to_f16(uniform(rng) * 0.5f);
        uint16_t k = hc_f32_to_f16(uniform(rng) * 0.01f);
        switch (t) { /* finite f16 scales where each layout keeps them */
        case HC_Q2_K: memcpy(blk + 80, &k, 2), memcpy(blk + 82, &k, 2); break;
        case HC_Q3_K: memcpy(blk + 108, &k, 2); break;
        case HC_Q4_K: case HC_Q5_K: memcpy(blk, &k, 2), memcpy(blk + 2, &k, 2); break;
        case HC_Q6_K: memcpy(blk + 208, &k, 2); break;
        default:
            memcpy(blk, &d, 2);
            if (t == HC_Q4_1 || t == HC_Q5_1) memcpy(blk + 2, &m, 2);
        }
    }
    return w;
}
