/* ops_avx2.c: AVX2/FMA/F16C kernels of the decoder's non-matmul ops: a vectorized e^x, RMSNorm, SwiGLU,
 * add, scale, RoPE, f32 -> f16 rows, and grouped-query attention over an f32 or f16 KV cache. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hc/hc_avx2.h"
#include "ops_cpu.h"

#define AI static inline __attribute__((always_inline))

/* Lanes [0, n) set (n <= 8): for the tails of rows. */
AI __m256i tail_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---------------- e^x ----------------
 * x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2 (ln2 in two parts, so n ln2 is exact);
 * e^r by its Taylor polynomial of degree 7 (truncation below 6e-9 relative); 2^n applied as two
 * exponent-field multiplies 2^(n/2) 2^(n - n/2), so that results in the subnormal range
 * (x < -87.3) are rounded once and correctly. Inputs are clamped to [-104, 88.75]: below
 * -103.3 the result is 0, above 88.722 it overflows to +inf, as expf. */
AI __m256 exp8(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.75f), lo = _mm256_set1_ps(-104.0f);
    const __m256 zero_below = _mm256_set1_ps(-103.3f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(_mm256_cmp_ps(x, zero_below, _CMP_LT_OQ), y);
}

void hc_exp_avx2(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask((int)(n - i));
        _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
    }
}

/* ---------------- element-wise ---------------- */

void hc_rmsnorm_avx2(const float *x, const float *w, float *y, int dim, float eps)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= dim; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i + 8 <= dim; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float ss = hc_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (int k = i; k < dim; k++) ss += x[k] * x[k];
    float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= dim; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi), _mm256_loadu_ps(w + i)));
    for (; i < dim; i++) y[i] = x[i] * inv * w[i];
}

AI __m256 swiglu8(__m256 g, __m256 u)
{
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_div_ps(_mm256_mul_ps(g, u), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

void hc_swiglu_avx2(const float *gate, const float *up, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        __m256i m = tail_mask((int)(n - i));
        _mm256_maskstore_ps(out + i, m, swiglu8(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
    }
}

void hc_add_avx2(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(y + i + 8, _mm256_add_ps(_mm256_loadu_ps(y + i + 8), _mm256_loadu_ps(x + i + 8)));
    }
    for (; i < n; i++) y[i] += x[i];
}

void hc_scale_avx2(float *x, size_t n, float s)
{
    __m256 v = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), v));
    for (; i < n; i++) x[i] *= s;
}

/* ---------------- RoPE ---------------- */

void hc_rope_avx2(float *x, int n_head, int head_dim, int n_rot, const float *cos, const float *sin,
                  hc_rope_mode mode)
{
    const int half = n_rot / 2;
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (int h = 0; h < n_head; h++) {
        float *v = x + (size_t)h * head_dim;
        int i = 0;
        if (mode == HC_ROPE_NEOX) {
            for (; i + 8 <= half; i += 8) {
                __m256 x0 = _mm256_loadu_ps(v + i), x1 = _mm256_loadu_ps(v + i + half);
                __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
                _mm256_storeu_ps(v + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
                _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
            }
            for (; i < half; i++) {
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * cos[i] - x1 * sin[i];
                v[i + half] = x0 * sin[i] + x1 * cos[i];
            }
        } else {   /* pairs (2i, 2i+1): 4 pairs a vector; even lanes x0 c - x1 s, odd x1 c + x0 s */
            for (; i + 4 <= half; i += 4) {
                __m256 xv = _mm256_loadu_ps(v + 2 * i);
                __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cos + i)), dup);
                __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sin + i)), dup);
                __m256 sw = _mm256_permute_ps(xv, 0xb1);
                _mm256_storeu_ps(v + 2 * i, _mm256_fmaddsub_ps(xv, c, _mm256_mul_ps(sw, s)));
            }
            for (; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * cos[i] - x1 * sin[i];
                v[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/* ---------------- f32 -> f16 ---------------- */

void hc_f32_to_f16_avx2(const float *x, uint16_t *y, size_t n)
{
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)   /* an immediate, also at -O0 */
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), RNE));
        _mm_storeu_si128((__m128i *)(y + i + 8), _mm256_cvtps_ph(_mm256_loadu_ps(x + i + 8), RNE));
    }
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), RNE));
    if (i < n) {
        uint16_t tail[8];
        _mm_storeu_si128((__m128i *)tail, _mm256_cvtps_ph(_mm256_maskload_ps(x + i, tail_mask((int)(n - i))), RNE));
        memcpy(y + i, tail, (n - i) * sizeof *tail);
    }
}
#undef RNE

