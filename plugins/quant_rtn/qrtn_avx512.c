/* qrtn_avx512.c: the AVX-512 (VNNI, GFNI) decode kernel of the group-wise integer matmul (qrtn.h)
 * for a few tokens, the activation layout it reads, and the dispatch to the prefill kernel. */
#include "qrtn_avx512.h"

#include <stdlib.h>

#include "qrtn.h"

/* How a row is read: the codes stream once in their packed layout, two blocks of 32 per 512-bit
 * vector (qrtn_avx512.h unpacks a unit of 128 with 1.5 (2 bits), 2 (3 bits), 2 (4 bits) operations
 * per vector). vpdpbusd multiplies the unsigned codes by the int8 activations, 4 products per
 * 32-bit lane; each lane then fits in 16 bits (at most 4 x 56 x 127), so vpdpwssd multiplies it by
 * the block's integer activation multiplier (c_b << (A - a_b), qrtn.h) and adds it to the group's
 * int32 sums -- exact, as in the AVX2 kernel. One conversion and one FMA per group (and per pair of
 * groups of 32) scale by d_g D_g 2^-A; the minimums m_g sg_g are added 16 groups at a time. 8 bits:
 * the signed codes' magnitudes meet the activations with the codes' signs (the lanes exceed 16 bits:
 * vpmulld). Four rows share each activation load; the rows are prefetched 12 KiB ahead.
 *
 * The activations, laid out once per matmul after the standard ones (hc_qrtn_prepare_input), per
 * token: for each pair of blocks (2p, 2p + 1), 64 bytes of int8 activations, then the two blocks'
 * multipliers as 16 int32 (8 lanes each, the high 16 bits zero as vpdpwssd needs); a missing last
 * block is zero. The group bases and sums (dg, sg) are read from the standard layout. */

#define R 4             /* rows sharing each activation load (at most) */
/* Rows per tile: 2 and 3 bits spend more operations per byte of weights, and gain from sharing
 * the activation loads; 4 and 8 bits read from memory fastest one row at a time (measured, cold,
 * 1 thread: 4 rows of 4 bits 40-42 GB/s, 1 row 44-49). */
#define R_OF(bits) ((bits) <= 3 ? 4 : 1)
#define SEG 128         /* blocks per segment: its groups' scale products sit in a stack array */
#define PF_DIST 12288   /* bytes of weights prefetched ahead (as the GGUF kernels: 12 KiB) */
#define PAIR 128        /* bytes of a pair of blocks in the layout above */

typedef struct geom {
    int64_t cols, nb, G;
    size_t rb;
    const uint8_t *w, *w_end;   /* the matrix and its end (prefetching stops there) */
} geom;

/* One token: the pairs, and the standard layout's group bases and sums. */
typedef struct xin {
    const uint8_t *pairs;
    const float *dg, *sg;
} xin;

static int64_t round8(int64_t n) { return (n + 7) & ~(int64_t)7; }

size_t hc_qrtn_avx512_decode_bytes(int64_t cols) { return (size_t)((cols / 32 + 1) / 2) * PAIR; }

size_t hc_qrtn_avx512_section_bytes(int bits, int group, int64_t cols, int n_tok)
{
    if (n_tok <= 0 || hc_qrtn_input_row_bytes(bits, group, cols) == 0) return 0;
    if (n_tok >= HC_QRTN_BATCH_MIN) return hc_qrtn_avx512_batch_bytes(group, cols, n_tok);
    return hc_qrtn_avx512_decode_bytes(cols) * (size_t)n_tok;
}

