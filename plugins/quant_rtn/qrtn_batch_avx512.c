/* qrtn_batch_avx512.c: the AVX-512 VNNI prefill kernel of the group-wise integer matmul (qrtn.h):
 * 16 tokens in the lanes of a vector, each weight read from memory once per call. */
#include <stdlib.h>

#include "qrtn.h"
#include "qrtn_avx512.h"

/* The lanes of the accumulators are 16 tokens. prepare_input lays the activations out once per
 * matmul, per tile of 16 tokens: for each block of 32, 8 vectors whose 32-bit lane t holds bytes
 * 4c .. 4c+3 of token t's int8 activations, then a float vector of the block's step for each
 * token, dg_g (c_b << (A - a_b)) = D_g c_b 2^-a_b; for each group, the tokens' sums sg_g (the
 * standard layout's). A tile of R rows is unpacked once per block of KC columns into bytes q 2^a_b
 * (qrtn_avx512.h; 8 bits: the code q itself, unsigned) and float scales and minimums; each 4 bytes
 * are broadcast to all lanes and vpdpbusd multiplies them by the 16 tokens' bytes. Per block, row
 * and tile of tokens: 8 vpdpbusd, a conversion and an FMA by the step (a block's lane sum, up to
 * 32 x 56 x 127, is exact in float; group sums of steps times them would overflow int32), per group
 * two FMAs (d_g, and m_g times the sums; 8 bits: the codes being unsigned here, m_g alone).
 * Loops: K blocks of KC columns (the tiles of tokens' part of a block stay in L2 while every row
 * tile passes), tiles of R rows (unpacked into L1), tiles of 16 tokens. */

#define TOK 16          /* tokens per tile: the lanes */
#define R 8             /* rows per tile: each activation vector serves R rows */
#define KC 2048         /* columns per K block (a multiple of 128: blocks of K start units and groups) */
#define XBLK 576        /* bytes of a block in a tile of tokens: 8 x 64 activation bytes, 64 of steps */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static size_t tile_bytes(int group, int64_t cols)
{
    return (size_t)(cols / 32) * XBLK + (size_t)hc_qrtn_groups(group, cols) * 64;
}

size_t hc_qrtn_avx512_batch_bytes(int group, int64_t cols, int n_tok)
{
    return tile_bytes(group, cols) * (size_t)((n_tok + TOK - 1) / TOK);
}

void hc_qrtn_avx512_batch_prepare(int bits, int group, int64_t cols, int n_tok, void *xq)
{
    const size_t xrb = hc_qrtn_input_row_bytes(bits, group, cols), tb = tile_bytes(group, cols);
    const int64_t nb = cols / 32, G = hc_qrtn_groups(group, cols), bpg = group / 32;
    const size_t dg_off = (size_t)nb * HC_QRTN_XBLOCK, sg_off = dg_off + (size_t)((G + 7) & ~(int64_t)7) * sizeof(float);
    uint8_t *sec = (uint8_t *)xq + (size_t)n_tok * xrb;
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)xrb));
    for (int t0 = 0; t0 < n_tok; t0 += TOK) {
        const int nt = (int)min64(TOK, n_tok - t0);
        const __mmask16 m = hc_avx512_first(nt);
        const uint8_t *base = (const uint8_t *)xq + (size_t)t0 * xrb;
        uint8_t *tile = sec + (size_t)(t0 / TOK) * tb;
        for (int64_t g = 0; g < G; g++) {
            const __m512 dg = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + dg_off + 4 * g, 1);
            _mm512_storeu_ps((float *)(void *)(tile + (size_t)nb * XBLK + 64 * g),
                             _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base + sg_off + 4 * g, 1));
            for (int64_t b = g * bpg; b < min64((g + 1) * bpg, nb); b++) {
                const uint8_t *blk = base + (size_t)b * HC_QRTN_XBLOCK;
                uint8_t *o = tile + (size_t)b * XBLK;
                for (int c = 0; c < 8; c++)
                    _mm512_storeu_si512(o + 64 * c, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, blk + 4 * c, 1));
                const __m512i cs = _mm512_and_si512(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, blk + 32, 1),
                                                    _mm512_set1_epi32(0xffff));
                _mm512_storeu_ps((float *)(void *)(o + 512), _mm512_mul_ps(dg, _mm512_cvtepi32_ps(cs)));
            }
        }
    }
}

/* ---------------- a tile of rows ---------------- */

/* R rows' columns [k0, k0 + KC) unpacked: bytes (32 per block), and per group its scale and minimum. */
typedef struct w_tile {
    _Alignas(64) uint8_t q[R][KC];
    float d[R][KC / 32], m[R][KC / 32];
} w_tile;

/* Columns [c0, c1) of a row (c0 a multiple of 128 and of the group) into q, its groups' scales
 * into d and m (from group c0 / group on). */
