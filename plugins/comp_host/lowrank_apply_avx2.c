/* lowrank_apply_avx2.c: AVX2/FMA/F16C kernels of the low-rank branch: down (t = A x, rank rows of
 * length `in` against the tokens) and up (y += B t, the active rows of B scaled by t and summed).
 * Factors in f32, f16, bf16 or q8_0 (rows of 32-element blocks: an f16 scale, then 32 int8). */
#include <immintrin.h>
#include <string.h>

#include "hc/hc_avx2.h"
#include "lowrank_apply.h"

#define AI static inline __attribute__((always_inline))

/* up, several tokens: directions taken this many at a time; a block of outputs keeps its sums in
 * registers over them (the tokens' y rows are read and written once per this many directions). */
#define UPN_ROWS 64
/* up, one token: bytes of B ahead (in memory order) that are prefetched */
#define UP1_PF_BYTES 2048
/* up, several tokens: blocks ahead whose part of B is prefetched */
#define UP_PF_BLOCKS 2
/* down, several tokens: rows kept hot in L1 while every block of 4 tokens passes. */
#define DOWN_CHUNK_BYTES 16384
/* down, one token: rows ahead whose lines are prefetched while the current 4 rows are read. */
#define DOWN_PF_ROWS 4

/* ---------------- loads and horizontal sums ---------------- */

AI size_t elem_bytes(const hc_dtype ty) { return ty == HC_F32 ? 4 : 2; }

/* Bytes of a row of n elements (q8_0: n a multiple of 32): hc_dtype_row_bytes, inlined so that each
 * type's kernels fold it to a constant (up_prefetch calls it in the column loop). */
AI size_t row_bytes(const hc_dtype ty, int64_t n)
{
    return ty == HC_Q8_0 ? (size_t)(n / 32) * 34 : (size_t)n * elem_bytes(ty);
}

/* Where element i of a row is (q8_0: in its block, after the block's scale). */
AI size_t elem_off(const hc_dtype ty, int64_t i)
{
    return ty == HC_Q8_0 ? (size_t)(i >> 5) * 34 + 2 + (size_t)(i & 31) : (size_t)i * elem_bytes(ty);
}

/* 8 int8 as floats */
AI __m256 q8_load8(const uint8_t *q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))); }

/* 8 elements of a row from element i, as floats (f16 by F16C, bf16 by a 16-bit shift, q8_0 scaled
 * int8: the 8 must lie in one block, i.e. i % 32 <= 24). */
AI __m256 load8(const hc_dtype ty, const uint8_t *row, int64_t i)
{
    switch (ty) {
    case HC_Q8_0: {
        const uint8_t *blk = row + (size_t)(i >> 5) * 34;
        return _mm256_mul_ps(_mm256_set1_ps(hc_f16_at(blk)), q8_load8(blk + 2 + (i & 31)));
    }
    default: return hc_float_row_load8(ty, row, i);
    }
}

AI float load1(const hc_dtype ty, const uint8_t *row, int64_t i)
{
    if (ty == HC_Q8_0) return hc_f16_at(row + (size_t)(i >> 5) * 34) * (float)(int8_t)row[elem_off(ty, i)];
    return hc_float_row_at(ty, row, i);
}

/* All-ones in the first n (0..8) lanes. */
AI __m256 lane_mask(int n)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

/* The n < 8 elements at row[i..i+n) as floats, zero in lanes n..7. When `safe` (the 8-element
 * read stays inside the matrix) the full vector is loaded and the extra lanes are cleared with an
 * AND, so whatever they held (even a NaN) contributes an exact 0; else the n elements are copied.
 * q8_0 rows hold whole blocks: from an i that is a multiple of 8 the read is always safe. */
AI __m256 load_part(const hc_dtype ty, const uint8_t *row, int64_t i, int n, int safe, __m256 mask)
{
    if (safe || ty == HC_Q8_0) return _mm256_and_ps(load8(ty, row, i), mask);
    uint8_t buf[32] = {0};
    memcpy(buf, row + (size_t)i * elem_bytes(ty), (size_t)n * elem_bytes(ty));
    return load8(ty, buf, 0);
}

