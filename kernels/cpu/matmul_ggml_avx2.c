/* matmul_ggml_avx2.c: AVX2/FMA/F16C kernels of the GGUF-type matmuls: integer dot products of
 * unpacked weight nibbles with int8 activations (maddubs/madd), f16/bf16/f32 with FMA; batches of
 * tokens with the tokens in the vector lanes (see "batches of tokens" below). */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_avx2.h"
#include "matmul_ggml.h"

#define AI static inline __attribute__((always_inline))

/* Row and token tiling: a micro-kernel computes R rows x T tokens with R*T accumulators, so that
 * each unpacked weight group serves T tokens and each activation load serves R rows.
 *
 * Measured on the target (Zen 3, 2 vCPUs), per group of 32 weights and row, decoding: Q4_0 and
 * Q8_0 about 3.4 cycles, 4.4 for Q4_K. The vector pipes are the limit (vcvtdq2ps shares its
 * pipes with the FMAs), so the loop is kept to: unpack (2 ops), maddubs, madd, cvt, 1-2 FMAs.
 * Tried and dropped because they measured slower: converting the f16 scales of 8 blocks at once
 * (blends or vpgatherdd) into an array ahead of the loop, folding the activation scales into
 * vectors per 8 groups, int->float by the 2^23 magic-number trick, 2 or 8 rows per decode tile,
 * horizontal adds (vphaddd is slow here). */
#define DECODE_ROWS 4     /* n_tok == 1 */
#define ROW_CHUNK 16      /* 1 < n_tok < BATCH_MIN_TOK and the K-quants without a batch kernel:
                             rows kept hot in L1 while every token group passes */
#define MAX_R 4
#define PREFETCH_TILES 2  /* decoding prefetches the rows this many tiles ahead */
#define MAX_T 4

/* ---------------- activation quantizer ---------------- */

void hc_act_quantize_q8_avx2(const float *x, hc_q8_block *y, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / HC_Q8_BLOCK; b++, x += HC_Q8_BLOCK) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        float d = hc_hmax8(m) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        const __m256i q[4] = { _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid)), _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid)),
                               _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid)), _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid)) };
        hc_store_i8x32(y[b].q, q);
        y[b].d = d;
        y[b].s = d * (float)hc_hsum8_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    }
}

/* ---------------- block types with int8 activations ---------------- */

/* Groups of 32 weights share one scale (and min). A K-quant block holds 8 such groups whose
 * 6-bit scales are unpacked together into small arrays (ds, ms) once per block and row. */
#define KGROUPS 8

AI int groups_per_block(const hc_dtype t) { return t == HC_Q4_K || t == HC_Q6_K ? 8 : 1; }
AI int has_min(const hc_dtype t) { return t == HC_Q4_1 || t == HC_Q5_1 || t == HC_Q4_K; }

