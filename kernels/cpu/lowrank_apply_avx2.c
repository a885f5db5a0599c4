/* lowrank_apply_avx2.c: AVX2/FMA/F16C kernels of the low-rank branch: down (t = A x, rank rows of
 * length `in` against the tokens) and up (y += B t, a short dot of length rank per output). */
#include <immintrin.h>
#include <string.h>

#include "lowrank_apply.h"

#define AI static inline __attribute__((always_inline))

/* up, one token: the active rank is taken in chunks of at most this many directions (a padded
 * copy of t lives on the stack); the usual ranks (<= 256) need one chunk. */
#define UP1_RANK_CHUNK 256
/* up, several tokens: rows are taken 16 at a time and their B block is transposed to
 * [k][16] floats, UPN_RANK_CHUNK directions at a time (4 KiB on the stack). */
#define UPN_ROWS 16
#define UPN_RANK_CHUNK 64
/* down, several tokens: rows kept hot in L1 while every block of 4 tokens passes. */
#define DOWN_CHUNK_BYTES 16384
/* down, one token: rows ahead whose lines are prefetched while the current 4 rows are read. */
#define DOWN_PF_ROWS 4

/* ---------------- loads and horizontal sums ---------------- */

AI size_t elem_bytes(const hc_dtype ty) { return ty == HC_F32 ? 4 : 2; }

/* 8 elements of a row from element i, as floats (f16 by F16C, bf16 by a 16-bit shift). */
AI __m256 load8(const hc_dtype ty, const uint8_t *row, int64_t i)
{
    switch (ty) {
    case HC_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i)));
    case HC_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(row + 2 * i))), 16));
    default: return _mm256_loadu_ps((const float *)row + i);
    }
}

AI float load1(const hc_dtype ty, const uint8_t *row, int64_t i)
{
    uint16_t h;
    uint32_t u;
    float f;
    switch (ty) {
    case HC_F16: memcpy(&h, row + 2 * i, 2); return _cvtsh_ss(h);
    case HC_BF16:
        memcpy(&h, row + 2 * i, 2);
        u = (uint32_t)h << 16;
        memcpy(&f, &u, 4);
        return f;
    default: return ((const float *)row)[i];
    }
}

/* All-ones in the first n (0..8) lanes. */
AI __m256 lane_mask(int n)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

/* The n < 8 elements at row[i..i+n) as floats, zero in lanes n..7. When `safe` (the 8-element
 * read stays inside the matrix) the full vector is loaded and the extra lanes are cleared with an
 * AND, so whatever they held (even a NaN) contributes an exact 0; else the n elements are copied. */
AI __m256 load_part(const hc_dtype ty, const uint8_t *row, int64_t i, int n, int safe, __m256 mask)
{
    if (safe) return _mm256_and_ps(load8(ty, row, i), mask);
    uint8_t buf[32] = {0};
    memcpy(buf, row + (size_t)i * elem_bytes(ty), (size_t)n * elem_bytes(ty));
    return load8(ty, buf, 0);
}

AI float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* [sum(v0), sum(v1), sum(v2), sum(v3)] */
AI __m128 hsum_x4(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* [sum(v[0]), ..., sum(v[7])] by a tree of unpacks and adds (measured faster than vhaddps). */
AI __m256 hsum_x8(const __m256 *v)
{
    __m256 s01 = _mm256_add_ps(_mm256_unpacklo_ps(v[0], v[1]), _mm256_unpackhi_ps(v[0], v[1]));
    __m256 s23 = _mm256_add_ps(_mm256_unpacklo_ps(v[2], v[3]), _mm256_unpackhi_ps(v[2], v[3]));
    __m256 s45 = _mm256_add_ps(_mm256_unpacklo_ps(v[4], v[5]), _mm256_unpackhi_ps(v[4], v[5]));
    __m256 s67 = _mm256_add_ps(_mm256_unpacklo_ps(v[6], v[7]), _mm256_unpackhi_ps(v[6], v[7]));
    __m256 s0 = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(s01), _mm256_castps_pd(s23))),
                              _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(s01), _mm256_castps_pd(s23))));
    __m256 s1 = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(s45), _mm256_castps_pd(s67))),
                              _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(s45), _mm256_castps_pd(s67))));
    return _mm256_add_ps(_mm256_blend_ps(s0, s1, 0xf0), _mm256_permute2f128_ps(s0, s1, 0x21));
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

