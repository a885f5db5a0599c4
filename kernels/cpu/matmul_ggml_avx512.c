/* matmul_ggml_avx512.c: AVX-512 kernels (F/BW/VL, VNNI vpdpbusd, VBMI word permutes, GFNI nibble
 * and bit extraction) of the GGUF-type matmuls Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, a few tokens at a time. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "avx512_common.h"
#include "matmul_ggml.h"

/* How a row is read: the weights stream once, in their GGUF layout (no repacking), 64 weights
 * per 512-bit vector; the int8 activations are laid out once per call (x_prep) so that each weight
 * vector meets one aligned activation vector. vpdpbusd multiplies the unsigned weight bytes (q, or
 * q + 128 for Q8_0) by the signed activations, 4 products per 32-bit lane; a vector holds two
 * blocks of 32 (8 lanes each). Its lanes are converted to float and scaled by a vector holding the
 * two blocks' scales (d_w * d_x), one vpermps out of the 16 block scales of a chunk of 16 blocks
 * (Q4_0, Q8_0: gathered from the blocks with vpermt2w) or of a K-quant block.
 * The offset of Q4_0 (-8) and the mins of Q4_1 and Q4_K go to a second accumulator through the activation
 * block sums s = d_x * sum(q_x); Q8_0's +128 and Q6_K's -32 are taken off in the integers (the
 * accumulator starts from -128 or -32 times the sums of the activations of its lane).
 * A few tokens (n_tok > 1) are done row by row, the row staying in L1 while every token passes. */

/* ---------------- the activations, laid out per call ---------------- */

/* One token's activations as the kernels read them, for rows of nblk blocks of 32, padded with
 * zeros to a multiple of 16 blocks (npad) so that whole chunks can be read:
 *   q     int8[npad * 32]   the quantized activations (Q4_K: groups 0 2 1 3 of every 4)
 *   d     float[npad]       the block scales d_x
 *   s     float[npad]       d_x * sum(q) of each block, times the weights' offset: -8 for Q4_0,
 *                           -1 for Q4_K (its mins are subtracted), 1 otherwise
 *   bias  int32[npad * 8]   Q8_0: -128, Q6_K: -32, times the sum of the 4 q of each lane
 *   d16   float[npad * 2]   Q6_K: the scale of each half-block of 16 (d_x twice) */
typedef struct x_prep {
    const int8_t *q;
    const float *d, *s;
    const int32_t *bias;
    const float *d16;
} x_prep;

static int64_t pad16(int64_t n) { return (n + 15) & ~(int64_t)15; }

static int has_bias(hc_dtype t) { return t == HC_Q8_0 || t == HC_Q6_K; }

/* Bytes of one token's x_prep for type t (a multiple of 64). */
static size_t x_prep_bytes(hc_dtype t, int64_t nblk)
{
    size_t np = (size_t)pad16(nblk);
    size_t n = np * 32 + 2 * np * sizeof(float);
    if (has_bias(t)) n += np * 8 * sizeof(int32_t);
    if (t == HC_Q6_K) n += np * 2 * sizeof(float);
    return (n + 63) & ~(size_t)63;
}