AI size_t block_bytes(const hc_dtype t)
{
    switch (t) {
    case HC_Q4_0: return 18;
    case HC_Q4_1: return 20;
    case HC_Q5_0: return 22;
    case HC_Q5_1: return 24;
    case HC_Q8_0: return 34;
    case HC_Q4_K: return 144;
    case HC_Q6_K: return 210;
    default: return 0;
    }
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15), then high nibbles (16..31). */
AI __m256i nibbles32(const uint8_t *qs)
{
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    q = _mm256_srlv_epi32(q, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
}

/* The 32 bits of qh -> byte i = 0x10 when bit i is set (the fifth bit of Q5_0/Q5_1). */
AI __m256i fifth_bits(const uint8_t *p)
{
    const __m256i spread = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                              0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    uint32_t qh;
    memcpy(&qh, p, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Scale d and min m of a 32-element block at b: its weights are d * q + m with q unsigned as
 * group_weights returns it, except Q4_0 and Q5_0 (q - 8, q - 16: see group_acc). */
AI void group_scales(const hc_dtype t, const uint8_t *b, float *d, float *m)
{
    *d = hc_f16_at(b);
    if (t == HC_Q4_1 || t == HC_Q5_1) *m = hc_f16_at(b + 2);
}

/* Q6_K's sixteen int8 sub-scales as int16 pairs: lo holds scales 0..3 | 8..11 and hi 4..7 |
 * 12..15, each duplicated into a 32-bit lane, so one vpermd gives a group's two scales. */
typedef struct q6_scales {
    __m256i lo, hi;
} q6_scales;

AI q6_scales q6_load_scales(const uint8_t *b)
{
    __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
    q6_scales r = {_mm256_unpacklo_epi16(s, s), _mm256_unpackhi_epi16(s, s)};
    return r;
}

/* The 32 weights of group j as bytes: unsigned (0..31, 0..63 for Q6_K), signed for Q8_0.
 * For Q6_K, *sc gets the int16 sub-scales of the two halves of 16. */
AI __m256i group_weights(const hc_dtype t, const uint8_t *b, const int j, const q6_scales *q6, __m256i *sc)
{
    switch (t) {
    case HC_Q4_0: return nibbles32(b + 2);
    case HC_Q4_1: return nibbles32(b + 4);
    case HC_Q5_0: return _mm256_or_si256(nibbles32(b + 6), fifth_bits(b + 2));
    case HC_Q5_1: return _mm256_or_si256(nibbles32(b + 8), fifth_bits(b + 4));
    case HC_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case HC_Q4_K: {
        __m256i q = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j >> 1)));
        if (j & 1) q = _mm256_srli_epi16(q, 4);
        return _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
    }
    case HC_Q6_K: {
        const int half = j >> 2, k = j & 3;
        __m256i lo = _mm256_loadu_si256((const __m256i *)(b + 64 * half + 32 * (k & 1)));
        if (k >> 1) lo = _mm256_srli_epi16(lo, 4);
        lo = _mm256_and_si256(lo, _mm256_set1_epi8(0x0f));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * half));
        if (k < 2)
            hi = _mm256_slli_epi16(hi, 4 - 2 * k);
        else if (k > 2)
            hi = _mm256_srli_epi16(hi, 2);
        hi = _mm256_and_si256(hi, _mm256_set1_epi8(0x30));
        /* scales a = 8 half + 2k and a + 1 */
        const int a = 8 * half + 2 * k, dw = (a & 3) + 4 * (a >> 3);
        const __m256i ctrl = _mm256_setr_epi32(dw, dw, dw, dw, dw + 1, dw + 1, dw + 1, dw + 1);
        *sc = _mm256_permutevar8x32_epi32((a & 7) < 4 ? q6->lo : q6->hi, ctrl);
        return _mm256_or_si256(lo, hi);
    }
    default: return _mm256_setzero_si256();
    }
}

/* The integer dot product of a weight group with 32 int8 activations, as 8 int32 partial sums.
 * x32 = maddubs(32, x), only for Q6_K (its weights are stored as q + 32). */
AI __m256i group_dot(const hc_dtype t, __m256i w, __m256i sc, __m256i x, __m256i x32)
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (t == HC_Q8_0)
        return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), ones);
    if (t == HC_Q6_K)
        return _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(w, x), x32), sc);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
}

/* acc += the group's contribution, f = the int dot as floats, dx and s of the activation block.
 * The 8 lanes are summed at the end, so a per-lane offset of s counts 8 s. The free min of
 * Q4_1/Q5_1/Q4_K goes to macc (m * s in every lane, scaled by 1/8 at the end). */
AI void group_acc(const hc_dtype t, __m256 *acc, __m256 *macc, __m256 f, __m256 d, __m256 m, __m256 dx, __m256 s)
{
    switch (t) {
    case HC_Q4_0:   /* w = d (q - 8): d (dx dot - 8 s) */
        *acc = _mm256_fmadd_ps(_mm256_fmsub_ps(f, dx, s), d, *acc);
        break;
    case HC_Q5_0:   /* w = d (q - 16) */
        *acc = _mm256_fmadd_ps(_mm256_fmsub_ps(f, dx, _mm256_add_ps(s, s)), d, *acc);
        break;
    case HC_Q4_1: case HC_Q5_1: case HC_Q4_K:   /* w = d q + m */
        *acc = _mm256_fmadd_ps(_mm256_mul_ps(f, dx), d, *acc);
        *macc = _mm256_fmadd_ps(m, s, *macc);
        break;
    default:        /* Q8_0, Q6_K: w = d q */
        *acc = _mm256_fmadd_ps(_mm256_mul_ps(f, dx), d, *acc);
        break;
    }
}