void hc_qrtn_avx512_prepare(int bits, int group, int64_t cols, int n_tok, void *xq)
{
    const size_t xrb = hc_qrtn_input_row_bytes(bits, group, cols);
    if (n_tok <= 0 || xrb == 0) return;
    if (n_tok >= HC_QRTN_BATCH_MIN) {
        hc_qrtn_avx512_batch_prepare(bits, group, cols, n_tok, xq);
        return;
    }
    const int64_t nb = cols / 32;
    uint8_t *sec = (uint8_t *)xq + (size_t)n_tok * xrb;
    for (int t = 0; t < n_tok; t++) {
        const uint8_t *std = (const uint8_t *)xq + (size_t)t * xrb;
        uint8_t *out = sec + (size_t)t * hc_qrtn_avx512_decode_bytes(cols);
        for (int64_t b = 0; b < (nb + 1) / 2 * 2; b++) {
            uint8_t *pair = out + (size_t)(b / 2) * PAIR;
            __m256i q = _mm256_setzero_si256(), c = q;
            if (b < nb) {
                const uint8_t *blk = std + (size_t)b * HC_QRTN_XBLOCK;
                q = _mm256_loadu_si256((const __m256i *)blk);
                c = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(blk + 32)));   /* c >= 0 */
            }
            _mm256_storeu_si256((__m256i *)(pair + 32 * (b & 1)), q);
            _mm256_storeu_si256((__m256i *)(pair + 64 + 32 * (b & 1)), c);
        }
    }
}

/* ---------------- tiles ---------------- */

/* s + the multiplier times the dot product of the two blocks w with the activations of pair xp,
 * as 16 int32 lanes. */
AI __m512i pair_acc(const int bits, __m512i s, __m512i w, const uint8_t *xp)
{
    const __m512i x = _mm512_loadu_si512(xp), c = _mm512_loadu_si512(xp + 64);
    if (bits == 8) {   /* |w| . (x with w's sign): both operands as vpdpbusd wants them */
        const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), xs);
        return _mm512_add_epi32(s, _mm512_mullo_epi32(d, c));
    }
    return _mm512_dpwssd_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x), c);
}

/* lanes 0-7: dd[0], lanes 8-15: dd[1] (two groups of 32 in one vector) */
AI __m512 scale_pair(const float *dd)
{
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(dd)));
}

AI __m512 fma_s(__m512i s, __m512 d, __m512 acc) { return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc); }

/* For RR rows from row pointer rows[r] and groups [g0, g0 + ng): dd[r][k] = d_{g0+k} dg_{g0+k} and
 * acc[r] += sum_k m_{g0+k} sg_{g0+k} (in 16 lanes; 8 bits: m + 128 d, the codes being stored minus
 * 128). Masked loads: nothing past the groups is read. */
AI void seg_prep(const int bits, const int RR, const uint8_t *const *rows, int64_t G, int64_t g0, int64_t ng,
                 const xin *x, float (*dd)[SEG + 16], __m512 *acc)
{
    for (int64_t k = 0; k < ng; k += 16) {
        const __mmask16 m = hc_avx512_first(ng - k);
        const __m512 dg = _mm512_maskz_loadu_ps(m, x->dg + g0 + k), sg = _mm512_maskz_loadu_ps(m, x->sg + g0 + k);
        _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) {
            const __m512 d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rows[r] + 2 * (g0 + k)));
            __m512 mn = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rows[r] + 2 * (G + g0 + k)));
            if (bits == 8) mn = _mm512_fmadd_ps(d, _mm512_set1_ps(128.0f), mn);
            _mm512_storeu_ps(dd[r] + k, _mm512_mul_ps(d, dg));
            acc[r] = _mm512_fmadd_ps(mn, sg, acc[r]);
        }
    }
}

/* RR rows from o against one token. pf: how many bytes after each row its prefetches go (0: none):
 * each row's prefetches run at its own pace, so the lines arrive as the tile that pf rows later
 * reads them (several rows are read in step: a single cursor would run through them one by one). */