/* Lays out one token's activations xq (nblk blocks) in mem (x_prep_bytes, 64-byte aligned). */
static void x_prep_build(hc_dtype t, const hc_q8_block *xq, int64_t nblk, void *mem, x_prep *xp)
{
    const int64_t np = pad16(nblk);
    int8_t *q = mem;
    float *d = (float *)(void *)(q + np * 32), *s = d + np;
    int32_t *bias = (int32_t *)(void *)(s + np);
    float *d16 = (float *)(void *)(bias + (has_bias(t) ? np * 8 : 0));
    const int shift = t == HC_Q8_0 ? 7 : 5;   /* the offsets 128 and 32 */
    /* s as the kernels add it: Q4_0 w = d (q - 8); Q4_1 w = d q + m; Q4_K w = d sc q - dmin mn */
    const float soff = t == HC_Q4_0 ? -8.0f : t == HC_Q4_K ? -1.0f : 1.0f;
    for (int64_t b = 0; b < np; b++) {
        int64_t at = b;
        if (t == HC_Q4_K) at = (b & ~(int64_t)3) + ((b & 1) << 1) + ((b & 2) >> 1);   /* 0 2 1 3 */
        if (b < nblk) {
            memcpy(q + at * 32, xq[b].q, 32);
            d[b] = xq[b].d, s[b] = soff * xq[b].s;
        } else {
            memset(q + at * 32, 0, 32);
            d[b] = s[b] = 0.0f;
        }
        if (has_bias(t)) {   /* lane sums of 4 bytes: vpdpbusd with ones; -128 x or -32 x by a shift */
            const __m256i sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                                     _mm256_load_si256((const __m256i *)(const void *)(q + at * 32)));
            _mm256_store_si256((__m256i *)(void *)(bias + b * 8),
                               _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_sll_epi32(sums, _mm_cvtsi32_si128(shift))));
        }
        if (t == HC_Q6_K) d16[2 * b] = d16[2 * b + 1] = d[b];
    }
    xp->q = q, xp->d = d, xp->s = s;
    xp->bias = has_bias(t) ? bias : NULL;
    xp->d16 = t == HC_Q6_K ? d16 : NULL;
}

/* ---------------- helpers ---------------- */

/* The kernels prefetch this far ahead of the bytes being read (the rows of a matrix follow each
 * other). One core's hardware prefetcher alone keeps too few lines in flight: measured on the
 * target (Zen 5, 1 thread, Q4_0 2048 x 8192 from memory), 33 GB/s without, 31-32 at 768-1536
 * bytes, 36 at 3 KiB, 40-42 at 6-8 KiB, 42-48 at 12-24 KiB. */
#define PREFETCH_DIST 12288

/* Prefetches the cache lines of [p, p + n) PREFETCH_DIST ahead (n small: a chunk or block), short
 * of `end`: the rows past a thread's range are another thread's (a line this core prefetched
 * would be read from memory a second time by the other core: AMD's L3 holds what L2 evicts). */
AI void prefetch_span(const uint8_t *p, int n, const uint8_t *end)
{
    const uint8_t *a = p + PREFETCH_DIST;
    if (a >= end) return;
    for (int l = 0; l < n + 63; l += 64) _mm_prefetch((const char *)a + l, _MM_HINT_T0);
}

/* The f16 scales at p + k bb for k < nb (nb <= 4), the other lanes 0. */
AI __m512 tail_scales(const uint8_t *p, const int nb, const int bb)
{
    /* inserted one by one: 2-byte stores read back as one load would stall store forwarding */
    uint16_t h;
    __m128i v = _mm_setzero_si128();
    memcpy(&h, p, 2);
    v = _mm_insert_epi16(v, h, 0);
    if (nb > 1) memcpy(&h, p + bb, 2), v = _mm_insert_epi16(v, h, 1);
    if (nb > 2) memcpy(&h, p + 2 * bb, 2), v = _mm_insert_epi16(v, h, 2);
    if (nb > 3) memcpy(&h, p + 3 * bb, 2), v = _mm_insert_epi16(v, h, 3);
    return _mm512_cvtph_ps(_mm256_zextsi128_si256(v));
}

/* ---------------- Q4_0: chunks of 16 blocks of 18 bytes ---------------- */

/* The scales of the blocks of the chunk at p (the first nb valid, the others 0) as floats: the
 * scale of block k is word 9k, blocks 0..7 within the first 128 bytes, blocks 8..15 within the
 * 128 bytes from byte 144. */