/* The scales (and mins) of the 8 groups of the K-quant block at b. */
AI void k_block_scales(const hc_dtype t, const uint8_t *b, float *ds, float *ms)
{
    if (t == HC_Q4_K) {   /* the eight 6-bit scales and mins, unpacked 4 at a time */
        uint32_t a, m, c;
        memcpy(&a, b + 4, 4);
        memcpy(&m, b + 8, 4);
        memcpy(&c, b + 12, 4);
        const uint32_t m3f = 0x3f3f3f3fu, m0f = 0x0f0f0f0fu, m03 = 0x03030303u;
        uint64_t sc = (a & m3f) | (uint64_t)((c & m0f) | (((a >> 6) & m03) << 4)) << 32;
        uint64_t mn = (m & m3f) | (uint64_t)(((c >> 4) & m0f) | (((m >> 6) & m03) << 4)) << 32;
        __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
        __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
        _mm256_storeu_ps(ds, _mm256_mul_ps(scf, _mm256_set1_ps(hc_f16_at(b))));
        _mm256_storeu_ps(ms, _mm256_mul_ps(mnf, _mm256_set1_ps(-hc_f16_at(b + 2))));
        return;
    }
    _mm256_storeu_ps(ds, _mm256_set1_ps(hc_f16_at(b + 208)));   /* Q6_K: one d, sub-scales in q6_scales */
}

/* R rows from `o` times T tokens from t0: y[(t0+t)*ldy + o+r]. */
AI void q_tile(const hc_dtype ty, const int R, const int T, const uint8_t *w, size_t rb, int64_t o,
               const uint8_t *xq, size_t xrb, int t0, int64_t nblk, float *y, int64_t ldy)
{
    const int gpb = groups_per_block(ty);
    const size_t bb = block_bytes(ty);
    __m256 acc[MAX_R][MAX_T], macc[MAX_R][MAX_T];   /* fixed sizes (not VLAs): registers */
    const uint8_t *rows[MAX_R];
    const hc_q8_block *xs[MAX_T];
    float ds[MAX_R][KGROUPS], ms[MAX_R][KGROUPS];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) rows[r] = w + (size_t)(o + r) * rb;
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) xs[t] = (const hc_q8_block *)(xq + (size_t)(t0 + t) * xrb);
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[r][t] = macc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblk; b++) {
        const size_t boff = (size_t)b * bb;
        q6_scales q6[MAX_R];
        if (gpb > 1)
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) k_block_scales(ty, rows[r] + boff, ds[r], ms[r]);
        if (ty == HC_Q6_K)
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) q6[r] = q6_load_scales(rows[r] + boff);
        if (T == 1) /* decoding: the same block of the next R rows, so that their streams start early */
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
                for (size_t l = 0; l < bb; l += 64)
                    _mm_prefetch((const char *)rows[r] + PREFETCH_TILES * (size_t)R * rb + boff + l, _MM_HINT_T0);
        _Pragma("GCC unroll 8") for (int j = 0; j < gpb; j++) {
            const int64_t gi = b * gpb + j;
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                float dsc = 0.0f, msc = 0.0f;
                if (gpb == 1) group_scales(ty, rows[r] + boff, &dsc, &msc);
                else dsc = ds[r][j], msc = ms[r][j];
                __m256i sc = _mm256_setzero_si256();
                __m256i wv = group_weights(ty, rows[r] + boff, j, &q6[r], &sc);
                __m256 d = _mm256_set1_ps(dsc), m = _mm256_set1_ps(msc);
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                    const hc_q8_block *xb = xs[t] + gi;
                    __m256i x = _mm256_loadu_si256((const __m256i *)xb->q);
                    __m256i x32 = ty == HC_Q6_K ? _mm256_maddubs_epi16(_mm256_set1_epi8(32), x) : x;
                    __m256 f = _mm256_cvtepi32_ps(group_dot(ty, wv, sc, x, x32));
                    group_acc(ty, &acc[r][t], &macc[r][t], f, d, m, _mm256_broadcast_ss(&xb->d),
                              _mm256_broadcast_ss(&xb->s));
                }
            }
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            __m256 a = has_min(ty) ? _mm256_fmadd_ps(macc[r][t], _mm256_set1_ps(0.125f), acc[r][t]) : acc[r][t];
            y[(size_t)(t0 + t) * (size_t)ldy + (size_t)(o + r)] = hc_hsum8(a);
        }
}