AI void decode_tile(const int bits, const int bpg, const int RR, const geom *gm, int64_t o, const xin *x, float *y,
                    size_t pf)
{
    const uint8_t *rows[R], *codes[R];
    __m512 acc[R];
    _Alignas(64) float dd[R][SEG + 16];
    _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) {
        rows[r] = gm->w + (size_t)(o + r) * gm->rb;
        codes[r] = rows[r] + 4 * gm->G;
        acc[r] = _mm512_setzero_ps();
    }
    if (pf && rows[0] + pf + (size_t)RR * gm->rb > gm->w_end) pf = 0;   /* the matrix's last rows */
    if (pf)
        _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++)
            for (size_t l = 0; l < 4 * (size_t)gm->G + 63; l += 64) _mm_prefetch((const char *)rows[r] + pf + l, _MM_HINT_T0);
    for (int64_t b0 = 0; b0 < gm->nb; b0 += SEG) {
        const int64_t b1 = gm->nb - b0 < SEG ? gm->nb : b0 + SEG;
        seg_prep(bits, RR, rows, gm->G, b0 / bpg, (b1 - b0 + bpg - 1) / bpg, x, dd, acc);
        int64_t b = b0;
        for (; b + 4 <= b1; b += 4) {
            const uint8_t *xp = x->pairs + (size_t)(b / 2) * PAIR;
            _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) {
                const uint8_t *c = codes[r] + b * 4 * bits;
                if (pf) {
                    _mm_prefetch((const char *)c + pf, _MM_HINT_T0);
                    if (bits == 8) _mm_prefetch((const char *)c + pf + 64, _MM_HINT_T0);
                }
                __m512i w[2];
                unpack128_512(bits, c, w);
                const float *d = dd[r] + (b - b0) / bpg;
                if (bpg == 4) {
                    const __m512i s = pair_acc(bits, pair_acc(bits, _mm512_setzero_si512(), w[0], xp), w[1], xp + PAIR);
                    acc[r] = fma_s(s, _mm512_set1_ps(d[0]), acc[r]);
                } else {
                    const __m512i s0 = pair_acc(bits, _mm512_setzero_si512(), w[0], xp);
                    const __m512i s1 = pair_acc(bits, _mm512_setzero_si512(), w[1], xp + PAIR);
                    acc[r] = fma_s(s0, bpg == 2 ? _mm512_set1_ps(d[0]) : scale_pair(d), acc[r]);
                    acc[r] = fma_s(s1, bpg == 2 ? _mm512_set1_ps(d[1]) : scale_pair(d + 2), acc[r]);
                }
            }
        }
        if (b + 2 <= b1) {   /* a unit of 64 (it starts a group) */
            const uint8_t *xp = x->pairs + (size_t)(b / 2) * PAIR;
            _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) {
                if (pf) _mm_prefetch((const char *)codes[r] + b * 4 * bits + pf, _MM_HINT_T0);
                const __m512i s = pair_acc(bits, _mm512_setzero_si512(), unpack64_512(bits, codes[r] + b * 4 * bits), xp);
                const float *d = dd[r] + (b - b0) / bpg;
                acc[r] = fma_s(s, bpg == 1 ? scale_pair(d) : _mm512_set1_ps(d[0]), acc[r]);
            }
            b += 2;
        }
        if (b < b1) {   /* a unit of 32 (maybe inside the short last group that a unit of 64 began) */
            const uint8_t *xp = x->pairs + (size_t)(b / 2) * PAIR;
            _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) {
                if (pf) _mm_prefetch((const char *)codes[r] + b * 4 * bits + pf, _MM_HINT_T0);
                const __m512i s = pair_acc(bits, _mm512_setzero_si512(), unpack32_512(bits, codes[r] + b * 4 * bits), xp);
                acc[r] = fma_s(s, _mm512_set1_ps(dd[r][(b - b0) / bpg]), acc[r]);
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < RR; r++) y[o + r] = _mm512_reduce_add_ps(acc[r]);
}