AI __m512 q4_0_scales(const uint8_t *p, const int nb)
{
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         63, 54, 45, 36, 27, 18, 9, 0, 63, 54, 45, 36, 27, 18, 9, 0);
    __m512i a0, a1, b0, b1;
    if (nb == 16) {
        a0 = _mm512_loadu_si512(p), a1 = _mm512_loadu_si512(p + 64);
        b0 = _mm512_loadu_si512(p + 144), b1 = _mm512_loadu_si512(p + 208);
    } else if (nb <= 4) {   /* a short tail: the scales one by one */
        return tail_scales(p, nb, 18);
    } else {
        const int64_t v = (int64_t)nb * 18;
        a0 = load_upto(p, v), a1 = load_upto(p + 64, v - 64);
        b0 = load_upto(p + 144, v - 144), b1 = load_upto(p + 208, v - 208);
    }
    const __m512i w = _mm512_mask_blend_epi16(0xff00, _mm512_permutex2var_epi16(a0, idx, a1),
                                              _mm512_permutex2var_epi16(b0, idx, b1));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(w));
}

/* Adds the chunk of nb blocks at p (one row) times the activations of x from block b0. */
AI void q4_0_chunk(const uint8_t *p, const int nb, const x_prep *x, int64_t b0, __m512 *acc)
{
    const __m512i gf = _mm512_set_epi64(GF_HI, GF_HI, GF_LO, GF_LO, GF_HI, GF_HI, GF_LO, GF_LO);
    const __m512 dw = q4_0_scales(p, nb);
    const __m512 sc = _mm512_mul_ps(dw, _mm512_load_ps(x->d + b0));
    acc[3] = _mm512_fmadd_ps(dw, _mm512_load_ps(x->s + b0), acc[3]);   /* -8 d_w s: every lane is summed */
    const int8_t *xq = x->q + b0 * 32;
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
        if (nb == 16 || 2 * j < nb) {   /* constant j: the loop unrolls, acc stays in registers */
            const uint8_t *b = p + 36 * j;
            __m512i w = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b + 2)));
            if (nb == 16 || 2 * j + 1 < nb)   /* else the lanes of the missing block meet zero activations */
                w = _mm512_mask_broadcast_i32x4(w, 0xff00, _mm_loadu_si128((const __m128i *)(b + 20)));
            w = _mm512_gf2p8affine_epi64_epi8(w, gf, 0);   /* [lo(q0) hi(q0) lo(q1) hi(q1)] */
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_load_si512(xq + 64 * j));
            acc[j & 3] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pair_idx(j), sc),
                                         acc[j & 3]);
        }
    }
}

static float q4_0_row(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t b = 0;
    for (; b + 16 <= nblk; b += 16) {
        prefetch_span(row + b * 18, 288, end);
        q4_0_chunk(row + b * 18, 16, x, b, acc);
    }
    if (b < nblk) q4_0_chunk(row + b * 18, (int)(nblk - b), x, b, acc);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* ---------------- Q4_1: chunks of 16 blocks of 20 bytes ---------------- */

/* The scales (word 10k) and mins (word 10k + 1) of the chunk's blocks: blocks 0..6 lie within the
 * 128 bytes from 0, 6..12 within those from 120, 12..15 within those from 240 (read up to the
 * chunk's end only). */
AI void q4_1_scales(const uint8_t *p, const int nb, __m512 *d, __m512 *m)
{
    if (nb < 16 && nb <= 4) {
        *d = tail_scales(p, nb, 20), *m = tail_scales(p + 2, nb, 20);
        return;
    }
    const int64_t v = (int64_t)nb * 20;
    __m512i rd = _mm512_setzero_si512(), rm = rd;
    static const int base[3] = {0, 6, 12};
    _Pragma("GCC unroll 3") for (int w = 0; w < 3; w++) {
        const int64_t off = 20 * base[w];
        __m512i a0, a1;
        if (nb == 16 && w < 2) a0 = _mm512_loadu_si512(p + off), a1 = _mm512_loadu_si512(p + off + 64);
        else a0 = load_upto(p + off, v - off), a1 = load_upto(p + off + 64, v - off - 64);
        /* lane k takes word 10 (k - base) of the window (lanes outside it are not kept) */
        const __m512i idx = _mm512_mullo_epi16(_mm512_max_epi16(_mm512_sub_epi16(
            _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi16((short)base[w])), _mm512_setzero_si512()), _mm512_set1_epi16(10));
        const __mmask32 keep = (__mmask32)(w == 0 ? 0x003f : w == 1 ? 0x0fc0 : 0xf000);
        rd = _mm512_mask_mov_epi16(rd, keep, _mm512_permutex2var_epi16(a0, idx, a1));
        rm = _mm512_mask_mov_epi16(rm, keep, _mm512_permutex2var_epi16(a0, _mm512_add_epi16(idx, _mm512_set1_epi16(1)), a1));
    }
    *d = _mm512_cvtph_ps(_mm512_castsi512_si256(rd));
    *m = _mm512_cvtph_ps(_mm512_castsi512_si256(rm));
}

AI void q4_1_chunk(const uint8_t *p, const int nb, const x_prep *x, int64_t b0, __m512 *acc)
{
    const __m512i gf = _mm512_set_epi64(GF_HI, GF_HI, GF_LO, GF_LO, GF_HI, GF_HI, GF_LO, GF_LO);
    __m512 dw, mw;
    q4_1_scales(p, nb, &dw, &mw);
    const __m512 sc = _mm512_mul_ps(dw, _mm512_load_ps(x->d + b0));
    acc[3] = _mm512_fmadd_ps(mw, _mm512_load_ps(x->s + b0), acc[3]);   /* w = d q + m */
    const int8_t *xq = x->q + b0 * 32;
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
        if (nb == 16 || 2 * j < nb) {   /* constant j: the loop unrolls, acc stays in registers */
            const uint8_t *b = p + 40 * j;
            __m512i w = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b + 4)));
            if (nb == 16 || 2 * j + 1 < nb) w = _mm512_mask_broadcast_i32x4(w, 0xff00, _mm_loadu_si128((const __m128i *)(b + 24)));
            w = _mm512_gf2p8affine_epi64_epi8(w, gf, 0);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_load_si512(xq + 64 * j));
            acc[j & 3] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pair_idx(j), sc),
                                         acc[j & 3]);
        }
    }
}