/* ---------------- batches of tokens (n_tok >= BATCH_MIN_TOK), 32-element block types ----------------
 * The lanes of the accumulators are 8 tokens instead of 8 partial sums of one token. For a tile of
 * 8 tokens the activations are transposed once (per chunk of rows) so that the 32-bit lane t of
 * vector (g, c) holds bytes 4c .. 4c+3 of token t's block g; a weight row's group is unpacked once
 * to bytes, and its 4-byte chunk c broadcast to all lanes. maddubs then gives, for every token at
 * once, the products of 4 elements; for 4-bit weights these sums fit int16 over the whole group
 * (8 * 2 * 15 * 127 < 2^15), so the per-group work per row is 8 maddubs + 8 adds, then one madd,
 * cvt and two FMAs (scale d_w * d_x[t], offset m_w * s[t]) for all 8 tokens. */
#define BATCH_TOK 8
#define BATCH_MIN_TOK 4         /* fewer tokens take the q_tile path */
#define BATCH_MAX_R 4
#define BATCH_CHUNK_BYTES 98304 /* weight rows per chunk: about this many bytes, kept in L2 */

AI int batch_type(const hc_dtype t)
{
    return t == HC_Q4_0 || t == HC_Q4_1 || t == HC_Q5_0 || t == HC_Q5_1 || t == HC_Q8_0 || t == HC_Q4_K;
}

/* The offset of the weights of a block: w = d q + offset (q unsigned, as group_weights gives it). */
AI float block_offset(const hc_dtype t, const uint8_t *b, float d)
{
    switch (t) {
    case HC_Q4_0: return -8.0f * d;
    case HC_Q5_0: return -16.0f * d;
    case HC_Q4_1: case HC_Q5_1: return hc_f16_at(b + 2);
    default: return 0.0f;
    }
}

/* One tile of 8 tokens: the transposed activation bytes, the block scales and sums by group. */
typedef struct batch_x {
    __m256i *q;     /* [nblk][8]: vector c of group g */
    float *d, *s;   /* [nblk][8 tokens] */
} batch_x;