AI void down_one_token(const hc_dtype ty, const uint8_t *a, int64_t in, const float *x, float *t, int k0, int k1)
{
    const size_t rb = (size_t)in * elem_bytes(ty);
    int k = k0;
    for (; k + 4 <= k1; k += 4) {
        const uint8_t *r = a + (size_t)k * rb;
        const uint8_t *pf = k + 4 + DOWN_PF_ROWS <= k1 ? r + DOWN_PF_ROWS * rb : NULL;
        _mm_storeu_ps(t + k, down1_rows4(ty, r, r + rb, r + 2 * rb, r + 3 * rb, pf, rb, x, in));
    }
    if (k < k1) {   /* 1..3 rows left: repeat the last one */
        const int n = k1 - k;
        const uint8_t *r = a + (size_t)k * rb, *last = r + (size_t)(n - 1) * rb;
        float s[4];
        _mm_storeu_ps(s, down1_rows4(ty, r, n > 1 ? r + rb : last, n > 2 ? r + 2 * rb : last, last, NULL, rb, x, in));
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
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) s[0][j] = hsum(acc[0][j]), s[1][j] = hsum(acc[1][j]);
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
    const size_t rb = (size_t)in * elem_bytes(ty);
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

void hc_branch_down_avx2(const hc_branch *b, const float *x, int n_tok, float *t, int64_t ldt, int k0, int k1)
{
    switch (b->dtype) {
    case HC_F32: down_f32(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_F16: down_f16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_BF16: down_bf16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    default: break;
    }
}

/* ---------------- up, one token: y[o] += B[o] . t ---------------- */

/* Eight rows of B (rows[r], already offset to the chunk's first direction) against the padded
 * t chunk tp: NV full vectors, then `tail` (< 8) elements. Returns the eight dot products. */
AI __m256 up1_dot8(const hc_dtype ty, const uint8_t *const *rows, const float *tp, const int nv, const int tail,
                   const int safe)
{
    __m256 acc[8];
    if (nv > 0) {
        const __m256 tv = _mm256_load_ps(tp);
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm256_mul_ps(load8(ty, rows[r], 0), tv);
    } else {
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
    }
    _Pragma("GCC unroll 8") for (int v = 1; v < nv; v++) {
        const __m256 tv = _mm256_load_ps(tp + 8 * v);
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            acc[r] = _mm256_fmadd_ps(load8(ty, rows[r], 8 * v), tv, acc[r]);
    }
    if (tail) {
        const __m256 tv = _mm256_load_ps(tp + 8 * nv), mask = lane_mask(tail);
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++)
            acc[r] = _mm256_fmadd_ps(load_part(ty, rows[r], 8 * nv, tail, safe, mask), tv, acc[r]);
    }
    return hsum_x8(acc);
}

/* y[o0..o1) += B[o0..o1)[kc .. kc + nv*8 + tail) . tp. NV > 0 is a compile-time vector count
 * (tail 0); NV == 0 takes nv and tail at run time. */
AI void up1_range(const hc_dtype ty, const int NV, const int nv_rt, const int tail, const uint8_t *bm, int64_t out,
                  int stored, int kc, const float *tp, float *y, int64_t o0, int64_t o1)
{
    const int nv = NV ? NV : nv_rt;
    const size_t es = elem_bytes(ty), rb = (size_t)stored * es;
    const size_t used = (size_t)(8 * nv + tail) * es;   /* bytes of a row this chunk reads */
    const int whole = used * 2 >= rb;                   /* prefetch the whole group block */
    /* The 8-wide read of a row's tail ends at element kc + 8 nv + 8 of the row; it stays inside B
     * for every row before `safe_end`. */
    const int64_t over = (int64_t)kc + 8 * nv + 8 - stored;   /* elements past the row's end */
    const int64_t safe_end = over <= 0 ? out : out - (over + stored - 1) / stored;
    const uint8_t *rows[8];
    int64_t o = o0;
    for (; o + 8 <= o1; o += 8) {
        const uint8_t *g = bm + (size_t)o * rb + (size_t)kc * es;
        if (o + 24 <= o1) {   /* two groups ahead */
            const uint8_t *p = g + 16 * rb;
            if (whole)
                for (size_t off = 0; off < 8 * rb; off += 64) prefetch(p + off);
            else
                _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) prefetch(p + (size_t)r * rb);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) rows[r] = g + (size_t)r * rb;
        const int safe = !tail || o + 8 <= safe_end;
        float *yo = y + o;
        _mm256_storeu_ps(yo, _mm256_add_ps(_mm256_loadu_ps(yo), up1_dot8(ty, rows, tp, nv, tail, safe)));
    }
    if (o < o1) {   /* 1..7 rows left: repeat the last one, write only the valid lanes */
        const int n = (int)(o1 - o);
        const uint8_t *g = bm + (size_t)o * rb + (size_t)kc * es;
        for (int r = 0; r < 8; r++) rows[r] = g + (size_t)(r < n ? r : n - 1) * rb;
        const int safe = !tail || o + n <= safe_end;
        const __m256i m = _mm256_castps_si256(lane_mask(n));
        float *yo = y + o;
        __m256 s = _mm256_add_ps(_mm256_maskload_ps(yo, m), up1_dot8(ty, rows, tp, nv, tail, safe));
        _mm256_maskstore_ps(yo, m, s);
    }
}