static float q4_1_row(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t b = 0;
    for (; b + 16 <= nblk; b += 16) {
        prefetch_span(row + b * 20, 320, end);
        q4_1_chunk(row + b * 20, 16, x, b, acc);
    }
    if (b < nblk) q4_1_chunk(row + b * 20, (int)(nblk - b), x, b, acc);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* ---------------- Q8_0: chunks of 16 blocks of 34 bytes ---------------- */

/* The 16 scales: word 17k of the chunk; blocks 4g .. 4g+3 within the 128 bytes from 136 g. */
AI __m512 q8_0_scales(const uint8_t *p, const int nb)
{
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         51, 34, 17, 0, 51, 34, 17, 0, 51, 34, 17, 0, 51, 34, 17, 0);
    if (nb < 16 && nb <= 4) return tail_scales(p, nb, 34);
    __m512i r = _mm512_setzero_si512();
    const int64_t v = (int64_t)nb * 34;
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
        const uint8_t *q = p + 136 * g;
        __m512i a0, a1;
        if (nb == 16) a0 = _mm512_loadu_si512(q), a1 = _mm512_loadu_si512(q + 64);
        else a0 = load_upto(q, v - 136 * g), a1 = load_upto(q + 64, v - 136 * g - 64);
        r = _mm512_mask_mov_epi16(r, (__mmask32)(0xfu << (4 * g)), _mm512_permutex2var_epi16(a0, idx, a1));
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(r));
}

AI void q8_0_chunk(const uint8_t *p, const int nb, const x_prep *x, int64_t b0, __m512 *acc)
{
    const __m512 sc = _mm512_mul_ps(q8_0_scales(p, nb), _mm512_load_ps(x->d + b0));
    const int8_t *xq = x->q + b0 * 32;
    const int32_t *bias = x->bias + b0 * 8;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
        if (nb == 16 || 2 * j < nb) {   /* constant j: the loop unrolls, acc stays in registers */
            const uint8_t *b = p + 68 * j;
            __m512i w = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 2)));
            if (nb == 16 || 2 * j + 1 < nb) w = _mm512_inserti64x4(w, _mm256_loadu_si256((const __m256i *)(b + 36)), 1);
            else w = _mm512_zextsi256_si512(_mm512_castsi512_si256(w));
            w = _mm512_xor_si512(w, flip);   /* q + 128, unsigned */
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(bias + 16 * j), w, _mm512_load_si512(xq + 64 * j));
            acc[j & 3] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pair_idx(j), sc),
                                         acc[j & 3]);
        }
    }
}

