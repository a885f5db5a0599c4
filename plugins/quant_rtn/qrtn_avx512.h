/* qrtn_avx512.h: what the AVX-512 kernels of the qrtn formats share (qrtn_avx512.c decodes,
 * qrtn_batch_avx512.c prefills): GF2P8AFFINE bit matrices and the unpacking of qrtn.h's units. */
#ifndef HC_QRTN_AVX512_H
#define HC_QRTN_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "hc/hc_avx512.h"

#define AI static inline __attribute__((always_inline))

/* ---------------- GF2P8AFFINE bit matrices ----------------
 * gf2p8affineqb multiplies every byte of a 64-bit lane by that lane's 8x8 bit matrix: output bit i
 * is the parity of (row i AND the input byte), row i sitting in byte 7 - i of the matrix. */
#define GF_ROW(i, m) ((unsigned long long)(m) << (8 * (7 - (i))))
#define GF_BIT(j, i) GF_ROW(i, 1u << (j))                                    /* input bit j to bit i */
#define GF_MOVE2(j, i) (GF_BIT(j, i) | GF_BIT((j) + 1, (i) + 1))            /* bits j, j+1 to i, i+1 */
#define GF_MOVE3(j, i) (GF_MOVE2(j, i) | GF_BIT((j) + 2, (i) + 2))          /* bits j..j+2 to i..i+2 */
#define GF_MOVE4(j, i) (GF_MOVE2(j, i) | GF_MOVE2((j) + 2, (i) + 2))        /* a nibble */
#define GFQ(q0, q1, q2, q3, q4, q5, q6, q7)                                                          \
    _mm512_set_epi64((long long)(q7), (long long)(q6), (long long)(q5), (long long)(q4), (long long)(q3), \
                     (long long)(q2), (long long)(q1), (long long)(q0))

AI __m512i gf(__m512i v, __m512i m) { return _mm512_gf2p8affine_epi64_epi8(v, m, 0); }

/* 32, 16 or 8 bytes at p repeated over the 64. */
AI __m512i bc256(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }
AI __m512i bc128(const uint8_t *p) { return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p)); }
AI __m512i bc64(const uint8_t *p)
{
    long long v;
    memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}

/* ---------------- unpacking ----------------
 * A vector holds two blocks of 32 codes (bytes 0-31 block b, 32-63 block b + 1), each as q 2^a
 * with the exponent a of hc_qrtn_block_shift (the activation multipliers carry 2^(A - a)), so
 * that the bytes equal those the AVX2 kernel makes; 8 bits: the stored signed bytes (q - 128).
 * Units of 128 give [A|B] and [C|D], units of 64 [A|B], units of 32 [A|0]; every read stays
 * inside the unit. */

/* A unit of 128 columns at p. */
AI void unpack128_512(const int bits, const uint8_t *p, __m512i *w)
{
    switch (bits) {
    case 2: {   /* byte p = A | B<<2 | C<<4 | D<<6: A, B 2^2; C 2^4, D 2^4 */
        const __m512i v = bc256(p);
        w[0] = _mm512_and_si512(v, _mm512_mask_blend_epi64(0xf0, _mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0c)));
        w[1] = gf(v, GFQ(GF_MOVE2(4, 4), GF_MOVE2(4, 4), GF_MOVE2(4, 4), GF_MOVE2(4, 4), GF_MOVE2(6, 4), GF_MOVE2(6, 4),
                         GF_MOVE2(6, 4), GF_MOVE2(6, 4)));
        break;
    }
    case 3: {   /* bytes 0-31: A | B<<3 | (D>>1)<<6; 32-47: C | (D&1)<<3 | C'<<4 | (D'&1)<<7: A, C 2^0; B, D 2^3 */
        const __m512i v = bc256(p);
        w[0] = _mm512_and_si512(v, _mm512_mask_blend_epi64(0xf0, _mm512_set1_epi8(0x07), _mm512_set1_epi8(0x38)));
        const __m512i c = gf(bc128(p + 32), GFQ(GF_MOVE3(0, 0), GF_MOVE3(0, 0), GF_MOVE3(4, 0), GF_MOVE3(4, 0), GF_BIT(3, 3),
                                                GF_BIT(3, 3), GF_BIT(7, 3), GF_BIT(7, 3)));
        const __m512i d = gf(v, GFQ(0, 0, 0, 0, GF_MOVE2(6, 4), GF_MOVE2(6, 4), GF_MOVE2(6, 4), GF_MOVE2(6, 4)));
        w[1] = _mm512_or_si512(c, d);
        break;
    }
    case 4: {   /* two units of 64: byte p = A | B<<4 */
        const __m512i m = GFQ(GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(4, 0), GF_MOVE4(4, 0),
                              GF_MOVE4(4, 0), GF_MOVE4(4, 0));
        w[0] = gf(bc256(p), m);
        w[1] = gf(bc256(p + 32), m);
        break;
    }
    default:
        w[0] = _mm512_loadu_si512(p);
        w[1] = _mm512_loadu_si512(p + 64);
        break;
    }
}