/* Transposes tokens t0 .. t0+nt-1 (nt <= 8; the others are zero) of xq into bx. */
static void batch_x_build(batch_x *bx, const uint8_t *xq, size_t xrb, int t0, int nt, int64_t nblk)
{
    const hc_q8_block *xs[BATCH_TOK];
    for (int t = 0; t < BATCH_TOK; t++) xs[t] = t < nt ? (const hc_q8_block *)(xq + (size_t)(t0 + t) * xrb) : NULL;
    for (int64_t g = 0; g < nblk; g++) {
        __m256i r[8];
        for (int t = 0; t < BATCH_TOK; t++) {
            r[t] = xs[t] ? _mm256_loadu_si256((const __m256i *)xs[t][g].q) : _mm256_setzero_si256();
            bx->d[8 * g + t] = xs[t] ? xs[t][g].d : 0.0f;
            bx->s[8 * g + t] = xs[t] ? xs[t][g].s : 0.0f;
        }
        __m256i u[8];
        for (int h = 0; h < 2; h++) {   /* tokens 4h .. 4h+3 */
            __m256i a0 = _mm256_unpacklo_epi32(r[4 * h], r[4 * h + 1]), a1 = _mm256_unpackhi_epi32(r[4 * h], r[4 * h + 1]);
            __m256i a2 = _mm256_unpacklo_epi32(r[4 * h + 2], r[4 * h + 3]), a3 = _mm256_unpackhi_epi32(r[4 * h + 2], r[4 * h + 3]);
            u[4 * h + 0] = _mm256_unpacklo_epi64(a0, a2);   /* dwords 0 | 4 */
            u[4 * h + 1] = _mm256_unpackhi_epi64(a0, a2);   /* 1 | 5 */
            u[4 * h + 2] = _mm256_unpacklo_epi64(a1, a3);   /* 2 | 6 */
            u[4 * h + 3] = _mm256_unpackhi_epi64(a1, a3);   /* 3 | 7 */
        }
        __m256i *o = bx->q + 8 * g;
        for (int c = 0; c < 4; c++) {
            o[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
            o[c + 4] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
        }
    }
}

/* R rows from o times TT tiles of 8 tokens (bx[0 .. TT-1], tokens t0 ..): y[(t0+t)*ldy + o+r] for
 * t < nt. Two tiles share each unpacked weight group and its scales (the per-group work of a row
 * is about as much as 8 maddubs). ngroups: groups of 32 weights in a row. */
AI void batch_tile(const hc_dtype ty, const int R, const int TT, const uint8_t *w, size_t rb, int64_t o,
                   const batch_x *bx, int64_t ngroups, int t0, int nt, float *y, int64_t ldy)
{
    const size_t bb = block_bytes(ty);
    const int gpb = groups_per_block(ty);
    const __m256i ones = _mm256_set1_epi16(1);
    /* int16 sums of this many chunks fit: 4 bits 8, 5 bits 4, Q8_0 (|w| <= 128, sign moved to x) 1 */
    const int fold = ty == HC_Q8_0 ? 1 : (ty == HC_Q5_0 || ty == HC_Q5_1) ? 4 : 8;
    __m256 acc[BATCH_MAX_R][2];
    const uint8_t *rows[BATCH_MAX_R];
    _Alignas(32) uint8_t wq[BATCH_MAX_R][32];
    float ds[BATCH_MAX_R][KGROUPS], ms[BATCH_MAX_R][KGROUPS];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
        rows[r] = w + (size_t)(o + r) * rb;
        _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) acc[r][u] = _mm256_setzero_ps();
    }
    for (int64_t blk = 0; blk < ngroups / gpb; blk++) {
        const size_t boff = (size_t)blk * bb;
        if (gpb > 1)
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) k_block_scales(ty, rows[r] + boff, ds[r], ms[r]);
        for (int j = 0; j < gpb; j++) {
            const int64_t g = blk * gpb + j;
            __m256i a16[BATCH_MAX_R][2], a32[BATCH_MAX_R][2];
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                __m256i sc;
                _mm256_store_si256((__m256i *)wq[r], group_weights(ty, rows[r] + boff, j, NULL, &sc));
                _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) a16[r][u] = a32[r][u] = _mm256_setzero_si256();
            }
            /* the chunks are broadcast from memory (a load, no shuffle): keep gcc from rebuilding
             * them out of the registers */
            __asm__ volatile("" ::: "memory");
            _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
                __m256i x[2];
                _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) x[u] = _mm256_load_si256(bx[u].q + 8 * g + c);
                _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                    int32_t chunk;
                    memcpy(&chunk, wq[r] + 4 * c, 4);
                    const __m256i wb = _mm256_set1_epi32(chunk);
                    const __m256i wa = ty == HC_Q8_0 ? _mm256_abs_epi8(wb) : wb;
                    _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) {
                        __m256i p = _mm256_maddubs_epi16(wa, ty == HC_Q8_0 ? _mm256_sign_epi8(x[u], wb) : x[u]);
                        if (fold == 1) {
                            a32[r][u] = _mm256_add_epi32(a32[r][u], _mm256_madd_epi16(p, ones));
                            __asm__("" : "+x"(a32[r][u]));   /* a running sum, not a tree of spilled terms */
                        } else {
                            a16[r][u] = _mm256_add_epi16(a16[r][u], p);
                            __asm__("" : "+x"(a16[r][u]));
                            if (fold == 4 && c == 3) {
                                a32[r][u] = _mm256_madd_epi16(a16[r][u], ones);
                                a16[r][u] = _mm256_setzero_si256();
                            }
                        }
                    }
                }
            }
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                const uint8_t *b = rows[r] + boff;
                const float d = gpb > 1 ? ds[r][j] : hc_f16_at(b);
                const __m256 dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(gpb > 1 ? ms[r][j] : block_offset(ty, b, d));
                _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) {
                    __m256i i32 = fold == 1 ? a32[r][u]
                                : fold == 4 ? _mm256_add_epi32(a32[r][u], _mm256_madd_epi16(a16[r][u], ones))
                                            : _mm256_madd_epi16(a16[r][u], ones);
                    acc[r][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_mul_ps(_mm256_load_ps(bx[u].d + 8 * g), dv),
                                                acc[r][u]);
                    if (ty != HC_Q8_0) acc[r][u] = _mm256_fmadd_ps(mv, _mm256_load_ps(bx[u].s + 8 * g), acc[r][u]);
                }
            }
        }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 2") for (int u = 0; u < TT; u++) {
            _Alignas(32) float v[8];
            _mm256_store_ps(v, acc[r][u]);
            for (int t = 8 * u; t < nt && t < 8 * u + 8; t++) y[(size_t)(t0 + t) * (size_t)ldy + (size_t)(o + r)] = v[t - 8 * u];
        }
}