/* [sum(v0), sum(v1), sum(v2), sum(v3)] */
AI __m128 hsum_x4(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

AI void prefetch(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }

/* ---------------- down: t[j][k] = A[k] . x[j] ---------------- */

/* One token, four rows of A (pointers may repeat for a short group), two accumulators each; the
 * x loads are shared by the rows. pf, when not NULL, is the first of 4 rows read later (A's rows
 * are contiguous): its lines are prefetched at the pace this group is read. */
AI __m128 down1_rows4(const hc_dtype ty, const uint8_t *r0, const uint8_t *r1, const uint8_t *r2,
                      const uint8_t *r3, const uint8_t *pf, size_t rb, const float *x, int64_t in)
{
    const size_t es = elem_bytes(ty);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
    int64_t i = 0;
    for (; i + 16 <= in; i += 16) {
        if (pf && ((size_t)i * es & 63) == 0) {
            const uint8_t *p = pf + (size_t)i * es;
            prefetch(p), prefetch(p + rb), prefetch(p + 2 * rb), prefetch(p + 3 * rb);
        }
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(load8(ty, r0, i), x0, a0);
        b0 = _mm256_fmadd_ps(load8(ty, r1, i), x0, b0);
        c0 = _mm256_fmadd_ps(load8(ty, r2, i), x0, c0);
        d0 = _mm256_fmadd_ps(load8(ty, r3, i), x0, d0);
        a1 = _mm256_fmadd_ps(load8(ty, r0, i + 8), x1, a1);
        b1 = _mm256_fmadd_ps(load8(ty, r1, i + 8), x1, b1);
        c1 = _mm256_fmadd_ps(load8(ty, r2, i + 8), x1, c1);
        d1 = _mm256_fmadd_ps(load8(ty, r3, i + 8), x1, d1);
    }
    if (i + 8 <= in) {
        __m256 x0 = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(load8(ty, r0, i), x0, a0);
        b0 = _mm256_fmadd_ps(load8(ty, r1, i), x0, b0);
        c0 = _mm256_fmadd_ps(load8(ty, r2, i), x0, c0);
        d0 = _mm256_fmadd_ps(load8(ty, r3, i), x0, d0);
        i += 8;
    }
    __m128 s = hsum_x4(_mm256_add_ps(a0, a1), _mm256_add_ps(b0, b1), _mm256_add_ps(c0, c1), _mm256_add_ps(d0, d1));
    if (i < in) {
        float tail[4] = {0, 0, 0, 0};
        for (; i < in; i++) {
            tail[0] += load1(ty, r0, i) * x[i];
            tail[1] += load1(ty, r1, i) * x[i];
            tail[2] += load1(ty, r2, i) * x[i];
            tail[3] += load1(ty, r3, i) * x[i];
        }
        s = _mm_add_ps(s, _mm_loadu_ps(tail));
    }
    return s;
}

/* The same for four q8_0 rows: per block, the four vectors of x serve the four rows, the 32
 * int8 products of a row are summed in floats and scaled once by the block's scale. */
AI __m128 down1_q8_rows4(const uint8_t *r0, const uint8_t *r1, const uint8_t *r2, const uint8_t *r3, const uint8_t *pf,
                         size_t rb, const float *x, int64_t in)
{
    const uint8_t *rows[4] = {r0, r1, r2, r3};
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t blk = 0; blk < in / 32; blk++) {
        const size_t off = (size_t)blk * 34;
        if (pf && (blk & 1) == 0) prefetch(pf + off), prefetch(pf + rb + off), prefetch(pf + 2 * rb + off), prefetch(pf + 3 * rb + off);
        const float *xb = x + 32 * blk;
        const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                     x3 = _mm256_loadu_ps(xb + 24);
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
            const uint8_t *b = rows[r] + off;
            __m256 s = _mm256_mul_ps(q8_load8(b + 2), x0);
            s = _mm256_fmadd_ps(q8_load8(b + 10), x1, s);
            s = _mm256_fmadd_ps(q8_load8(b + 18), x2, s);
            s = _mm256_fmadd_ps(q8_load8(b + 26), x3, s);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(hc_f16_at(b)), s, acc[r]);
        }
    }
    return hsum_x4(acc[0], acc[1], acc[2], acc[3]);
}

AI __m128 down1_any_rows4(const hc_dtype ty, const uint8_t *r0, const uint8_t *r1, const uint8_t *r2,
                          const uint8_t *r3, const uint8_t *pf, size_t rb, const float *x, int64_t in)
{
    return ty == HC_Q8_0 ? down1_q8_rows4(r0, r1, r2, r3, pf, rb, x, in) : down1_rows4(ty, r0, r1, r2, r3, pf, rb, x, in);
}