/* A unit of 64 columns at p. */
AI __m512i unpack64_512(const int bits, const uint8_t *p)
{
    switch (bits) {
    case 2:   /* byte j = A[j] | B[j]<<2 | A[j+16]<<4 | B[j+16]<<6: A 2^0, B 2^2 */
        return gf(bc128(p), GFQ(GF_MOVE2(0, 0), GF_MOVE2(0, 0), GF_MOVE2(4, 0), GF_MOVE2(4, 0), GF_MOVE2(2, 2),
                                GF_MOVE2(2, 2), GF_MOVE2(6, 2), GF_MOVE2(6, 2)));
    case 3: {   /* byte j = A[j] | (B[j]>>2)<<3 | A'<<4 | (B'>>2)<<7; bytes 16-23: B & 3 (2-bit 32-unit): A 2^0, B 2^1 */
        const __m512i a = gf(bc128(p), GFQ(GF_MOVE3(0, 0), GF_MOVE3(0, 0), GF_MOVE3(4, 0), GF_MOVE3(4, 0), GF_BIT(3, 3),
                                           GF_BIT(3, 3), GF_BIT(7, 3), GF_BIT(7, 3)));
        const __m512i b = gf(bc64(p + 16), GFQ(0, 0, 0, 0, GF_MOVE2(0, 1), GF_MOVE2(2, 1), GF_MOVE2(4, 1), GF_MOVE2(6, 1)));
        return _mm512_or_si512(a, b);
    }
    case 4:
        return gf(bc256(p), GFQ(GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(4, 0),
                                GF_MOVE4(4, 0), GF_MOVE4(4, 0), GF_MOVE4(4, 0)));
    default: return _mm512_loadu_si512(p);
    }
}

/* A unit of 32 columns at p (the upper block zero). */
AI __m512i unpack32_512(const int bits, const uint8_t *p)
{
    const __m512i two = GFQ(GF_MOVE2(0, 0), GF_MOVE2(2, 0), GF_MOVE2(4, 0), GF_MOVE2(6, 0), 0, 0, 0, 0);
    switch (bits) {
    case 2: return gf(bc64(p), two);   /* qword k: bits 2k, 2k+1 of bytes 0..7 */
    case 3: {   /* bytes 0-7: A & 3 as in 2 bits; byte 8 + k bit i: A[8k + i] >> 2 */
        const __m512i lo = gf(bc64(p), two);
        int32_t hb;
        memcpy(&hb, p + 8, 4);
        const __m512i spread = _mm512_set_epi64(0, 0, 0, 0, 0x0303030303030303LL, 0x0202020202020202LL,
                                                0x0101010101010101LL, 0);
        const __m512i h = _mm512_shuffle_epi8(_mm512_set1_epi32(hb), spread);
        const __mmask64 set = _mm512_test_epi8_mask(h, _mm512_set1_epi64((long long)0x8040201008040201ULL)) & 0xffffffffULL;
        return _mm512_mask_add_epi8(lo, set, lo, _mm512_set1_epi8(4));
    }
    case 4:   /* byte j = A[j] | A[j+16]<<4 */
        return gf(bc128(p), GFQ(GF_MOVE4(0, 0), GF_MOVE4(0, 0), GF_MOVE4(4, 0), GF_MOVE4(4, 0), 0, 0, 0, 0));
    default: return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p));
    }
}

#endif