/* Rows [row0, row1) times all tokens, in chunks of rows that stay in L2 while every tile of
 * tokens passes. Returns 0 (nothing done) when the scratch cannot be had.
 * Measured (Zen 3, one thread, 576 x 1536, 64..512 tokens): about 1.35 cycles per group of 32,
 * row and token for the 4-bit types and Q4_K, 1.6 for Q5_x, 2 for Q8_0, against 3.5 for the
 * 4-token q_tile path; 2 rows x 16 tokens measured faster than 4 x 8 and 3 x 16. */
AI int batch_rows(const hc_dtype ty, const void *w, int64_t in, const void *xq, int n_tok, float *y,
                  int64_t ldy, int64_t row0, int64_t row1)
{
    const int64_t nblk = in / 32;   /* groups of 32 */
    const size_t rb = (size_t)(nblk / groups_per_block(ty)) * block_bytes(ty), xrb = hc_act_q8_bytes(in);
    const size_t tile_bytes = (size_t)nblk * (8 * 32 + 16 * sizeof(float));
    void *mem = NULL;
    if (posix_memalign(&mem, 64, 2 * tile_bytes) != 0) return 0;
    batch_x bx[2];
    for (int u = 0; u < 2; u++) {
        bx[u].q = (__m256i *)((char *)mem + (size_t)u * tile_bytes);
        bx[u].d = (float *)(bx[u].q + 8 * nblk);
        bx[u].s = bx[u].d + 8 * nblk;
    }
    int64_t chunk = (int64_t)(BATCH_CHUNK_BYTES / rb) & ~(int64_t)3;
    if (chunk < 8) chunk = 8;
    for (int64_t o0 = row0; o0 < row1; o0 += chunk) {
        const int64_t o1 = o0 + chunk < row1 ? o0 + chunk : row1;
        for (int t0 = 0; t0 < n_tok; t0 += 2 * BATCH_TOK) {
            const int nt = n_tok - t0 < 2 * BATCH_TOK ? n_tok - t0 : 2 * BATCH_TOK;
            batch_x_build(&bx[0], xq, xrb, t0, nt < BATCH_TOK ? nt : BATCH_TOK, nblk);
            int64_t o = o0;
            if (nt > BATCH_TOK) {   /* two tiles of tokens */
                batch_x_build(&bx[1], xq, xrb, t0 + BATCH_TOK, nt - BATCH_TOK, nblk);
                for (; o + 2 <= o1; o += 2) batch_tile(ty, 2, 2, w, rb, o, bx, nblk, t0, nt, y, ldy);
                for (; o < o1; o++) batch_tile(ty, 1, 2, w, rb, o, bx, nblk, t0, nt, y, ldy);
            } else {
                for (; o + 4 <= o1; o += 4) batch_tile(ty, 4, 1, w, rb, o, bx, nblk, t0, nt, y, ldy);
                for (; o < o1; o++) batch_tile(ty, 1, 1, w, rb, o, bx, nblk, t0, nt, y, ldy);
            }
        }
    }
    free(mem);
    return 1;
}

