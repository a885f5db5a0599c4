/* lowrank_apply_avx512.c: AVX-512 kernels of the low-rank branch for f32, f16 and bf16 factors:
 * down (t = A x) and up (y += B t), 16 floats per vector, one token (decode) and several. */
#include <immintrin.h>

#include "hc/hc_avx512.h"

#include "lowrank_apply.h"

#define AI static inline __attribute__((always_inline))

/* Decoding reads each factor once from memory: down four rows of A in step against the token
 * (the x loads shared), each row prefetched at the same column a whole number of 4-row tiles
 * (>= 12 KiB) ahead, so that the lines arrive as the rows are read; up row after row of B over a
 * segment of UP1_SEG outputs whose sums stay in L1 (a whole row of 8192 outputs, 32 KiB, did not:
 * the sums went to L2 and back once per direction), B prefetched 12 KiB ahead in that order.
 * Several tokens: down in tiles of 4 rows x 4 tokens (16 accumulators, 8 loads per 16 FMAs); up in
 * blocks of 64 outputs x UPN_ROWS directions converted to f32 once, then 4 tokens x 4 vectors of
 * sums per pass (8 loads per 16 FMAs). */

#define PF_DIST 12288      /* bytes of a factor prefetched ahead when it streams from memory */
#define UP1_SEG 2048       /* up, one token: outputs per segment (8 KiB of sums) */
#define UPN_ROWS 64        /* up, several tokens: directions per block */
#define UPN_COLS 64        /* up, several tokens: outputs per block */
#define DOWN_CHUNK_BYTES 32768   /* down, several tokens: rows of A kept in L1 while the tokens pass */

AI void prefetch(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }

/* ---------------- down: t[j][k] = A[k] . x[j] ---------------- */

/* One token, R rows (rows[r]); pf: bytes ahead of each row prefetched (0: none). */
AI void down1_tile(const hc_dtype ty, const int R, const uint8_t *const *rows, size_t pf, const float *x, int64_t in,
                   float *t)
{
    const size_t es = hc_float_elem_bytes(ty);
    __m512 acc[4][2];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= in; i += 32) {
        if (pf)
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
                prefetch(rows[r] + (size_t)i * es + pf);
                if (es == 4) prefetch(rows[r] + (size_t)i * es + pf + 64);
            }
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) {
            acc[r][0] = _mm512_fmadd_ps(hc_avx512_row16(ty, rows[r], i, 0xffff), x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(hc_avx512_row16(ty, rows[r], i + 16, 0xffff), x1, acc[r][1]);
        }
    }
    for (; i < in; i += 16) {
        const __mmask16 m = hc_avx512_first(in - i);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) acc[r][0] = _mm512_fmadd_ps(hc_avx512_row16(ty, rows[r], i, m), xv, acc[r][0]);
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) t[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

AI void down_one_token(const hc_dtype ty, const uint8_t *a, int64_t in, const float *x, float *t, int k0, int k1)
{
    const size_t rb = (size_t)in * hc_float_elem_bytes(ty), tile = 4 * rb, ahead = (PF_DIST + tile - 1) / tile * tile;
    int k = k0;
    for (; k + 4 <= k1; k += 4) {
        const uint8_t *rows[4] = {a + (size_t)k * rb, a + (size_t)(k + 1) * rb, a + (size_t)(k + 2) * rb,
                                  a + (size_t)(k + 3) * rb};
        down1_tile(ty, 4, rows, k + 4 + (int)(ahead / rb) <= k1 ? ahead : 0, x, in, t + k);
    }
    for (; k < k1; k++) {
        const uint8_t *row = a + (size_t)k * rb;
        down1_tile(ty, 1, &row, 0, x, in, t + k);
    }
}

/* R rows against T tokens (x rows `in` apart), t[j * ldt + r] for the tile. */
AI void down_tile(const hc_dtype ty, const int R, const int T, const uint8_t *const *rows, const float *x, int64_t in,
                  float *t, int64_t ldt)
{
    __m512 acc[4][4];
    _Pragma("GCC unroll 4") for (int r = 0; r < R; r++)
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) acc[r][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < in; i += 16) {
        const __mmask16 m = hc_avx512_first(in - i);
        __m512 w[4];
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) w[r] = hc_avx512_row16(ty, rows[r], i, m);
        _Pragma("GCC unroll 4") for (int j = 0; j < T; j++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)j * (size_t)in + i);
            _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) acc[r][j] = _mm512_fmadd_ps(w[r], xv, acc[r][j]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < T; j++)
        _Pragma("GCC unroll 4") for (int r = 0; r < R; r++) t[(size_t)j * (size_t)ldt + r] = _mm512_reduce_add_ps(acc[r][j]);
}