/* ---------------- attention ----------------
 * The queries of a group share one kv head (the heads of that kv head, for a block of tokens).
 * Three passes over the keys the group sees, each by blocks of ATT_KB keys whose K (or V) rows
 * stay in L1 while every query of the group uses them:
 *   1. scores s = scale q.k, 3 queries x 4 keys a tile (4 sums reduced by horizontal adds);
 *   2. per query: max, e^(s - max) in place, their sum;
 *   3. out = sum_j e_j v_j, then / sum (or kept unnormalized with max and sum: split keys).
 * The cache holds f32 or f16 (F16 below, a constant in every inlined copy): f16 rows are widened
 * by F16C as they are loaded, so an f16 cache costs half the memory traffic and the same math. */
#define ATT_KB 64
#define ATT_MAX_Q 128   /* queries of a group: a block of tokens times the heads of a kv head */

typedef struct att_query {
    const float *q;
    float *out;      /* head_dim floats: the final output, or a partial one */
    float *ml;       /* partial results: max and sum go here; NULL: normalize into out */
    float *s;        /* scores of keys k0.. */
    int n_keys;      /* keys this query sees within the group's range, counted from k0 */
    int kvh;         /* its kv head */
} att_query;

/* Element i of a cache array (f16 or f32) as an address. */
AI const void *kv_at(const int F16, const void *base, size_t i)
{
    return F16 ? (const void *)((const uint16_t *)base + i) : (const void *)((const float *)base + i);
}

/* 8 cache elements from element i on, as floats. */
AI __m256 kv_load8(const int F16, const void *base, size_t i)
{
    return F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)))
               : _mm256_loadu_ps((const float *)base + i);
}

/* Rows this far ahead are prefetched (the part of them one kv head reads): decoding reads the cache
 * once, with strides the hardware prefetchers do not run far enough ahead on. */
#define ATT_PREFETCH_ROWS 32

/* Prefetches n elements (a multiple of 64 bytes' worth, or less) at element i of base. */
AI void kv_prefetch(const int F16, const void *base, size_t i, int n)
{
    const char *p = kv_at(F16, base, i);
    for (int b = 0; b < n * (F16 ? 2 : 4); b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

/* Scores of R queries that see the same keys, for keys [j0, j1); s indexes from k0. */
AI void qk_tile(const int R, const int F16, const att_query *qs, const void *kc, size_t ks, int hd, float scale,
                int j0, int j1, int k0)
{
    const __m256 vscale = _mm256_set1_ps(scale);
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        __m256 acc[3][4];
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++)
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
        const void *k = kv_at(F16, kc, (size_t)j * ks);
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) kv_prefetch(F16, k, (size_t)(ATT_PREFETCH_ROWS + c) * ks, hd);
        for (int i = 0; i < hd; i += 8) {
            __m256 kv[4];
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) kv[c] = kv_load8(F16, k, (size_t)c * ks + i);
            _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) {
                __m256 qv = _mm256_loadu_ps(qs[r].q + i);
                _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) acc[r][c] = _mm256_fmadd_ps(qv, kv[c], acc[r][c]);
            }
        }
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) {
            __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
            __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            _mm_storeu_ps(qs[r].s + (j - k0), _mm_mul_ps(s4, _mm256_castps256_ps128(vscale)));
        }
    }
    for (; j < j1; j++) {
        const void *k = kv_at(F16, kc, (size_t)j * ks);
        __m256 acc[3];
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int i = 0; i < hd; i += 8) {
            __m256 kv = kv_load8(F16, k, (size_t)i);
            _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(qs[r].q + i), kv, acc[r]);
        }
        _Pragma("GCC unroll 3") for (int r = 0; r < R; r++) qs[r].s[j - k0] = hc_hsum8(acc[r]) * scale;
    }
}

/* The scores of n (1..3) queries of the same kv head and keys; one copy per cache type. */
static void qk_run(int f16, int n, const att_query *qs, const void *kc, size_t ks, int hd, float scale, int j0, int j1, int k0)
{
    if (f16) {
        if (n == 3) qk_tile(3, 1, qs, kc, ks, hd, scale, j0, j1, k0);
        else if (n == 2) qk_tile(2, 1, qs, kc, ks, hd, scale, j0, j1, k0);
        else qk_tile(1, 1, qs, kc, ks, hd, scale, j0, j1, k0);
    } else {
        if (n == 3) qk_tile(3, 0, qs, kc, ks, hd, scale, j0, j1, k0);
        else if (n == 2) qk_tile(2, 0, qs, kc, ks, hd, scale, j0, j1, k0);
        else qk_tile(1, 0, qs, kc, ks, hd, scale, j0, j1, k0);
    }
}

