/* avx512_common.h: helpers the *_avx512.c kernels share: GF2P8AFFINE bit matrices that pick
 * nibbles and bit pairs, masked loads of a row's last bytes, f16 scalars, Q4_K's packed scales. */
#ifndef HC_AVX512_COMMON_H
#define HC_AVX512_COMMON_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* ---------------- GF2P8AFFINE bit matrices ---------------- */

/* out bit i = parity(row_i & in): the 8x8 bit matrix as gf2p8affineqb wants it (row i in byte 7-i). */
#define GF_ROW(i, m) ((unsigned long long)(m) << (8 * (7 - (i))))
#define GF_LO ((long long)(GF_ROW(0, 1) | GF_ROW(1, 2) | GF_ROW(2, 4) | GF_ROW(3, 8)))        /* low nibble */
#define GF_HI ((long long)(GF_ROW(0, 16) | GF_ROW(1, 32) | GF_ROW(2, 64) | GF_ROW(3, 128)))   /* high nibble */
#define GF_B45(b) ((long long)(GF_ROW(4, 1u << (b)) | GF_ROW(5, 1u << ((b) + 1))))            /* bits b, b+1 to 4, 5 */

/* The 64 bytes at p, of which only the first n (any value) are read; the others are 0. */
AI __m512i load_upto(const uint8_t *p, int64_t n)
{
    __mmask64 m = n >= 64 ? ~0ULL : n > 0 ? _bzhi_u64(~0ULL, (unsigned)n) : 0ULL;
    return _mm512_maskz_loadu_epi8(m, p);
}

/* vpermps indices, loaded from a table (built in registers they cost three operations each time:
 * gcc does not keep them out of the loops): PAIR_IDX[j] has lanes 0-7 = 2j, lanes 8-15 = 2j + 1
 * (j < 8); PAIR_IDX[8 + k] lanes 0-7 = k, 8-15 = k + 2 (Q4_K's groups, k = 0, 1, 4, 5);
 * QUAD_IDX[k] lane l = 4k + l / 4 (Q6_K's sub-scales of 16, k < 4). */
static const int32_t PAIR_IDX[14][16] __attribute__((aligned(64))) = {
#define P2(a, b) {a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b}
    P2(0, 1), P2(2, 3), P2(4, 5), P2(6, 7), P2(8, 9), P2(10, 11), P2(12, 13), P2(14, 15),
    P2(0, 2), P2(1, 3), P2(2, 4), P2(3, 5), P2(4, 6), P2(5, 7),
#undef P2
};
static const int32_t QUAD_IDX[4][16] __attribute__((aligned(64))) = {
#define Q4(k) {4 * (k), 4 * (k), 4 * (k), 4 * (k), 4 * (k) + 1, 4 * (k) + 1, 4 * (k) + 1, 4 * (k) + 1, \
               4 * (k) + 2, 4 * (k) + 2, 4 * (k) + 2, 4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 3, 4 * (k) + 3, 4 * (k) + 3}
    Q4(0), Q4(1), Q4(2), Q4(3),
#undef Q4
};

/* Lanes 0-7 from the scale of block 2j, 8-15 from 2j + 1. */
AI __m512i pair_idx(int j) { return _mm512_load_si512(PAIR_IDX[j]); }

/* The eight 6-bit scales and mins of the block at b as floats (see core/tensor.c, k4_scale_min). */
AI void q4_k_scales(const uint8_t *b, __m256 *sc, __m256 *mn)
{
    uint32_t a, m, c;
    memcpy(&a, b + 4, 4);
    memcpy(&m, b + 8, 4);
    memcpy(&c, b + 12, 4);
    const uint32_t m3f = 0x3f3f3f3fu, m0f = 0x0f0f0f0fu, m03 = 0x03030303u;
    const uint64_t s = (a & m3f) | (uint64_t)((c & m0f) | (((a >> 6) & m03) << 4)) << 32;
    const uint64_t n = (m & m3f) | (uint64_t)(((c >> 4) & m0f) | (((m >> 6) & m03) << 4)) << 32;
    *sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s)));
    *mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)n)));
}

AI float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

#endif