AI void down_rows_tokens(const hc_dtype ty, const int T, const uint8_t *a, size_t rb, int c0, int c1, const float *x,
                         int64_t in, float *t, int64_t ldt)
{
    int k = c0;
    for (; k + 4 <= c1; k += 4) {
        const uint8_t *rows[4] = {a + (size_t)k * rb, a + (size_t)(k + 1) * rb, a + (size_t)(k + 2) * rb,
                                  a + (size_t)(k + 3) * rb};
        down_tile(ty, 4, T, rows, x, in, t + k, ldt);
    }
    for (; k < c1; k++) {
        const uint8_t *row = a + (size_t)k * rb;
        down_tile(ty, 1, T, &row, x, in, t + k, ldt);
    }
}

AI void down_tokens(const hc_dtype ty, const uint8_t *a, int64_t in, const float *x, int n_tok, float *t, int64_t ldt,
                    int k0, int k1)
{
    const size_t rb = (size_t)in * hc_float_elem_bytes(ty);
    int chunk = (int)(DOWN_CHUNK_BYTES / rb) & ~3;
    if (chunk < 4) chunk = 4;
    for (int c0 = k0; c0 < k1; c0 += chunk) {
        const int c1 = c0 + chunk < k1 ? c0 + chunk : k1;
        for (int j = 0; j < n_tok; j += 4) {
            const float *xj = x + (size_t)j * (size_t)in;
            float *tj = t + (size_t)j * (size_t)ldt;
            switch (n_tok - j >= 4 ? 4 : n_tok - j) {
            case 4: down_rows_tokens(ty, 4, a, rb, c0, c1, xj, in, tj, ldt); break;
            case 3: down_rows_tokens(ty, 3, a, rb, c0, c1, xj, in, tj, ldt); break;
            case 2: down_rows_tokens(ty, 2, a, rb, c0, c1, xj, in, tj, ldt); break;
            default: down_rows_tokens(ty, 1, a, rb, c0, c1, xj, in, tj, ldt); break;
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

int hc_branch_avx512_has(hc_dtype t) { return t == HC_F32 || t == HC_F16 || t == HC_BF16; }

void hc_branch_down_avx512(const hc_branch *b, const float *x, int n_tok, float *t, int64_t ldt, int k0, int k1)
{
    switch (b->dtype) {
    case HC_F32: down_f32(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_F16: down_f16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    case HC_BF16: down_bf16(b->a, b->in, x, n_tok, t, ldt, k0, k1); break;
    default: break;
    }
}

/* ---------------- up: y[j][o] += sum_k t[j][k] B[k][o] ---------------- */

/* One token: y[o0..o1) += sum_k t[k] B[k][o0..o1), a segment of outputs at a time, row after row. */
AI void up_one_token(const hc_dtype ty, const uint8_t *bm, int64_t out, int rank, const float *t, float *y, int64_t o0,
                     int64_t o1)
{
    const size_t es = hc_float_elem_bytes(ty), rb = (size_t)out * es;
    for (int64_t s0 = o0; s0 < o1; s0 += UP1_SEG) {
        const int64_t s1 = s0 + UP1_SEG < o1 ? s0 + UP1_SEG : o1;
        const size_t seg = (size_t)(s1 - s0) * es;
        for (int k = 0; k < rank; k++) {
            const uint8_t *row = bm + (size_t)k * rb;
            const __m512 tv = _mm512_set1_ps(t[k]);
            int64_t o = s0;
            for (; o + 32 <= s1; o += 32) {
                /* PF_DIST ahead in the order the segment's rows are read (into the next rows' part;
                   past the last row, nothing: the next segment's start is another stream) */
                size_t ahead = (size_t)(o - s0) * es + PF_DIST;
                const int kk = k + (int)(ahead / seg);
                if (kk < rank) {
                    const uint8_t *p = bm + (size_t)kk * rb + (size_t)s0 * es + ahead % seg;
                    prefetch(p);
                    if (es == 4) prefetch(p + 64);
                }
                float *yo = y + o;
                _mm512_storeu_ps(yo, _mm512_fmadd_ps(tv, hc_avx512_row16(ty, row, o, 0xffff), _mm512_loadu_ps(yo)));
                _mm512_storeu_ps(yo + 16, _mm512_fmadd_ps(tv, hc_avx512_row16(ty, row, o + 16, 0xffff), _mm512_loadu_ps(yo + 16)));
            }
            for (; o < s1; o += 16) {
                const __mmask16 m = hc_avx512_first(s1 - o);
                _mm512_mask_storeu_ps(y + o, m, _mm512_fmadd_ps(tv, hc_avx512_row16(ty, row, o, m), _mm512_maskz_loadu_ps(m, y + o)));
            }
        }
    }
}

/* Several tokens, the block of outputs [o, o + 16 NV) (m: the lanes of its last vector) and
 * directions [k0, k0 + kl): B's part converted to f32 once into bf, then 4 tokens at a time. */
AI void up_block_tokens(const hc_dtype ty, const int NV, const uint8_t *bm, size_t rb, int k0, int kl, const float *t,
                        int64_t ldt, int n_tok, float *y, int64_t ldy, int64_t o, __mmask16 m)
{
    _Alignas(64) float bf[UPN_ROWS][UPN_COLS];
    for (int k = 0; k < kl; k++) {
        const uint8_t *row = bm + (size_t)(k0 + k) * rb;
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
            _mm512_store_ps(bf[k] + 16 * v, hc_avx512_row16(ty, row, o + 16 * v, v == NV - 1 ? m : 0xffff));
    }
    for (int j = 0; j < n_tok; j += 4) {
        const int T = n_tok - j >= 4 ? 4 : n_tok - j;
        __m512 acc[4][4];
        _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++)
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[u][v] = _mm512_setzero_ps();
        const float *tj = t + (size_t)j * (size_t)ldt + k0;
        if (T == 4) {
            for (int k = 0; k < kl; k++)
                _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++) {
                    const __m512 tv = _mm512_set1_ps(tj[(size_t)u * (size_t)ldt + k]);
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        acc[u][v] = _mm512_fmadd_ps(tv, _mm512_load_ps(bf[k] + 16 * v), acc[u][v]);
                }
        } else {
            for (int k = 0; k < kl; k++)
                for (int u = 0; u < T; u++) {
                    const __m512 tv = _mm512_set1_ps(tj[(size_t)u * (size_t)ldt + k]);
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        acc[u][v] = _mm512_fmadd_ps(tv, _mm512_load_ps(bf[k] + 16 * v), acc[u][v]);
                }
        }
        for (int u = 0; u < T; u++) {
            float *yj = y + (size_t)(j + u) * (size_t)ldy + o;
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
                const __mmask16 mv = v == NV - 1 ? m : 0xffff;
                _mm512_mask_storeu_ps(yj + 16 * v, mv, _mm512_add_ps(_mm512_maskz_loadu_ps(mv, yj + 16 * v), acc[u][v]));
            }
        }
    }
}

AI void up_tokens(const hc_dtype ty, const uint8_t *bm, int64_t out, int rank, const float *t, int64_t ldt, int n_tok,
                  float *y, int64_t ldy, int64_t o0, int64_t o1)
{
    if (n_tok == 1) {
        up_one_token(ty, bm, out, rank, t, y, o0, o1);
        return;
    }
    const size_t rb = (size_t)out * hc_float_elem_bytes(ty);
    for (int k0 = 0; k0 < rank; k0 += UPN_ROWS) {
        const int kl = rank - k0 < UPN_ROWS ? rank - k0 : UPN_ROWS;
        int64_t o = o0;
        for (; o + UPN_COLS <= o1; o += UPN_COLS) up_block_tokens(ty, 4, bm, rb, k0, kl, t, ldt, n_tok, y, ldy, o, 0xffff);
        for (; o < o1; o += 16) up_block_tokens(ty, 1, bm, rb, k0, kl, t, ldt, n_tok, y, ldy, o, hc_avx512_first(o1 - o));
    }
}

#define UP_KERNEL(name, type)                                                                          \
    static __attribute__((noinline)) void name(const uint8_t *bm, int64_t out, int rank, const float *t, \
                                               int64_t ldt, int n_tok, float *y, int64_t ldy, int64_t o0, \
                                               int64_t o1)                                             \
    {                                                                                                  \
        up_tokens(type, bm, out, rank, t, ldt, n_tok, y, ldy, o0, o1);                                 \
    }

UP_KERNEL(up_f32, HC_F32)
UP_KERNEL(up_f16, HC_F16)
UP_KERNEL(up_bf16, HC_BF16)

void hc_branch_up_avx512(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y, int64_t ldy,
                         int64_t o0, int64_t o1)
{
    switch (b->dtype) {
    case HC_F32: up_f32(b->b, b->out, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_F16: up_f16(b->b, b->out, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    case HC_BF16: up_bf16(b->b, b->out, rank, t, ldt, n_tok, y, ldy, o0, o1); break;
    default: break;
    }
}