AI void q_rows(const hc_dtype ty, const void *w, int64_t in, const void *xq, int n_tok, float *y,
               int64_t ldy, int64_t row0, int64_t row1)
{
    const int64_t nblk = in / (32 * groups_per_block(ty));
    const size_t rb = (size_t)nblk * block_bytes(ty), xrb = hc_act_q8_bytes(in);
    const uint8_t *wb = w, *xb = xq;
    if (n_tok == 1) {
        int64_t o = row0;
        for (; o + DECODE_ROWS <= row1; o += DECODE_ROWS) q_tile(ty, DECODE_ROWS, 1, wb, rb, o, xb, xrb, 0, nblk, y, ldy);
        for (; o < row1; o++) q_tile(ty, 1, 1, wb, rb, o, xb, xrb, 0, nblk, y, ldy);
        return;
    }
    if (batch_type(ty) && n_tok >= BATCH_MIN_TOK && batch_rows(ty, w, in, xq, n_tok, y, ldy, row0, row1)) return;
    for (int64_t o0 = row0; o0 < row1; o0 += ROW_CHUNK) {
        int64_t o1 = o0 + ROW_CHUNK < row1 ? o0 + ROW_CHUNK : row1;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            int64_t o = o0;
            switch (n_tok - t0 >= 4 ? 4 : n_tok - t0) {
            case 4:   /* 8 accumulators; the types with a min (8 more) or sub-scales take 1 row */
                if (!has_min(ty) && ty != HC_Q6_K)
                    for (; o + 2 <= o1; o += 2) q_tile(ty, 2, 4, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                for (; o < o1; o++) q_tile(ty, 1, 4, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                break;
            case 3:
                for (; o < o1; o++) q_tile(ty, 1, 3, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                break;
            case 2:
                for (; o + 2 <= o1; o += 2) q_tile(ty, 2, 2, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                for (; o < o1; o++) q_tile(ty, 1, 2, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                break;
            default:
                for (; o + DECODE_ROWS <= o1; o += DECODE_ROWS) q_tile(ty, DECODE_ROWS, 1, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                for (; o < o1; o++) q_tile(ty, 1, 1, wb, rb, o, xb, xrb, t0, nblk, y, ldy);
                break;
            }
        }
    }
}

#define Q_KERNEL(name, type)                                                                       \
    static __attribute__((noinline)) void name(const void *w, int64_t in, const void *xq, int n_tok, \
                                               float *y, int64_t ldy, int64_t row0, int64_t row1)  \
    {                                                                                              \
        q_rows(type, w, in, xq, n_tok, y, ldy, row0, row1);                                        \
    }

Q_KERNEL(rows_q4_0, HC_Q4_0)
Q_KERNEL(rows_q4_1, HC_Q4_1)
Q_KERNEL(rows_q5_0, HC_Q5_0)
Q_KERNEL(rows_q5_1, HC_Q5_1)
Q_KERNEL(rows_q8_0, HC_Q8_0)
Q_KERNEL(rows_q4_k, HC_Q4_K)
Q_KERNEL(rows_q6_k, HC_Q6_K)

/* ---------------- float types: f32, f16, bf16 ---------------- */

AI void f_tile(const hc_dtype ty, const int R, const int T, const uint8_t *w, size_t rb, int64_t o,
               const float *x, int64_t in, int t0, float *y, int64_t ldy)
{
    __m256 acc[MAX_R][MAX_T];
    const uint8_t *rows[MAX_R];
    const float *xs[MAX_T];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) rows[r] = w + (size_t)(o + r) * rb;
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) xs[t] = x + (size_t)(t0 + t) * (size_t)in;
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= in; i += 8) {
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            __m256 wv = hc_float_row_load8(ty, rows[r], i);
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[t] + i), acc[r][t]);
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            float s = hc_hsum8(acc[r][t]);
            for (int64_t k = i; k < in; k++) s += hc_float_row_at(ty, rows[r], k) * xs[t][k];
            y[(size_t)(t0 + t) * (size_t)ldy + (size_t)(o + r)] = s;
        }
}