/* e^(s - max) in place over n scores; returns their sum and sets *max. */
static float softmax_row(float *s, int n, float *max_out)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
    float max = hc_hmax8(m);
    for (int k = i; k < n; k++) max = s[k] > max ? s[k] : max;
    __m256 vmax = _mm256_set1_ps(max), sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmax));
        _mm256_storeu_ps(s + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        __m256i msk = tail_mask(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(s + i, msk), vmax));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(msk));
        _mm256_maskstore_ps(s + i, msk, e);
        sum = _mm256_add_ps(sum, e);
    }
    *max_out = max;
    return hc_hsum8(sum);
}

/* o[0 .. 8 NV) += sum over j < n of p[j] v_j[0 .. 8 NV) (rows of v ks elements apart). */
AI void pv_chunk(const int NV, const int F16, const float *p, const void *v, size_t ks, int n, float *o)
{
    __m256 acc[8], acc2[8];
    _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++) acc[c] = _mm256_loadu_ps(o + 8 * c), acc2[c] = _mm256_setzero_ps();
    int j = 0;
    if (NV <= 4) {   /* short rows: two chains, so that the FMA latency is hidden */
        for (; j + 2 <= n; j += 2) {
            __m256 p0 = _mm256_broadcast_ss(p + j), p1 = _mm256_broadcast_ss(p + j + 1);
            const void *v0 = kv_at(F16, v, (size_t)j * ks), *v1 = kv_at(F16, v0, ks);
            kv_prefetch(F16, v0, (size_t)ATT_PREFETCH_ROWS * ks, 8 * NV);
            kv_prefetch(F16, v1, (size_t)ATT_PREFETCH_ROWS * ks, 8 * NV);
            _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++) {
                acc[c] = _mm256_fmadd_ps(p0, kv_load8(F16, v0, 8 * (size_t)c), acc[c]);
                acc2[c] = _mm256_fmadd_ps(p1, kv_load8(F16, v1, 8 * (size_t)c), acc2[c]);
            }
        }
    }
    for (; j < n; j++) {
        __m256 pj = _mm256_broadcast_ss(p + j);
        const void *vj = kv_at(F16, v, (size_t)j * ks);
        kv_prefetch(F16, vj, (size_t)ATT_PREFETCH_ROWS * ks, 8 * NV);
        _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++) acc[c] = _mm256_fmadd_ps(pj, kv_load8(F16, vj, 8 * (size_t)c), acc[c]);
    }
    _Pragma("GCC unroll 8") for (int c = 0; c < NV; c++) _mm256_storeu_ps(o + 8 * c, NV <= 4 ? _mm256_add_ps(acc[c], acc2[c]) : acc[c]);
}

AI void pv_row_t(const int F16, const float *p, const void *v, size_t ks, int n, int hd, float *o)
{
    for (int d0 = 0; d0 < hd; d0 += 64, v = kv_at(F16, v, 64), o += 64) {
        switch ((hd - d0 >= 64 ? 64 : hd - d0) / 8) {
        case 8: pv_chunk(8, F16, p, v, ks, n, o); break;
        case 7: pv_chunk(7, F16, p, v, ks, n, o); break;
        case 6: pv_chunk(6, F16, p, v, ks, n, o); break;
        case 5: pv_chunk(5, F16, p, v, ks, n, o); break;
        case 4: pv_chunk(4, F16, p, v, ks, n, o); break;
        case 3: pv_chunk(3, F16, p, v, ks, n, o); break;
        case 2: pv_chunk(2, F16, p, v, ks, n, o); break;
        default: pv_chunk(1, F16, p, v, ks, n, o); break;
        }
    }
}

static void pv_row(int f16, const float *p, const void *v, size_t ks, int n, int hd, float *o)
{
    if (f16) pv_row_t(1, p, v, ks, n, hd, o);
    else pv_row_t(0, p, v, ks, n, hd, o);
}

/* A group of queries over keys [k0, k0 + n_keys of each query). Queries of the same kv head that
 * see the same keys are next to each other (a token's heads), so that tiles of 3 share K loads.
 * The key blocks are the outer loop, so K and V are read in address order. */