AI void down_one_token(const hc_dtype ty, const uint8_t *a, int64_t in, const float *x, float *t, int k0, int k1)
{
    const size_t rb = row_bytes(ty, in);
    int k = k0;
    for (; k + 4 <= k1; k += 4) {
        const uint8_t *r = a + (size_t)k * rb;
        const uint8_t *pf = k + 4 + DOWN_PF_ROWS <= k1 ? r + DOWN_PF_ROWS * rb : NULL;
        _mm_storeu_ps(t + k, down1_any_rows4(ty, r, r + rb, r + 2 * rb, r + 3 * rb, pf, rb, x, in));
    }
    if (k < k1) {   /* 1..3 rows left: repeat the last one */
        const int n = k1 - k;
        const uint8_t *r = a + (size_t)k * rb, *last = r + (size_t)(n - 1) * rb;
        float s[4];
        _mm_storeu_ps(s, down1_any_rows4(ty, r, n > 1 ? r + rb : last, n > 2 ? r + 2 * rb : last, last, NULL, rb, x, in));
        for (int q = 0; q < n; q++) t[k + q] = s[q];
    }
}

/* Two rows (rb_ may repeat ra) against T tokens: each loaded 8 elements of A serve T tokens. */
AI void down_tile(const hc_dtype ty, const int T, const uint8_t *ra, const uint8_t *rb_, const int nr,
                  const float *x, int64_t in, float *t, int64_t ldt)
{
    __m256 acc[2][4];
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) acc[0][j] = acc[1][j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= in; i += 8) {
        __m256 wa = load8(ty, ra, i), wb = load8(ty, rb_, i);
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)j * (size_t)in + i);
            acc[0][j] = _mm256_fmadd_ps(wa, xv, acc[0][j]);
            acc[1][j] = _mm256_fmadd_ps(wb, xv, acc[1][j]);
        }
    }
    float s[2][4];
    if (T == 4) {
        _mm_storeu_ps(s[0], hsum_x4(acc[0][0], acc[0][1], acc[0][2], acc[0][3]));
        _mm_storeu_ps(s[1], hsum_x4(acc[1][0], acc[1][1], acc[1][2], acc[1][3]));
    } else {
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) s[0][j] = hc_hsum8(acc[0][j]), s[1][j] = hc_hsum8(acc[1][j]);
    }
    for (; i < in; i++) {
        float wa = load1(ty, ra, i), wb = load1(ty, rb_, i);
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            float xv = x[(size_t)j * (size_t)in + (size_t)i];
            s[0][j] += wa * xv;
            s[1][j] += wb * xv;
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
        t[(size_t)j * (size_t)ldt] = s[0][j];
        if (nr > 1) t[(size_t)j * (size_t)ldt + 1] = s[1][j];
    }
}

AI void down_tokens(const hc_dtype ty, const uint8_t *a, int64_t in, const float *x, int n_tok, float *t,
                    int64_t ldt, int k0, int k1)
{
    const size_t rb = row_bytes(ty, in);
    int chunk = (int)(DOWN_CHUNK_BYTES / rb) & ~1;
    if (chunk < 2) chunk = 2;
    for (int c0 = k0; c0 < k1; c0 += chunk) {
        const int c1 = c0 + chunk < k1 ? c0 + chunk : k1;
        for (int j = 0; j < n_tok; j += 4) {
            const float *xj = x + (size_t)j * (size_t)in;
            float *tj = t + (size_t)j * (size_t)ldt;
            for (int k = c0; k < c1; k += 2) {
                const uint8_t *ra = a + (size_t)k * rb, *rb_ = k + 1 < c1 ? ra + rb : ra;
                const int nr = k + 1 < c1 ? 2 : 1;
                switch (n_tok - j >= 4 ? 4 : n_tok - j) {
                case 4: down_tile(ty, 4, ra, rb_, nr, xj, in, tj + k, ldt); break;
                case 3: down_tile(ty, 3, ra, rb_, nr, xj, in, tj + k, ldt); break;
                case 2: down_tile(ty, 2, ra, rb_, nr, xj, in, tj + k, ldt); break;
                default: down_tile(ty, 1, ra, rb_, nr, xj, in, tj + k, ldt); break;
                }
            }
        }
    }
}

