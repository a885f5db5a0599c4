/* matmul_batch_avx512.c: AVX-512 VNNI kernels of the GGUF-type matmuls Q4_0/1, Q8_0, Q4_K, Q6_K for
 * many tokens (prefill): 16 tokens in the lanes of a vector, each weight read from memory once. */
#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "avx512_common.h"
#include "hc/hc_avx512.h"
#include "matmul_ggml.h"

/* The lanes of the accumulators are 16 tokens. The activations of each tile of 16 tokens are
 * transposed once per call so that the 32-bit lane t of vector (g, c) holds bytes 4c .. 4c+3 of
 * token t's block g (x_tile). A tile of R weight rows is unpacked once per block of the K dimension
 * into unsigned bytes (wq: Q4_0 q, Q8_0 q + 128, Q4_K q, Q6_K q + 32) and float scales; each
 * 4 bytes are broadcast to all lanes (a load) and vpdpbusd multiplies them by the 16 tokens' bytes.
 * Per group of 32 weights, row and tile of 16 tokens: 8 vpdpbusd, one conversion, two or three
 * float ops. The offsets (Q4_0 -8, Q8_0 -128, Q6_K -32) start the integer accumulators from the
 * tokens' sums (exact); Q4_1's and Q4_K's mins go through the tokens' block sums s = d_x * sum(q_x).
 * Loops: K blocks of KC elements (the transposed activations of a block stay in L2 while every
 * row tile passes), tiles of R rows (unpacked into L1), tiles of 16 tokens. Partial sums of the
 * K blocks are added into y. */

#define TOK 16          /* tokens per tile: the lanes */
#define R 8             /* rows per tile: each activation vector serves R rows */
#define KC 2048         /* elements of K per pass (a multiple of 256) */

/* One tile of 16 tokens, per group g of 32 elements: 8 vectors of transposed bytes, the tokens'
 * scales, block sums, and integer offsets (two per group: Q6_K's halves of 16). */
typedef struct x_group {
    __m512i q[8];
    __m512 d, s;
    __m512i bias[2];
} x_group;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Builds the tile of tokens t0 .. t0+nt-1 (nt <= 16; missing lanes are 0) for all nblk groups:
 * gathers, lane t from token t's block (16 tokens' blocks are 16 activation rows apart). */
static void x_tile_build(hc_dtype t, const uint8_t *xq, size_t xrb, int t0, int nt, int64_t nblk, x_group *xg)
{
    const int shift = t == HC_Q4_0 ? 3 : t == HC_Q8_0 ? 7 : t == HC_Q6_K ? 5 : -1;   /* offsets 8, 128, 32 */
    const __mmask16 m = hc_avx512_first(nt);
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)xrb));
    const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
    const uint8_t *base = xq + (size_t)t0 * xrb;
    for (int64_t g = 0; g < nblk; g++) {
        const uint8_t *b = base + (size_t)g * sizeof(hc_q8_block);
        x_group *o = xg + g;
        o->d = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, b + offsetof(hc_q8_block, d), 1);
        o->s = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, b + offsetof(hc_q8_block, s), 1);
        __m512i s0 = zero, s1 = zero;
        for (int c = 0; c < 8; c++) {
            o->q[c] = _mm512_mask_i32gather_epi32(zero, m, idx, b + offsetof(hc_q8_block, q) + 4 * c, 1);
            if (c < 4) s0 = _mm512_dpbusd_epi32(s0, ones, o->q[c]);
            else s1 = _mm512_dpbusd_epi32(s1, ones, o->q[c]);
        }
        if (shift < 0) {
            o->bias[0] = o->bias[1] = zero;
        } else if (t == HC_Q6_K) {   /* one offset sum per half of 16 */
            o->bias[0] = _mm512_sub_epi32(zero, _mm512_slli_epi32(s0, 5));
            o->bias[1] = _mm512_sub_epi32(zero, _mm512_slli_epi32(s1, 5));
        } else {
            o->bias[0] = _mm512_sub_epi32(zero, _mm512_sll_epi32(_mm512_add_epi32(s0, s1), _mm_cvtsi32_si128(shift)));
            o->bias[1] = zero;
        }
    }
}

/* A tile of rows unpacked over groups [0, ng) of a K block: per row, the bytes of each group
 * (32 per group), its scale (Q6_K: two, one per half of 16) and Q4_K's min. */