AI void unpack_row(const int bits, const int group, const uint8_t *row, int64_t cols, int64_t G, int64_t c0, int64_t c1,
                   uint8_t *q, float *d, float *m)
{
    const uint8_t *codes = row + 4 * G;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    int64_t c = c0;
    for (; c + 128 <= c1; c += 128) {
        __m512i w[2];
        unpack128_512(bits, codes + c * bits / 8, w);
        if (bits == 8) w[0] = _mm512_xor_si512(w[0], flip), w[1] = _mm512_xor_si512(w[1], flip);
        _mm512_store_si512(q + (c - c0), w[0]);
        _mm512_store_si512(q + (c - c0) + 64, w[1]);
    }
    if (c + 64 <= c1) {
        __m512i w = unpack64_512(bits, codes + c * bits / 8);
        if (bits == 8) w = _mm512_xor_si512(w, flip);
        _mm512_store_si512(q + (c - c0), w);
        c += 64;
    }
    if (c < c1) {
        __m512i w = unpack32_512(bits, codes + c * bits / 8);
        if (bits == 8) w = _mm512_xor_si512(w, flip);
        _mm256_store_si256((__m256i *)(void *)(q + (c - c0)), _mm512_castsi512_si256(w));
    }
    const int64_t g0 = c0 / group, ng = (c1 - c0 + group - 1) / group;
    for (int64_t k = 0; k < ng; k += 16) {
        const __mmask16 mk = hc_avx512_first(ng - k);
        _mm512_mask_storeu_ps(d + k, mk, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, row + 2 * (g0 + k))));
        _mm512_mask_storeu_ps(m + k, mk, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, row + 2 * (G + g0 + k))));
    }
    (void)cols;
}

/* The RR rows' (from r0) integer dot products with block b of a tile of tokens (at xb), as floats. */
AI void block_dot(const int RR, const w_tile *wt, int r0, int64_t b, const uint8_t *xb, __m512 *out)
{
    __m512i dot[R];
    _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) dot[r] = _mm512_setzero_si512();
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
        const __m512i xv = _mm512_loadu_si512(xb + 64 * c);
        _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) {
            int32_t w4;
            memcpy(&w4, &wt->q[r0 + r][32 * b + 4 * c], 4);
            dot[r] = _mm512_dpbusd_epi32(dot[r], _mm512_set1_epi32(w4), xv);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) out[r] = _mm512_cvtepi32_ps(dot[r]);
}

/* RR rows (from row r0 of the tile) against one tile of tokens over blocks [0, nbk) of the K block
 * (x: the tile's first block of it, sg: its first group's sums): per-row sums in acc[r]. */
AI void tile_dot(const int bpg, const int RR, const w_tile *wt, int r0, const uint8_t *x, const uint8_t *sg, int64_t nbk,
                 __m512 *acc)
{
    _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b0 = 0, g = 0; b0 < nbk; b0 += bpg, g++) {
        const int64_t b1 = min64(b0 + bpg, nbk);
        __m512 f[R], p[R];
        block_dot(RR, wt, r0, b0, x + (size_t)b0 * XBLK, p);
        const __m512 st0 = _mm512_loadu_ps((const float *)(const void *)(x + (size_t)b0 * XBLK + 512));
        _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) f[r] = _mm512_mul_ps(p[r], st0);
        for (int64_t b = b0 + 1; b < b1; b++) {
            const uint8_t *xb = x + (size_t)b * XBLK;
            block_dot(RR, wt, r0, b, xb, p);
            const __m512 st = _mm512_loadu_ps((const float *)(const void *)(xb + 512));
            _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) f[r] = _mm512_fmadd_ps(p[r], st, f[r]);
        }
        const __m512 s = _mm512_loadu_ps((const float *)(const void *)(sg + 64 * g));
        _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) {
            acc[r] = _mm512_fmadd_ps(f[r], _mm512_set1_ps(wt->d[r0 + r][g]), acc[r]);
            acc[r] = _mm512_fmadd_ps(s, _mm512_set1_ps(wt->m[r0 + r][g]), acc[r]);
        }
    }
}

/* Adds (first: stores) acc[r] lanes 0..nt-1 into y[(t0 + k) * ldy + o + r]. */
AI void tile_store(const int RR, const __m512 *acc, int first, float *y, int64_t ldy, int t0, int nt, int64_t o)
{
    _Pragma("GCC unroll 8") for (int r = 0; r < RR; r++) {
        _Alignas(64) float v[TOK];
        _mm512_store_ps(v, acc[r]);
        for (int k = 0; k < nt; k++) {
            float *p = y + (size_t)(t0 + k) * (size_t)ldy + (size_t)(o + r);
            *p = first ? v[k] : *p + v[k];
        }
    }
}