#define DOWN_KERNEL(name, type)                                                                         \
    static __attribute__((noinline)) void name(const uint8_t *a, int64_t in, const float *x, int n_tok,  \
                                               float *t, int64_t ldt, int k0, int k1)                   \
    {                                                                                                   \
        if (n_tok == 1)                                                                                 \
            down_one_token(type, a, in, x, t, k0, k1);                                                  \
        else                                                                                            \
            down_tokens(type, a, in, x, n_tok, t, ldt, k0, k1);                                         \
    }

DOWN_KERNEL(down_f32, HC_F32)
DOWN_KERNEL(down_f16, HC_F16)
DOWN_KERNEL(down_bf16, HC_BF16)

DOWN_KERNEL(down_q8_0, HC_Q8_0)

void hc_branch_down_avx2(const hc_branch *b, const float *x, int n_tok, float *t, int64_t ldt, int k0, int k1)
{
    switch (b->dtype) {
    case HC_F32: down_f32(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_F16: down_f16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_BF16: down_bf16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_Q8_0: down_q8_0(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    default: break;
    }
}

/* ---------------- up: y[j][o] += sum_k t[j][k] B[k][o] ---------------- */

/* y[j][0 .. 8 NV) += sum_{k < kl} t[j][k] bf[k][0 .. 8 NV) for T tokens, bf an f32 block with rows
 * of 8 NV: the sums stay in registers over the kl rows, each loaded vector of bf serves T tokens.
 * PART: one vector of which the first `last` (< 8) columns of y are written. */
AI void up_block(const int T, const int NV, const int PART, const float *bf, int kl, const float *t, int64_t ldt,
                 float *y, int64_t ldy, int last)
{
    __m256 acc[4][2];
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++)
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[j][v] = _mm256_setzero_ps();
    for (int k = 0; k < kl; k++) {
        __m256 tv[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) tv[j] = _mm256_broadcast_ss(t + (size_t)j * (size_t)ldt + k);
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) {
            const __m256 bv = _mm256_load_ps(bf + (size_t)k * 8 * NV + 8 * v);
            _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) acc[j][v] = _mm256_fmadd_ps(tv[j], bv, acc[j][v]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
        float *yj = y + (size_t)j * (size_t)ldy;
        if (PART) {
            const __m256i m = _mm256_castps_si256(lane_mask(last));
            _mm256_maskstore_ps(yj, m, _mm256_add_ps(_mm256_maskload_ps(yj, m), acc[j][0]));
        } else {
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)
                _mm256_storeu_ps(yj + 8 * v, _mm256_add_ps(_mm256_loadu_ps(yj + 8 * v), acc[j][v]));
        }
    }
}

/* Prefetches what the block `ahead` columns after o reads: the same rows further on, or past the
 * range's end the next rows from its start (the rows interleave, too many streams for the hardware
 * prefetcher when B comes from memory). */
AI void up_prefetch(const hc_dtype ty, const int NV, const uint8_t *bm, int64_t out, int rank, int rows, int k0,
                    int64_t o, int64_t o0, int64_t o1, int64_t ahead)
{
    const size_t rb = row_bytes(ty, out);
    int64_t oc = o + ahead;
    while (oc >= o1) oc -= o1 - o0, k0 += rows;
    const int k1 = k0 + rows < rank ? k0 + rows : rank;
    const size_t len = elem_off(ty, o1 - oc < 8 * NV ? o1 : oc + 8 * NV) - elem_off(ty, oc);
    for (int k = k0; k < k1; k++) {
        const uint8_t *p = bm + (size_t)k * rb + elem_off(ty, oc);
        for (size_t off = 0; off < len; off += 64) prefetch(p + off);
    }
}

/* The block at column o for several tokens, four at a time: its part of B (kl x 8 NV elements) is
 * converted to f32 once, into bf, then every token group reads it from L1. */