typedef struct w_tile {
    uint8_t *q;     /* [R][KC] */
    float *sc;      /* [R][KC / 16] */
    float *mn;      /* [R][KC / 32] */
} w_tile;

/* Unpacks groups [g0, g0 + ng) of row `row` (whole blocks: for the K-quants g0 and ng are multiples
 * of 8) into q (32 bytes a group), sc and mn. */
AI void unpack_row(const hc_dtype t, const uint8_t *row, int64_t g0, int ng, uint8_t *q, float *sc, float *mn)
{
    if (t == HC_Q4_0 || t == HC_Q4_1) {   /* Q4_1: the min is stored negated (acc -= s * mn) */
        const __m256i gf = _mm256_set_epi64x(GF_HI, GF_HI, GF_LO, GF_LO);
        const int bb = t == HC_Q4_0 ? 18 : 20, qo = t == HC_Q4_0 ? 2 : 4;
        for (int g = 0; g < ng; g++) {
            const uint8_t *b = row + (size_t)(g0 + g) * (size_t)bb;
            const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + qo)));
            _mm256_store_si256((__m256i *)(void *)(q + 32 * g), _mm256_gf2p8affine_epi64_epi8(v, gf, 0));
            sc[2 * g] = f16_at(b);
            if (t == HC_Q4_1) mn[g] = -f16_at(b + 2);
        }
    } else if (t == HC_Q8_0) {
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (int g = 0; g < ng; g++) {
            const uint8_t *b = row + (size_t)(g0 + g) * 34;
            _mm256_store_si256((__m256i *)(void *)(q + 32 * g),
                               _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)), flip));
            sc[2 * g] = f16_at(b);
        }
    } else if (t == HC_Q4_K) {
        const __m512i lo4 = _mm512_set1_epi8(0x0f), gfhi = _mm512_set1_epi64(GF_HI);
        for (int g = 0; g < ng; g += 8) {
            const uint8_t *b = row + (size_t)((g0 + g) / 8) * 144;
            __m256 s8, m8;
            q4_k_scales(b, &s8, &m8);
            s8 = _mm256_mul_ps(s8, _mm256_set1_ps(f16_at(b)));
            m8 = _mm256_mul_ps(m8, _mm256_set1_ps(f16_at(b + 2)));
            _Alignas(32) float sv[8];
            _mm256_store_ps(sv, s8);
            _mm256_storeu_ps(mn + g, m8);
            for (int j = 0; j < 8; j++) sc[2 * (g + j)] = sv[j];
            uint8_t *o = q + 32 * g;
            const __m512i a = _mm512_loadu_si512(b + 16), c = _mm512_loadu_si512(b + 80);
            const __m512i w[4] = {_mm512_and_si512(a, lo4), _mm512_gf2p8affine_epi64_epi8(a, gfhi, 0),
                                  _mm512_and_si512(c, lo4), _mm512_gf2p8affine_epi64_epi8(c, gfhi, 0)};
            static const int ga[4] = {0, 1, 4, 5};   /* vector k holds groups ga[k] and ga[k] + 2 */
            for (int k = 0; k < 4; k++) {
                _mm256_store_si256((__m256i *)(void *)(o + 32 * ga[k]), _mm512_castsi512_si256(w[k]));
                _mm256_store_si256((__m256i *)(void *)(o + 32 * (ga[k] + 2)), _mm512_extracti64x4_epi64(w[k], 1));
            }
        }
    } else {   /* Q6_K */
        const __m512i lo4 = _mm512_set1_epi8(0x0f), gfhi = _mm512_set1_epi64(GF_HI);
        const __m512i gq_lo = _mm512_set_epi64(GF_B45(2), GF_B45(2), GF_B45(2), GF_B45(2), GF_B45(0), GF_B45(0), GF_B45(0), GF_B45(0));
        const __m512i gq_hi = _mm512_set_epi64(GF_B45(6), GF_B45(6), GF_B45(6), GF_B45(6), GF_B45(4), GF_B45(4), GF_B45(4), GF_B45(4));
        for (int g = 0; g < ng; g += 8) {
            const uint8_t *b = row + (size_t)((g0 + g) / 8) * 210;
            const __m512 sub = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192))));
            _mm512_storeu_ps(sc + 2 * g, _mm512_mul_ps(sub, _mm512_set1_ps(f16_at(b + 208))));
            for (int h = 0; h < 2; h++) {
                const __m512i l = _mm512_loadu_si512(b + 64 * h);
                const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
                _mm512_store_si512(q + 32 * g + 128 * h,
                                   _mm512_or_si512(_mm512_and_si512(l, lo4), _mm512_gf2p8affine_epi64_epi8(qh, gq_lo, 0)));
                _mm512_store_si512(q + 32 * g + 128 * h + 64,
                                   _mm512_or_si512(_mm512_gf2p8affine_epi64_epi8(l, gfhi, 0),
                                                   _mm512_gf2p8affine_epi64_epi8(qh, gq_hi, 0)));
            }
        }
    }
}