AI void batch_rows(const int bits, const int group, const uint8_t *w, int64_t cols, const uint8_t *sec, int n_tok,
                   float *y, int64_t ldy, int64_t row0, int64_t row1, w_tile *wt)
{
    const int bpg = group / 32;
    const int64_t nb = cols / 32, G = hc_qrtn_groups(group, cols);
    const size_t rb = hc_qrtn_row_bytes(bits, group, cols), tb = tile_bytes(group, cols);
    const int n_tiles = (n_tok + TOK - 1) / TOK;
    for (int64_t k0 = 0; k0 < cols; k0 += KC) {
        const int64_t k1 = min64(k0 + KC, cols), nbk = (k1 - k0) / 32;
        const size_t seg0 = 4 * (size_t)G + (size_t)(k0 * bits / 8), seg = (size_t)((k1 - k0) * bits / 8);
        for (int64_t o = row0; o < row1; o += R) {
            const int rr = (int)min64(R, row1 - o);
            for (int r = 0; r < rr; r++)
                unpack_row(bits, group, w + (size_t)(o + r) * rb, cols, G, k0, k1, wt->q[r], wt->d[r], wt->m[r]);
            /* the next tile's K segment comes from memory while this one is multiplied */
            for (int64_t r = o + R; r < o + 2 * R && r < row1; r++) {
                const char *p = (const char *)w + (size_t)r * rb;
                _mm_prefetch(p + 2 * (k0 / group), _MM_HINT_T0);
                _mm_prefetch(p + 2 * (G + k0 / group), _MM_HINT_T0);
                for (size_t l = 0; l < seg + 63; l += 64) _mm_prefetch(p + seg0 + l, _MM_HINT_T0);
            }
            for (int u = 0; u < n_tiles; u++) {
                const int nt = (int)min64(TOK, n_tok - u * TOK);
                const uint8_t *tile = sec + (size_t)u * tb;
                const uint8_t *x = tile + (size_t)(k0 / 32) * XBLK, *sg = tile + (size_t)nb * XBLK + 64 * (size_t)(k0 / group);
                __m512 acc[R];
                int r = 0;
                if (rr == R) {
                    tile_dot(bpg, R, wt, 0, x, sg, nbk, acc);
                    r = R;
                }
                for (; r + 4 <= rr; r += 4) tile_dot(bpg, 4, wt, r, x, sg, nbk, acc + r);
                for (; r < rr; r++) tile_dot(bpg, 1, wt, r, x, sg, nbk, acc + r);
                tile_store(rr, acc, k0 == 0, y, ldy, u * TOK, nt, o);
            }
        }
    }
}

#define BATCH_KERNEL(name, b, g)                                                                            \
    static __attribute__((noinline)) void name(const uint8_t *w, int64_t cols, const uint8_t *sec, int n_tok, \
                                               float *y, int64_t ldy, int64_t row0, int64_t row1, w_tile *wt) \
    {                                                                                                       \
        batch_rows(b, g, w, cols, sec, n_tok, y, ldy, row0, row1, wt);                                      \
    }

BATCH_KERNEL(bat_b2_g32, 2, 32)
BATCH_KERNEL(bat_b2_g64, 2, 64)
BATCH_KERNEL(bat_b2_g128, 2, 128)
BATCH_KERNEL(bat_b3_g32, 3, 32)
BATCH_KERNEL(bat_b3_g64, 3, 64)
BATCH_KERNEL(bat_b3_g128, 3, 128)
BATCH_KERNEL(bat_b4_g32, 4, 32)
BATCH_KERNEL(bat_b4_g64, 4, 64)
BATCH_KERNEL(bat_b4_g128, 4, 128)
BATCH_KERNEL(bat_b8_g32, 8, 32)
BATCH_KERNEL(bat_b8_g64, 8, 64)
BATCH_KERNEL(bat_b8_g128, 8, 128)

typedef void (*batch_fn)(const uint8_t *, int64_t, const uint8_t *, int, float *, int64_t, int64_t, int64_t, w_tile *);

void hc_qrtn_matmul_batch_avx512(int bits, int group, const void *packed, int64_t cols, const void *xq, int n_tok,
                                 float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    static const batch_fn fns[4][3] = {{bat_b2_g32, bat_b2_g64, bat_b2_g128}, {bat_b3_g32, bat_b3_g64, bat_b3_g128},
                                       {bat_b4_g32, bat_b4_g64, bat_b4_g128}, {bat_b8_g32, bat_b8_g64, bat_b8_g128}};
    w_tile wt;   /* 20 KiB on the stack: L1-resident while its rows are in use */
    const int bi = bits == 2 ? 0 : bits == 3 ? 1 : bits == 4 ? 2 : 3, gi = group == 32 ? 0 : group == 64 ? 1 : 2;
    const uint8_t *sec = (const uint8_t *)xq + (size_t)n_tok * hc_qrtn_input_row_bytes(bits, group, cols);
    fns[bi][gi](packed, cols, sec, n_tok, y, ldy, row0, row1, &wt);
}