AI void up_block_tokens(const hc_dtype ty, const int NV, const int PART, const uint8_t *bm, int64_t out, int stored,
                        int k0, int kl, const float *t, int64_t ldt, int n_tok, float *y, int64_t ldy, int64_t o, int last)
{
    _Alignas(32) float bf[UPN_ROWS * 16];
    const size_t rb = row_bytes(ty, out);
    const __m256 mask = lane_mask(PART ? last : 8);
    for (int k = 0; k < kl; k++) {
        const uint8_t *row = bm + (size_t)(k0 + k) * rb;
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)
            _mm256_store_ps(bf + k * 8 * NV + 8 * v, PART ? load_part(ty, row, o, last, k0 + k + 1 < stored || o + 8 <= out, mask)
                                                          : load8(ty, row, o + 8 * v));
    }
    for (int j = 0; j < n_tok; j += 4) {
        const float *tj = t + (size_t)j * (size_t)ldt + k0;
        float *yj = y + (size_t)j * (size_t)ldy + o;
        switch (n_tok - j >= 4 ? 4 : n_tok - j) {
        case 4: up_block(4, NV, PART, bf, kl, tj, ldt, yj, ldy, last); break;
        case 3: up_block(3, NV, PART, bf, kl, tj, ldt, yj, ldy, last); break;
        case 2: up_block(2, NV, PART, bf, kl, tj, ldt, yj, ldy, last); break;
        default: up_block(1, NV, PART, bf, kl, tj, ldt, yj, ldy, last); break;
        }
    }
}

/* One token: y[o0..o1) += t[k] B[k][o0..o1), row after row, so that B is read in memory order
 * (measured here: reading a few rows in step, column block by column block, ran at half the
 * bandwidth from memory); y stays in L1. The lines UP1_PF_BYTES ahead are prefetched, into the
 * next rows' segments when the range is a part of the rows. */
AI void up_one_token(const hc_dtype ty, const uint8_t *bm, int64_t out, int stored, int rank, const float *t, float *y,
                     int64_t o0, int64_t o1)
{
    const size_t es = elem_bytes(ty), rb = (size_t)out * es, seg = (size_t)(o1 - o0) * es;
    for (int k = 0; k < rank; k++) {
        const uint8_t *row = bm + (size_t)k * rb;
        const __m256 tv = _mm256_broadcast_ss(t + k);
        int64_t o = o0;
        for (; o + 32 <= o1; o += 32) {
            size_t ahead = (size_t)(o - o0) * es + UP1_PF_BYTES;
            int kk = k;
            while (ahead >= seg) ahead -= seg, kk++;
            const uint8_t *p = bm + (size_t)kk * rb + (size_t)o0 * es + ahead;
            for (size_t off = 0; off < 32 * es; off += 64) prefetch(p + off);
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {
                float *yo = y + o + 8 * v;
                _mm256_storeu_ps(yo, _mm256_fmadd_ps(tv, load8(ty, row, o + 8 * v), _mm256_loadu_ps(yo)));
            }
        }
        for (; o + 8 <= o1; o += 8) _mm256_storeu_ps(y + o, _mm256_fmadd_ps(tv, load8(ty, row, o), _mm256_loadu_ps(y + o)));
        if (o < o1) {
            const int n = (int)(o1 - o);
            const __m256 mask = lane_mask(n);
            const __m256i m = _mm256_castps_si256(mask);
            /* the 8-element read runs into the next row, or past B's end on its last row */
            const __m256 bv = load_part(ty, row, o, n, k + 1 < stored || o + 8 <= out, mask);
            _mm256_maskstore_ps(y + o, m, _mm256_fmadd_ps(tv, bv, _mm256_maskload_ps(y + o, m)));
        }
    }
}

/* The same for q8_0 rows, four directions at a time (y is read and written once per four),
 * block by block: each row's t[k] times the block's scale multiplies its int8 (o0 a multiple of
 * 8, so that no vector straddles two blocks). The next four rows, contiguous after these, are
 * prefetched at the same columns. A group of fewer than four repeats its first row with t = 0. */