/* rr rows (rr <= R) of the unpacked tile times one tile of tokens over groups [0, ng) of the K
 * block: returns the per-row partial sums in acc[r] (lanes: tokens). */
AI void tile_dot(const hc_dtype t, const int rr, const w_tile *wt, const x_group *xg, int ng, __m512 *acc)
{
    _Pragma("GCC unroll 8") for (int r = 0; r < rr; r++) acc[r] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const x_group *x = xg + g;
        __m512i a[R], b[R];
        _Pragma("GCC unroll 8") for (int r = 0; r < rr; r++) {
            a[r] = t == HC_Q4_K || t == HC_Q4_1 ? _mm512_setzero_si512() : x->bias[0];
            if (t == HC_Q6_K) b[r] = x->bias[1];
        }
        _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
            const __m512i xv = _mm512_load_si512(&x->q[c]);
            _Pragma("GCC unroll 8") for (int r = 0; r < rr; r++) {
                int32_t w4;
                memcpy(&w4, wt->q + (size_t)r * KC + 32 * g + 4 * c, 4);
                if (t == HC_Q6_K && c >= 4) b[r] = _mm512_dpbusd_epi32(b[r], _mm512_set1_epi32(w4), xv);
                else a[r] = _mm512_dpbusd_epi32(a[r], _mm512_set1_epi32(w4), xv);
            }
        }
        const __m512 dx = _mm512_load_ps((const float *)&x->d);
        _Pragma("GCC unroll 8") for (int r = 0; r < rr; r++) {
            const float *sc = wt->sc + (size_t)r * (KC / 16) + 2 * g;
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r]), _mm512_mul_ps(dx, _mm512_set1_ps(sc[0])), acc[r]);
            if (t == HC_Q6_K)
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(b[r]), _mm512_mul_ps(dx, _mm512_set1_ps(sc[1])), acc[r]);
            if (t == HC_Q4_K || t == HC_Q4_1)
                acc[r] = _mm512_fnmadd_ps(_mm512_load_ps((const float *)&x->s), _mm512_set1_ps(wt->mn[(size_t)r * (KC / 32) + g]), acc[r]);
        }
    }
}

/* Adds (first: stores) acc[r] lanes 0..nt-1 into y[(t0 + k) * ldy + o + r]. */
AI void tile_store(const int rr, const __m512 *acc, int first, float *y, int64_t ldy, int t0, int nt, int64_t o)
{
    _Pragma("GCC unroll 8") for (int r = 0; r < rr; r++) {
        _Alignas(64) float v[TOK];
        _mm512_store_ps(v, acc[r]);
        for (int k = 0; k < nt; k++) {
            float *p = y + (size_t)(t0 + k) * (size_t)ldy + (size_t)(o + r);
            *p = first ? v[k] : *p + v[k];
        }
    }
}