AI void rows_decode(const int bits, const int bpg, const geom *gm, const xin *xs, int n_tok, float *y, int64_t ldy,
                    int64_t row0, int64_t row1)
{
    /* prefetch whole tiles ahead, at least PF_DIST bytes */
    const int RT = R_OF(bits);
    const size_t tile = (size_t)RT * gm->rb, pf = (PF_DIST + tile - 1) / tile * tile;
    int64_t o = row0;
    for (; o + RT <= row1; o += RT)
        for (int t = 0; t < n_tok; t++)   /* the rows are in L1 for the tokens after the first */
            decode_tile(bits, bpg, RT, gm, o, &xs[t], y + (size_t)t * (size_t)ldy, t ? 0 : pf);
    for (; o < row1; o++)
        for (int t = 0; t < n_tok; t++) decode_tile(bits, bpg, 1, gm, o, &xs[t], y + (size_t)t * (size_t)ldy, 0);
}

#define DECODE_KERNEL(name, b, g)                                                                             \
    static __attribute__((noinline)) void name(const geom *gm, const xin *xs, int n_tok, float *y, int64_t ldy, \
                                               int64_t row0, int64_t row1)                                    \
    {                                                                                                         \
        rows_decode(b, g / 32, gm, xs, n_tok, y, ldy, row0, row1);                                            \
    }

DECODE_KERNEL(dec_b2_g32, 2, 32)
DECODE_KERNEL(dec_b2_g64, 2, 64)
DECODE_KERNEL(dec_b2_g128, 2, 128)
DECODE_KERNEL(dec_b3_g32, 3, 32)
DECODE_KERNEL(dec_b3_g64, 3, 64)
DECODE_KERNEL(dec_b3_g128, 3, 128)
DECODE_KERNEL(dec_b4_g32, 4, 32)
DECODE_KERNEL(dec_b4_g64, 4, 64)
DECODE_KERNEL(dec_b4_g128, 4, 128)
DECODE_KERNEL(dec_b8_g32, 8, 32)
DECODE_KERNEL(dec_b8_g64, 8, 64)
DECODE_KERNEL(dec_b8_g128, 8, 128)

typedef void (*decode_fn)(const geom *, const xin *, int, float *, int64_t, int64_t, int64_t);

void hc_qrtn_matmul_rows_avx512(int bits, int group, const void *packed, int64_t cols, int64_t rows, const void *xq,
                                int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    if (n_tok >= HC_QRTN_BATCH_MIN) {
        hc_qrtn_matmul_batch_avx512(bits, group, packed, cols, xq, n_tok, y, ldy, row0, row1);
        return;
    }
    static const decode_fn fns[4][3] = {{dec_b2_g32, dec_b2_g64, dec_b2_g128}, {dec_b3_g32, dec_b3_g64, dec_b3_g128},
                                        {dec_b4_g32, dec_b4_g64, dec_b4_g128}, {dec_b8_g32, dec_b8_g64, dec_b8_g128}};
    const size_t rb = hc_qrtn_row_bytes(bits, group, cols), xrb = hc_qrtn_input_row_bytes(bits, group, cols);
    const geom gm = {cols, cols / 32, hc_qrtn_groups(group, cols), rb, packed, (const uint8_t *)packed + rb * (size_t)rows};
    xin xs[HC_QRTN_BATCH_MIN];
    const uint8_t *sec = (const uint8_t *)xq + (size_t)n_tok * xrb;
    for (int t = 0; t < n_tok; t++) {
        const uint8_t *std = (const uint8_t *)xq + (size_t)t * xrb;
        xs[t].pairs = sec + (size_t)t * hc_qrtn_avx512_decode_bytes(cols);
        xs[t].dg = (const float *)(const void *)(std + (size_t)gm.nb * HC_QRTN_XBLOCK);
        xs[t].sg = xs[t].dg + round8(gm.G);
    }
    const int bi = bits == 2 ? 0 : bits == 3 ? 1 : bits == 4 ? 2 : 3, gi = group == 32 ? 0 : group == 64 ? 1 : 2;
    fns[bi][gi](&gm, xs, n_tok, y, ldy, row0, row1);
}