static void attn_group(const hc_attn_args *a, att_query *qs, int n_q, int k0)
{
    const int hd = a->head_dim, f16 = a->kv_dtype == HC_F16;
    const size_t ks = (size_t)a->n_head_kv * hd;
    int kmax = k0;
    for (int i = 0; i < n_q; i++) kmax = k0 + qs[i].n_keys > kmax ? k0 + qs[i].n_keys : kmax;
    for (int kb = k0; kb < kmax; kb += ATT_KB) {
        int kbe = kb + ATT_KB < kmax ? kb + ATT_KB : kmax;
        for (int i = 0; i < n_q;) {
            int n = 1;
            while (i + n < n_q && n < 3 && qs[i + n].n_keys == qs[i].n_keys && qs[i + n].kvh == qs[i].kvh) n++;
            int je = k0 + qs[i].n_keys < kbe ? k0 + qs[i].n_keys : kbe;
            const void *kc = f16 ? kv_at(1, a->k_cache, (size_t)qs[i].kvh * hd) : kv_at(0, a->k_cache, (size_t)qs[i].kvh * hd);
            if (kb < je) qk_run(f16, n, qs + i, kc, ks, hd, a->scale, kb, je, k0);
            i += n;
        }
    }
    float mx[ATT_MAX_Q], sm[ATT_MAX_Q];
    for (int i = 0; i < n_q; i++) {
        sm[i] = qs[i].n_keys > 0 ? softmax_row(qs[i].s, qs[i].n_keys, &mx[i]) : 0.0f;
        if (qs[i].n_keys <= 0) mx[i] = -INFINITY;
        memset(qs[i].out, 0, (size_t)hd * sizeof(float));
    }
    for (int kb = k0; kb < kmax; kb += ATT_KB) {
        int kbe = kb + ATT_KB < kmax ? kb + ATT_KB : kmax;
        for (int i = 0; i < n_q; i++) {
            int je = k0 + qs[i].n_keys < kbe ? k0 + qs[i].n_keys : kbe;
            size_t at = (size_t)kb * ks + (size_t)qs[i].kvh * hd;
            const void *vc = f16 ? kv_at(1, a->v_cache, at) : kv_at(0, a->v_cache, at);
            if (kb < je) pv_row(f16, qs[i].s + (kb - k0), vc, ks, je - kb, hd, qs[i].out);
        }
    }
    for (int i = 0; i < n_q; i++) {
        if (qs[i].ml) {
            qs[i].ml[0] = mx[i];
            qs[i].ml[1] = sm[i];
        } else {
            hc_scale_avx2(qs[i].out, (size_t)hd, 1.0f / sm[i]);
        }
    }
}

int hc_attention_avx2_fits(const hc_attn_args *a)
{
    return a->head_dim > 0 && a->head_dim % 8 == 0 && a->n_head / a->n_head_kv <= ATT_MAX_Q &&
           (a->kv_dtype == HC_F32 || a->kv_dtype == HC_F16);
}

void hc_attention_units_avx2(const hc_attn_args *a, long u0, long u1, float *scratch)
{
    if (u0 >= u1) return;
    const int nh = a->n_head, hd = a->head_dim, g = nh / a->n_head_kv, tb = hc_attn_block_tokens(a);
    const size_t stride = hc_attn_score_stride(a);
    att_query qs[ATT_MAX_Q];
    const long t_first = u0 / nh, t_last = (u1 - 1) / nh;
    /* one token: all its heads in one group (the rows of K and V are read once, in order);
     * several: blocks of tokens times the heads of one kv head (K and V stay in cache) */
    const int all_heads = t_first == t_last && nh <= ATT_MAX_Q;
    for (long t0 = t_first; t0 <= t_last; t0 += tb) {
        long t1 = t0 + tb <= t_last + 1 ? t0 + tb : t_last + 1;
        int n_q = 0;
        for (int kvh = 0; kvh < a->n_head_kv; kvh++) {
            for (long t = t0; t < t1; t++)
                for (int h = kvh * g; h < (kvh + 1) * g; h++) {
                    long u = t * nh + h;
                    if (u < u0 || u >= u1) continue;
                    att_query *q = &qs[n_q];
                    q->q = a->q + (size_t)u * hd;
                    q->out = a->out + (size_t)u * hd;
                    q->ml = NULL;
                    q->s = scratch + (size_t)n_q * stride;
                    q->n_keys = a->pos0 + (int)t + 1;
                    q->kvh = kvh;
                    n_q++;
                }
            if (n_q && !all_heads) {
                attn_group(a, qs, n_q, 0);
                n_q = 0;
            }
        }
        if (n_q) attn_group(a, qs, n_q, 0);
    }
}

void hc_attention_keys_avx2(const hc_attn_args *a, int k0, int k1, float *scratch, float *part)
{
    const int hd = a->head_dim, g = a->n_head / a->n_head_kv;
    const size_t stride = hc_attn_score_stride(a), pf = hc_attn_part_floats(a);
    int n_keys = a->pos0 + 1;
    if (k1 > n_keys) k1 = n_keys;
    att_query qs[ATT_MAX_Q];
    int n_q = 0;
    for (int h = 0; h < a->n_head; h++) {
        float *p = part + (size_t)h * pf;
        qs[n_q] = (att_query){ .q = a->q + (size_t)h * hd, .out = p + 8, .ml = p, .s = scratch + (size_t)n_q * stride,
                               .n_keys = k1 > k0 ? k1 - k0 : 0, .kvh = h / g };
        if (++n_q == ATT_MAX_Q || h + 1 == a->n_head) {
            attn_group(a, qs, n_q, k0);
            n_q = 0;
        }
    }
}