AI void f_rows(const hc_dtype ty, const void *w, int64_t in, const float *x, int n_tok, float *y,
               int64_t ldy, int64_t row0, int64_t row1)
{
    const size_t rb = hc_dtype_row_bytes(ty, in);
    const uint8_t *wb = w;
    for (int64_t o0 = row0; o0 < row1; o0 += ROW_CHUNK) {
        int64_t o1 = o0 + ROW_CHUNK < row1 ? o0 + ROW_CHUNK : row1;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            int64_t o = o0;
            switch (n_tok - t0 >= 4 ? 4 : n_tok - t0) {
            case 4:
                for (; o + 2 <= o1; o += 2) f_tile(ty, 2, 4, wb, rb, o, x, in, t0, y, ldy);
                for (; o < o1; o++) f_tile(ty, 1, 4, wb, rb, o, x, in, t0, y, ldy);
                break;
            case 3:
                for (; o + 2 <= o1; o += 2) f_tile(ty, 2, 3, wb, rb, o, x, in, t0, y, ldy);
                for (; o < o1; o++) f_tile(ty, 1, 3, wb, rb, o, x, in, t0, y, ldy);
                break;
            case 2:
                for (; o + 4 <= o1; o += 4) f_tile(ty, 4, 2, wb, rb, o, x, in, t0, y, ldy);
                for (; o < o1; o++) f_tile(ty, 1, 2, wb, rb, o, x, in, t0, y, ldy);
                break;
            default:
                for (; o + 4 <= o1; o += 4) f_tile(ty, 4, 1, wb, rb, o, x, in, t0, y, ldy);
                for (; o < o1; o++) f_tile(ty, 1, 1, wb, rb, o, x, in, t0, y, ldy);
                break;
            }
        }
    }
}

#define F_KERNEL(name, type)                                                                       \
    static __attribute__((noinline)) void name(const void *w, int64_t in, const float *x, int n_tok, \
                                               float *y, int64_t ldy, int64_t row0, int64_t row1)  \
    {                                                                                              \
        f_rows(type, w, in, x, n_tok, y, ldy, row0, row1);                                         \
    }

F_KERNEL(rows_f32, HC_F32)
F_KERNEL(rows_f16, HC_F16)
F_KERNEL(rows_bf16, HC_BF16)

/* ---------------- dispatch by type ---------------- */

int hc_matmul_avx2_has(hc_dtype t)
{
    switch (t) {
    case HC_F32: case HC_F16: case HC_BF16:
    case HC_Q4_0: case HC_Q4_1: case HC_Q5_0: case HC_Q5_1: case HC_Q8_0: case HC_Q4_K: case HC_Q6_K:
        return 1;
    default:
        return 0;
    }
}

void hc_matmul_rows_avx2(hc_dtype wt, const void *w, int64_t in, const float *x, const void *xq,
                         int n_tok, float *y, int64_t ldy, int64_t row0, int64_t row1)
{
    switch (wt) {
    case HC_F32: rows_f32(w, in, x, n_tok, y, ldy, row0, row1); break;
    case HC_F16: rows_f16(w, in, x, n_tok, y, ldy, row0, row1); break;
    case HC_BF16: rows_bf16(w, in, x, n_tok, y, ldy, row0, row1); break;
    case HC_Q4_0: rows_q4_0(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q4_1: rows_q4_1(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q5_0: rows_q5_0(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q5_1: rows_q5_1(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q8_0: rows_q8_0(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q4_K: rows_q4_k(w, in, xq, n_tok, y, ldy, row0, row1); break;
    case HC_Q6_K: rows_q6_k(w, in, xq, n_tok, y, ldy, row0, row1); break;
    default: break;
    }
}