AI void up_one_token(const hc_dtype ty, const uint8_t *bm, int64_t out, int stored, int rank, const float *t,
                     float *y, int64_t o0, int64_t o1)
{
    _Alignas(32) float tp[UP1_RANK_CHUNK + 8];
    for (int kc = 0; kc < rank; kc += UP1_RANK_CHUNK) {
        const int kl = rank - kc < UP1_RANK_CHUNK ? rank - kc : UP1_RANK_CHUNK;
        const int nv = kl / 8, tail = kl % 8;
        memcpy(tp, t + kc, (size_t)kl * sizeof(float));
        for (int k = kl; k < 8 * nv + 8; k++) tp[k] = 0.0f;
        switch (tail ? 0 : nv) {
        case 1: up1_range(ty, 1, 1, 0, bm, out, stored, kc, tp, y, o0, o1); break;
        case 2: up1_range(ty, 2, 2, 0, bm, out, stored, kc, tp, y, o0, o1); break;
        case 4: up1_range(ty, 4, 4, 0, bm, out, stored, kc, tp, y, o0, o1); break;
        case 8: up1_range(ty, 8, 8, 0, bm, out, stored, kc, tp, y, o0, o1); break;
        default: up1_range(ty, 0, nv, tail, bm, out, stored, kc, tp, y, o0, o1); break;
        }
    }
}

/* ---------------- up, several tokens: B block transposed, t broadcast ---------------- */

/* bt[k][0..8) = B[row r][k0 + k] for the 8 rows (rows[r]; NULL rows give 0), k < kl (<= 64):
 * 8x8 blocks loaded as rows and transposed in registers. */