AI void batch_rows(const hc_dtype t, const uint8_t *w, int64_t in, const x_group *xg, int n_tiles, int n_tok,
                   float *y, int64_t ldy, hc_rows_next_fn next, void *ctx, w_tile *wt)
{
    const int64_t nblk = in / 32;
    const size_t rb = hc_dtype_row_bytes(t, in);
    int64_t row0, row1, pf;
    while (next(ctx, &row0, &row1, &pf)) {   /* every K block of a chunk of rows, then the next chunk */
        for (int64_t k0 = 0; k0 < nblk; k0 += KC / 32) {
            const int ng = (int)min64(KC / 32, nblk - k0);
            const size_t seg0 = hc_dtype_row_bytes(t, k0 * 32), seg = hc_dtype_row_bytes(t, (int64_t)ng * 32);
            for (int64_t o = row0; o < row1; o += R) {
                const int rr = (int)min64(R, row1 - o);
                for (int r = 0; r < rr; r++)
                    unpack_row(t, w + (size_t)(o + r) * rb, k0, ng, wt->q + (size_t)r * KC, wt->sc + (size_t)r * (KC / 16),
                               wt->mn + (size_t)r * (KC / 32));
                /* the next tile's weights come from memory while this one is multiplied (the rows'
                 * K segments are apart: the hardware prefetcher does not follow them) */
                for (int64_t r = o + R; r < o + 2 * R && r < row1; r++)
                    for (size_t l = 0; l < seg + 63; l += 64)
                        _mm_prefetch((const char *)w + (size_t)r * rb + seg0 + l, _MM_HINT_T0);
                for (int u = 0; u < n_tiles; u++) {
                    const int nt = (int)min64(TOK, n_tok - u * TOK);
                    __m512 acc[R];
                    const x_group *x = xg + (size_t)u * (size_t)nblk + k0;
                    if (rr == R) tile_dot(t, R, wt, x, ng, acc);
                    else if (rr >= 4) {
                        tile_dot(t, 4, wt, x, ng, acc);
                        for (int r = 4; r < rr; r++) {
                            w_tile one = {wt->q + (size_t)r * KC, wt->sc + (size_t)r * (KC / 16), wt->mn + (size_t)r * (KC / 32)};
                            tile_dot(t, 1, &one, x, ng, acc + r);
                        }
                    } else {
                        for (int r = 0; r < rr; r++) {
                            w_tile one = {wt->q + (size_t)r * KC, wt->sc + (size_t)r * (KC / 16), wt->mn + (size_t)r * (KC / 32)};
                            tile_dot(t, 1, &one, x, ng, acc + r);
                        }
                    }
                    tile_store(rr, acc, k0 == 0, y, ldy, u * TOK, nt, o);
                }
            }
        }
    }
}

#define BATCH_KERNEL(name, type)                                                                              \
    static __attribute__((noinline)) void name(const uint8_t *w, int64_t in, const x_group *xg, int n_tiles,   \
                                               int n_tok, float *y, int64_t ldy, hc_rows_next_fn next,         \
                                               void *ctx, w_tile *wt)                                          \
    {                                                                                                          \
        batch_rows(type, w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, wt);                                    \
    }

BATCH_KERNEL(batch_q4_0, HC_Q4_0)
BATCH_KERNEL(batch_q4_1, HC_Q4_1)
BATCH_KERNEL(batch_q8_0, HC_Q8_0)
BATCH_KERNEL(batch_q4_k, HC_Q4_K)
BATCH_KERNEL(batch_q6_k, HC_Q6_K)

int hc_matmul_batch_avx512(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y, int64_t ldy,
                           int64_t row0, int64_t row1)
{
    hc_one_range r = {row0, row1, 0};
    return hc_matmul_batch_avx512_dyn(wt, w, in, xq, n_tok, y, ldy, hc_one_range_next, &r);
}

int hc_matmul_batch_avx512_dyn(hc_dtype wt, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                               int64_t ldy, hc_rows_next_fn next, void *ctx)
{
    const int64_t nblk = in / 32;
    const int n_tiles = (n_tok + TOK - 1) / TOK;
    const size_t xbytes = (size_t)n_tiles * (size_t)nblk * sizeof(x_group);
    const size_t wbytes = (size_t)R * (KC + KC / 16 * sizeof(float) + KC / 32 * sizeof(float));
    void *mem = NULL;
    if (posix_memalign(&mem, 64, xbytes + wbytes) != 0) return 0;
    x_group *xg = mem;
    w_tile tile = {(uint8_t *)mem + xbytes, NULL, NULL};
    tile.sc = (float *)(void *)(tile.q + (size_t)R * KC);
    tile.mn = tile.sc + (size_t)R * (KC / 16);
    const size_t xrb = hc_act_q8_bytes(in);
    for (int u = 0; u < n_tiles; u++)
        x_tile_build(wt, xq, xrb, u * TOK, (int)min64(TOK, n_tok - u * TOK), nblk, xg + (size_t)u * (size_t)nblk);
    switch (wt) {
    case HC_Q4_0: batch_q4_0(w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, &tile); break;
    case HC_Q4_1: batch_q4_1(w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, &tile); break;
    case HC_Q8_0: batch_q8_0(w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, &tile); break;
    case HC_Q4_K: batch_q4_k(w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, &tile); break;
    case HC_Q6_K: batch_q6_k(w, in, xg, n_tiles, n_tok, y, ldy, next, ctx, &tile); break;
    default: break;
    }
    free(mem);
    return 1;
}