static float q8_0_row(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t b = 0;
    for (; b + 16 <= nblk; b += 16) {
        prefetch_span(row + b * 34, 544, end);
        q8_0_chunk(row + b * 34, 16, x, b, acc);
    }
    if (b < nblk) q8_0_chunk(row + b * 34, (int)(nblk - b), x, b, acc);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

/* ---------------- Q4_K: blocks of 256 (144 bytes) ---------------- */

static float q4_k_row(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), gfhi = _mm512_set1_epi64(GF_HI);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t g = 0; g < nblk; g += 8, row += 144) {
        prefetch_span(row, 144, end);
        __m256 sc, mn;
        q4_k_scales(row, &sc, &mn);
        const __m256 s8 = _mm256_mul_ps(_mm256_mul_ps(sc, _mm256_set1_ps(f16_at(row))), _mm256_loadu_ps(x->d + g));
        /* - dmin mn s (s carries the sign): the 8 lanes join acc[1]'s low half, every lane is summed */
        acc[1] = _mm512_add_ps(acc[1], _mm512_zextps256_ps512(
                                           _mm256_mul_ps(_mm256_mul_ps(mn, _mm256_set1_ps(f16_at(row + 2))), _mm256_loadu_ps(x->s + g))));
        const __m512 s16 = _mm512_castps256_ps512(s8);
        const __m512i a = _mm512_loadu_si512(row + 16), b = _mm512_loadu_si512(row + 80);
        const __m512i w[4] = {_mm512_and_si512(a, lo4), _mm512_gf2p8affine_epi64_epi8(a, gfhi, 0),
                              _mm512_and_si512(b, lo4), _mm512_gf2p8affine_epi64_epi8(b, gfhi, 0)};
        static const int ga[4] = {0, 1, 4, 5};
        const int8_t *xq = x->q + g * 32;
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[k], _mm512_load_si512(xq + 64 * k));
            acc[k & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(_mm512_load_si512(PAIR_IDX[8 + ga[k]]), s16),
                                         acc[k & 1]);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

/* ---------------- Q6_K: blocks of 256 (210 bytes) ---------------- */

static float q6_k_row(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), gfhi = _mm512_set1_epi64(GF_HI);
    /* qh of a half, twice: the first 32 bytes give bits (0,1) or (4,5), the second (2,3) or (6,7) */
    const __m512i gq_lo = _mm512_set_epi64(GF_B45(2), GF_B45(2), GF_B45(2), GF_B45(2), GF_B45(0), GF_B45(0), GF_B45(0), GF_B45(0));
    const __m512i gq_hi = _mm512_set_epi64(GF_B45(6), GF_B45(6), GF_B45(6), GF_B45(6), GF_B45(4), GF_B45(4), GF_B45(4), GF_B45(4));
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t g = 0; g < nblk; g += 8, row += 210) {
        prefetch_span(row, 210, end);
        const __m512 sub = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + 192))));
        const __m512 s16 = _mm512_mul_ps(_mm512_mul_ps(sub, _mm512_set1_ps(f16_at(row + 208))), _mm512_loadu_ps(x->d16 + 2 * g));
        const int8_t *xq = x->q + g * 32;
        const int32_t *bias = x->bias + g * 8;
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512(row + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(row + 128 + 32 * h)));
            const __m512i w[2] = {
                _mm512_or_si512(_mm512_and_si512(l, lo4), _mm512_gf2p8affine_epi64_epi8(qh, gq_lo, 0)),
                _mm512_or_si512(_mm512_gf2p8affine_epi64_epi8(l, gfhi, 0), _mm512_gf2p8affine_epi64_epi8(qh, gq_hi, 0))};
            _Pragma("GCC unroll 2") for (int u = 0; u < 2; u++) {
                const int k = 2 * h + u;   /* elements 64k .. 64k+63: sub-scales 4k .. 4k+3 */
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_loadu_si512(bias + 16 * k), w[u], _mm512_load_si512(xq + 64 * k));
                const __m512i idx = _mm512_load_si512(QUAD_IDX[k]);
                acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, s16), acc[u]);
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