AI void up_transpose8(const hc_dtype ty, const uint8_t *const *rows, int k0, int kl, int safe, float *bt, int ldbt)
{
    for (int kb = 0; kb < kl; kb += 8) {
        const int n = kl - kb < 8 ? kl - kb : 8;
        const __m256 mask = lane_mask(n);
        __m256 v[8];
        _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) {
            if (!rows[r])
                v[r] = _mm256_setzero_ps();
            else if (n == 8)
                v[r] = load8(ty, rows[r], k0 + kb);
            else
                v[r] = load_part(ty, rows[r], k0 + kb, n, safe, mask);
        }
        __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
        __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
        __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
        __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
        float *d = bt + (size_t)kb * (size_t)ldbt;
        _mm256_store_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_store_ps(d + ldbt, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_store_ps(d + 2 * ldbt, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_store_ps(d + 3 * ldbt, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_store_ps(d + 4 * ldbt, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_store_ps(d + 5 * ldbt, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_store_ps(d + 6 * ldbt, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_store_ps(d + 7 * ldbt, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
}

/* y[j][0..16) += sum_{k < kl} t[j][k] bt[k][0..16) for T tokens: each loaded column pair of the
 * transposed block serves T tokens (broadcasts come from memory, one load each). n: valid rows. */
AI void up_tok_block(const int T, const float *bt, int kl, const float *t, int64_t ldt, float *y, int64_t ldy, int n)
{
    __m256 acc[4][2];
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int k = 0; k < kl; k++) {
        const __m256 b0 = _mm256_load_ps(bt + 16 * k), b1 = _mm256_load_ps(bt + 16 * k + 8);
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            const __m256 tv = _mm256_broadcast_ss(t + (size_t)j * (size_t)ldt + k);
            acc[j][0] = _mm256_fmadd_ps(tv, b0, acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(tv, b1, acc[j][1]);
        }
    }
    if (n == UPN_ROWS) {
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            float *yj = y + (size_t)j * (size_t)ldy;
            _mm256_storeu_ps(yj, _mm256_add_ps(_mm256_loadu_ps(yj), acc[j][0]));
            _mm256_storeu_ps(yj + 8, _mm256_add_ps(_mm256_loadu_ps(yj + 8), acc[j][1]));
        }
    } else {
        const __m256i m0 = _mm256_castps_si256(lane_mask(n)), m1 = _mm256_castps_si256(lane_mask(n - 8));
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            float *yj = y + (size_t)j * (size_t)ldy;
            _mm256_maskstore_ps(yj, m0, _mm256_add_ps(_mm256_maskload_ps(yj, m0), acc[j][0]));
            if (n > 8) _mm256_maskstore_ps(yj + 8, m1, _mm256_add_ps(_mm256_maskload_ps(yj + 8, m1), acc[j][1]));
        }
    }
}

AI void up_tokens(const hc_dtype ty, const uint8_t *bm, int64_t out, int stored, int rank, const float *t,
                  int64_t ldt, int n_tok, float *y, int64_t ldy, int64_t o0, int64_t o1)
{
    _Alignas(32) float bt[UPN_RANK_CHUNK * UPN_ROWS];
    const size_t es = elem_bytes(ty), rb = (size_t)stored * es;
    for (int64_t o = o0; o < o1; o += UPN_ROWS) {
        const int n = o1 - o < UPN_ROWS ? (int)(o1 - o) : UPN_ROWS;
        for (int kc = 0; kc < rank; kc += UPN_RANK_CHUNK) {
            const int kl = rank - kc < UPN_RANK_CHUNK ? rank - kc : UPN_RANK_CHUNK;
            /* a partial 8-wide read at direction kc + kl - (kl % 8) of row r ends inside B when
             * r * stored + kc + kl - kl % 8 + 8 <= out * stored */
            const int64_t end_k = (int64_t)kc + kl - kl % 8 + 8;
            for (int h = 0; h < UPN_ROWS / 8; h++) {
                const uint8_t *rows[8];
                int64_t last = o;
                for (int r = 0; r < 8; r++) {
                    const int q = 8 * h + r;
                    rows[r] = q < n ? bm + (size_t)(o + q) * rb : NULL;
                    if (q < n) last = o + q;
                }
                const int safe = last * stored + end_k <= out * stored;
                up_transpose8(ty, rows, kc, kl, safe, bt + 8 * h, UPN_ROWS);
            }
            const float *tk = t + kc;
            float *yo = y + o;
            for (int j = 0; j < n_tok; j += 4) {
                const float *tj = tk + (size_t)j * (size_t)ldt;
                float *yj = yo + (size_t)j * (size_t)ldy;
                switch (n_tok - j >= 4 ? 4 : n_tok - j) {
                case 4: up_tok_block(4, bt, kl, tj, ldt, yj, ldy, n); break;
                case 3: up_tok_block(3, bt, kl, tj, ldt, yj, ldy, n); break;
                case 2: up_tok_block(2, bt, kl, tj, ldt, yj, ldy, n); break;
                default: up_tok_block(1, bt, kl, tj, ldt, yj, ldy, n); break;
                }
            }
        }
    }
}

#define UP_KERNEL(name, type)                                                                            \
    static __attribute__((noinline)) void name(const uint8_t *bm, int64_t out, int stored, int rank,      \
                                               const float *t, int64_t ldt, int n_tok, float *y,          \
                                               int64_t ldy, int64_t o0, int64_t o1)                      \
    {                                                                                                    \
        if (n_tok == 1)                                                                                  \
            up_one_token(type, bm, out, stored, rank, t, y, o0, o1);                                     \
        else                                                                                             \
            up_tokens(type, bm, out, stored, rank, t, ldt, n_tok, y, ldy, o0, o1);                       \
    }

UP_KERNEL(up_f32, HC_F32)
UP_KERNEL(up_f16, HC_F16)
UP_KERNEL(up_bf16, HC_BF16)

void hc_branch_up_avx2(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                       int64_t ldy, int64_t o0, int64_t o1)
{
    switch (b->dtype) {
    case HC_F32: up_f32(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_F16: up_f16(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_BF16: up_bf16(b->b, b->out, b->rank, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    default: break;
    }
}