AI void up_one_token_q8(const uint8_t *bm, int64_t out, int rank, const float *t, float *y, int64_t o0, int64_t o1)
{
    const size_t rb = row_bytes(HC_Q8_0, out);
    for (int k = 0; k < rank; k += 4) {
        const uint8_t *row[4];
        float tk[4];
        for (int r = 0; r < 4; r++) {
            row[r] = bm + (size_t)(k + r < rank ? k + r : k) * rb;
            tk[r] = k + r < rank ? t[k + r] : 0.0f;
        }
        const int pf_rows = rank - (k + 4) < 4 ? rank - (k + 4) : 4;
        for (int64_t o = o0; o < o1;) {
            const size_t off = (size_t)(o >> 5) * 34;
            for (int r = 0; r < pf_rows; r++) prefetch(row[r] + 4 * rb + off);
            __m256 sv[4];
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) sv[r] = _mm256_set1_ps(tk[r] * hc_f16_at(row[r] + off));
            const int64_t end = ((o >> 5) + 1) * 32 < o1 ? ((o >> 5) + 1) * 32 : o1;
            for (; o < end; o += 8) {
                const size_t q = off + 2 + (size_t)(o & 31);
                __m256 acc = _mm256_mul_ps(sv[0], q8_load8(row[0] + q));
                acc = _mm256_fmadd_ps(sv[1], q8_load8(row[1] + q), acc);
                acc = _mm256_fmadd_ps(sv[2], q8_load8(row[2] + q), acc);
                acc = _mm256_fmadd_ps(sv[3], q8_load8(row[3] + q), acc);
                if (o + 8 <= end) {
                    _mm256_storeu_ps(y + o, _mm256_add_ps(_mm256_loadu_ps(y + o), acc));
                } else {   /* the range's last 1..7 outputs: the 8 int8 read stay in the block */
                    const __m256i m = _mm256_castps_si256(lane_mask((int)(end - o)));
                    _mm256_maskstore_ps(y + o, m, _mm256_add_ps(_mm256_maskload_ps(y + o, m), acc));
                }
            }
        }
    }
}

/* The output range UPN_ROWS directions at a time: blocks of 16 columns (4 tokens x 2 vectors of
 * sums), then single vectors, then the partial one; one token: up_one_token. */
AI void up_tokens(const hc_dtype ty, const uint8_t *bm, int64_t out, int stored, int rank, const float *t,
                  int64_t ldt, int n_tok, float *y, int64_t ldy, int64_t o0, int64_t o1)
{
    if (n_tok == 1) {
        if (ty == HC_Q8_0)
            up_one_token_q8(bm, out, rank, t, y, o0, o1);
        else
            up_one_token(ty, bm, out, stored, rank, t, y, o0, o1);
        return;
    }
    const int NV = 2, rows = UPN_ROWS;
    for (int k0 = 0; k0 < rank; k0 += rows) {
        const int kl = rank - k0 < rows ? rank - k0 : rows;
        int64_t o = o0;
        for (; o + 8 * NV <= o1; o += 8 * NV) {
            up_prefetch(ty, NV, bm, out, rank, rows, k0, o, o0, o1, UP_PF_BLOCKS * 8 * NV);
            up_block_tokens(ty, NV, 0, bm, out, stored, k0, kl, t, ldt, n_tok, y, ldy, o, 8);
        }
        for (; o + 8 <= o1; o += 8) up_block_tokens(ty, 1, 0, bm, out, stored, k0, kl, t, ldt, n_tok, y, ldy, o, 8);
        if (o < o1) up_block_tokens(ty, 1, 1, bm, out, stored, k0, kl, t, ldt, n_tok, y, ldy, o, (int)(o1 - o));
    }
}

#define UP_KERNEL(name, type)                                                                            \
    static __attribute__((noinline)) void name(const uint8_t *bm, int64_t out, int stored, int rank,      \
                                               const float *t, int64_t ldt, int n_tok, float *y,          \
                                               int64_t ldy, int64_t o0, int64_t o1)                      \
    {                                                                                                    \
        up_tokens(type, bm, out, stored, rank, t, ldt, n_tok, y, ldy, o0, o1);                           \
    }

UP_KERNEL(up_f32, HC_F32)
UP_KERNEL(up_f16, HC_F16)
UP_KERNEL(up_bf16, HC_BF16)
UP_KERNEL(up_q8_0, HC_Q8_0)

void hc_branch_up_avx2(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                       int64_t ldy, int64_t o0, int64_t o1)
{
    switch (b->dtype) {
    case HC_F32: up_f32(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_F16: up_f16(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_BF16: up_bf16(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_Q8_0:
        if (o0 % 8) {   /* a vector must not straddle two blocks: the columns up to a multiple of 8 by the reference */
            const int64_t head = ((o0 + 7) & ~(int64_t)7) < o1 ? (o0 + 7) & ~(int64_t)7 : o1;
            (void)hc_branch_up_ref(b, rank, t, ldt, n_tok, y, ldy, o0, head);
            o0 = head;
        }
        if (o0 < o1) up_q8_0(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1);
        break;
    default: break;
    }
}