/* ---------------- rows x tokens ---------------- */

/* One row's dot product with one token; end: where the thread's rows end (prefetching stops there). */
typedef float (*row_fn)(const uint8_t *row, int64_t nblk, const x_prep *x, const uint8_t *end);

AI void rows_tokens(const row_fn fn, const uint8_t *w, size_t rb, int64_t nblk, const x_prep *xs, int n_tok, float *y,
                    int64_t ldy, hc_rows_next_fn next, void *ctx)
{
    int64_t row0, row1, pf;
    while (next(ctx, &row0, &row1, &pf)) {
        const uint8_t *end = w + (size_t)pf * rb;
        for (int64_t o = row0; o < row1; o++) {
            const uint8_t *row = w + (size_t)o * rb;
            for (int k = 0; k < n_tok; k++) y[(size_t)k * (size_t)ldy + (size_t)o] = fn(row, nblk, &xs[k], end);
        }
    }
}

int hc_matmul_avx512_has(hc_dtype t)
{
    return t == HC_Q4_0 || t == HC_Q4_1 || t == HC_Q8_0 || t == HC_Q4_K || t == HC_Q6_K;
}

#define STACK_PREP 65536
#define MAX_TOK_STACK 16

int hc_matmul_rows_avx512(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                          int64_t ldy, int64_t row0, int64_t row1)
{
    hc_one_range r = {row0, row1, 0};
    return hc_matmul_rows_avx512_dyn(wt, w, in, xq, n_tok, y, ldy, hc_one_range_next, &r);
}

int hc_matmul_rows_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                              int64_t ldy, hc_rows_next_fn next, void *ctx)
{
    if (n_tok >= HC_AVX512_BATCH_MIN && hc_matmul_batch_avx512_dyn(wt, w, in, xq, n_tok, y, ldy, next, ctx)) return 1;
    const int64_t nblk = in / 32;
    const size_t per = x_prep_bytes(wt, nblk), need = per * (size_t)n_tok, rb = hc_dtype_row_bytes(wt, in);
    _Alignas(64) uint8_t stack[STACK_PREP];
    x_prep xs_stack[MAX_TOK_STACK], *xs = xs_stack;
    uint8_t *mem = stack;
    void *heap = NULL;
    if (need > sizeof stack || n_tok > MAX_TOK_STACK) {
        if (posix_memalign(&heap, 64, need) != 0) return 0;
        if (n_tok > MAX_TOK_STACK && !(xs = malloc((size_t)n_tok * sizeof *xs))) {
            free(heap);
            return 0;
        }
        mem = heap;
    }
    const size_t xrb = hc_act_q8_bytes(in);
    for (int k = 0; k < n_tok; k++)
        x_prep_build(wt, (const hc_q8_block *)(const void *)((const uint8_t *)xq + (size_t)k * xrb), nblk, mem + (size_t)k * per, &xs[k]);
    switch (wt) {
    case HC_Q4_0: rows_tokens(q4_0_row, w, rb, nblk, xs, n_tok, y, ldy, next, ctx); break;
    case HC_Q4_1: rows_tokens(q4_1_row, w, rb, nblk, xs, n_tok, y, ldy, next, ctx); break;
    case HC_Q8_0: rows_tokens(q8_0_row, w, rb, nblk, xs, n_tok, y, ldy, next, ctx); break;
    case HC_Q4_K: rows_tokens(q4_k_row, w, rb, nblk, xs, n_tok, y, ldy, next, ctx); break;
    case HC_Q6_K: rows_tokens(q6_k_row, w, rb, nblk, xs, n_tok, y, ldy, next, ctx); break;
    default: break;
    }
    if (xs != xs_stack) free(xs);
    free(heap);
    return 1;
}
