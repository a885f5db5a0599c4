/* test_kernels_ggml.c: the GGUF-type CPU matmul kernels: AVX2 and AVX-512 equal the reference, all
 * equal a float dot of the dequantized weights within the activation-quantization bound; bad calls fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul_ggml.h"
#include "test_util.h"

/* ---- a small deterministic generator ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint32_t rnd_u32(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 16);
}

static float rnd_unit(rng *r) { return (float)rnd_u32(r) / 4294967296.0f * 2.0f - 1.0f; } /* [-1, 1) */

/* ---- test data ---- */

/* Byte offsets of the f16 scale fields of each block type (-1 ends the list). */
static const int *f16_fields(hc_dtype t)
{
    static const int d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1},
                     q6k[] = {208, -1}, none[] = {-1};
    switch (t) {
    case HC_Q4_0: case HC_Q5_0: case HC_Q8_0: return d0;
    case HC_Q4_1: case HC_Q5_1: case HC_Q4_K: case HC_Q5_K: return d0m2;
    case HC_Q2_K: return q2k;
    case HC_Q3_K: return q3k;
    case HC_Q6_K: return q6k;
    default: return none;
    }
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = hc_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random weights of out rows of `in` elements: random quant bytes with sane scales (the second
 * f16 field, a min, may be negative), or random floats in the plain types. Exactly sized, so that
 * AddressSanitizer sees any read past the end. */
static uint8_t *make_weights(rng *r, hc_dtype t, int64_t in, int64_t out, size_t *bytes)
{
    size_t rb = hc_dtype_row_bytes(t, in), n = rb * (size_t)out;
    uint8_t *w = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    *bytes = n;
    if (t == HC_F32 || t == HC_F16 || t == HC_BF16) {
        for (size_t i = 0; i < (size_t)(in * out); i++) {
            float v = rnd_unit(r);
            if (t == HC_F32) memcpy(w + 4 * i, &v, 4);
            else {
                uint16_t h = t == HC_F16 ? hc_f32_to_f16(v) : hc_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return w;
    }
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd_u32(r);
    size_t bb = hc_dtype_block_bytes(t);
    for (size_t b = 0; b < n / bb; b++) {
        const int *f = f16_fields(t);
        for (int k = 0; f[k] >= 0; k++)
            put_f16(w + b * bb + f[k], k == 0 ? 0.002f + 0.02f * fabsf(rnd_unit(r)) : 0.02f * rnd_unit(r));
    }
    return w;
}

/* An independent decoder of the three simplest blocks, from the GGUF definitions, to check the
 * library's dequantization the float reference below relies on. */
static float local_f16(const uint8_t *p) { return hc_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static int local_dequant(hc_dtype t, const uint8_t *b, float *y)
{
    switch (t) {
    case HC_Q4_0:
        for (int j = 0; j < 16; j++) {
            y[j] = local_f16(b) * (float)((b[2 + j] & 15) - 8);
            y[j + 16] = local_f16(b) * (float)((b[2 + j] >> 4) - 8);
        }
        return 1;
    case HC_Q4_1:
        for (int j = 0; j < 16; j++) {
            y[j] = local_f16(b) * (float)(b[4 + j] & 15) + local_f16(b + 2);
            y[j + 16] = local_f16(b) * (float)(b[4 + j] >> 4) + local_f16(b + 2);
        }
        return 1;
    case HC_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = local_f16(b) * (float)(int8_t)b[2 + j];
        return 1;
    default:
        return 0;
    }
}

static float *dequant_all(hc_dtype t, const uint8_t *w, int64_t in, int64_t out)
{
    float *wf = malloc(sizeof(float) * (size_t)(in * out));
    CU_ASSERT_PTR_NOT_NULL_FATAL(wf);
    size_t rb = hc_dtype_row_bytes(t, in);
    for (int64_t o = 0; o < out; o++) hc_dequantize_row(t, w + (size_t)o * rb, wf + o * in, in);
    float blk[32];
    if (local_dequant(t, w, blk)) {   /* every block of the first rows, decoded independently */
        size_t bb = hc_dtype_block_bytes(t);
        int bad = 0;
        for (int64_t b = 0; b < (in / 32) * (out < 4 ? out : 4); b++) {
            local_dequant(t, w + (size_t)b * bb, blk);
            bad += memcmp(blk, wf + b * 32, sizeof blk) != 0;
        }
        CU_ASSERT_EQUAL(bad, 0);
    }
    return wf;
}

/* Activations in [-1, 1) with an outlier now and then and a block of zeros (scale 0). */
static float *make_acts(rng *r, int64_t in, int n_tok)
{
    float *x = malloc(sizeof(float) * (size_t)(in * n_tok));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (int64_t i = 0; i < in * n_tok; i++) {
        x[i] = rnd_unit(r);
        if (rnd_u32(r) % 97 == 0) x[i] *= 20.0f;
    }
    if (in >= 64) memset(x + 32, 0, 32 * sizeof(float));
    return x;
}

/* ---- one matmul configuration ---- */

typedef struct stats {
    double worst_kernel;  /* max |kernel - exact| / magnitude (avx2 and reference vs exact) */
    double worst_bound;   /* max |kernel - float dot| / derived bound */
} stats;

static void check_case(hc_dtype t, int64_t in, int64_t out, int n_tok, stats *st)
{
    rng r = {0x9E3779B97F4A7C15ull ^ (uint64_t)(t * 1000003 + in * 131 + out * 7 + n_tok)};
    size_t wbytes;
    uint8_t *w = make_weights(&r, t, in, out, &wbytes);
    float *wf = dequant_all(t, w, in, out);
    float *x = make_acts(&r, in, n_tok);
    int q8 = hc_matmul_wants_q8(t);
    size_t xrb = hc_act_q8_bytes(in);
    hc_q8_block *xq = NULL;
    float *xh = malloc(sizeof(float) * (size_t)(in * n_tok));  /* the activations the kernels see */
    CU_ASSERT_PTR_NOT_NULL_FATAL(xh);
    if (q8) {
        CU_ASSERT_EQUAL_FATAL(xrb, (size_t)(in / 32) * sizeof(hc_q8_block));
        xq = malloc(xrb * (size_t)n_tok);
        CU_ASSERT_PTR_NOT_NULL_FATAL(xq);
        for (int k = 0; k < n_tok; k++) hc_act_quantize_q8_ref(x + k * in, (hc_q8_block *)((char *)xq + k * xrb), in);
        for (int64_t i = 0; i < in * n_tok; i++) xh[i] = xq[i / 32].d * (float)xq[i / 32].q[i % 32];
    } else {
        memcpy(xh, x, sizeof(float) * (size_t)(in * n_tok));
    }
    size_t ny = (size_t)(out * n_tok);
    float *y_ref = malloc(ny * sizeof(float)), *y_avx = malloc(ny * sizeof(float)), *y_dis = malloc(ny * sizeof(float));
    float *y_512 = malloc(ny * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(y_ref && y_avx && y_dis && y_512);
    HC_ASSERT_OK(hc_matmul_rows_ref(t, w, in, x, xq, n_tok, y_ref, out, 0, out));
    HC_ASSERT_OK(hc_matmul_rows(t, w, in, x, xq, n_tok, y_dis, out, 0, out));
    int have_avx = hc_cpu_has_avx2() && hc_matmul_avx2_has(t);
    if (have_avx) hc_matmul_rows_avx2(t, w, in, x, xq, n_tok, y_avx, out, 0, out);
    else memcpy(y_avx, y_ref, ny * sizeof(float));
    const int float_512 = hc_cpu_has_avx512() && hc_matmul_float_avx512_has(t);
    int have_512 = float_512 || (hc_cpu_has_avx512() && hc_matmul_avx512_has(t));
    if (float_512) {
        hc_matmul_float_avx512(t, w, in, x, n_tok, y_512, out, 0, out);
    } else if (have_512) {
        CU_ASSERT_EQUAL(hc_matmul_rows_avx512(t, w, in, xq, n_tok, y_512, out, 0, out), 1);
    } else {
        memcpy(y_512, y_avx, ny * sizeof(float));
    }
    /* what the dispatcher runs */
    const float *y_chosen = float_512 && n_tok > HC_AVX512_FLOAT_MAX_TOK ? y_avx : have_512 ? y_512 : y_avx;
    float *y_bat = malloc(ny * sizeof(float));            /* the many-token kernel, whatever n_tok */
    CU_ASSERT_PTR_NOT_NULL_FATAL(y_bat);
    if (have_512 && !float_512) {
        CU_ASSERT_EQUAL(hc_matmul_batch_avx512(t, w, in, xq, n_tok, y_bat, out, 0, out), 1);
    } else {
        memcpy(y_bat, y_512, ny * sizeof(float));
    }

    int fails = 0;
    for (int k = 0; k < n_tok; k++) {
        for (int64_t o = 0; o < out; o++) {
            const float *wr = wf + o * in, *xk = x + k * in, *xhk = xh + k * in;
            double exact = 0, mag = 0, fdot = 0, bound = 0;
            for (int64_t i = 0; i < in; i++) {
                exact += (double)wr[i] * xhk[i];
                mag += fabs((double)wr[i] * xhk[i]) + fabs((double)wr[i] * xk[i]);
                fdot += (double)wr[i] * xk[i];
            }
            if (q8) /* |x - d q| <= d/2 element-wise, so |sum w (x - xh)| <= sum_blocks d/2 sum|w| */
                for (int64_t b = 0; b < in / 32; b++) {
                    double sw = 0;
                    for (int i = 0; i < 32; i++) sw += fabs(wr[b * 32 + i]);
                    bound += 0.5 * xq[k * (in / 32) + b].d * sw;
                }
            double tol = 1e-6 * mag + 1e-30;   /* float rounding of the kernels' sums */
            size_t at = (size_t)k * (size_t)out + (size_t)o;
            double e_ref = fabs(y_ref[at] - exact), e_avx = fabs(y_avx[at] - exact), e_512 = fabs(y_512[at] - exact);
            double e_f = fabs(y_avx[at] - fdot), e_f512 = fabs(y_512[at] - fdot);
            if (fabs(y_bat[at] - exact) > e_512) e_512 = fabs(y_bat[at] - exact);
            if (fabs(y_bat[at] - fdot) > e_f512) e_f512 = fabs(y_bat[at] - fdot);
            if (e_ref > 1e-6 * mag + 1e-30 || e_avx > tol || e_512 > tol || y_dis[at] != y_chosen[at] ||
                fabs(y_ref[at] - fdot) > bound * (1 + 1e-6) + tol || e_f > bound * (1 + 1e-6) + tol ||
                e_f512 > bound * (1 + 1e-6) + tol) {
                if (fails++ < 5)
                    printf("\n  %s in=%lld out=%lld tok %d row %lld: ref %.8g avx2 %.8g avx512 %.8g batch %.8g dispatch %.8g "
                           "exact %.8g float %.8g bound %.3g mag %.3g", hc_dtype_name(t), (long long)in, (long long)out, k,
                           (long long)o, y_ref[at], y_avx[at], y_512[at], y_bat[at], y_dis[at], exact, fdot, bound, mag);
            }
            if (e_512 > e_avx) e_avx = e_512;
            if (e_f512 > e_f) e_f = e_f512;
            if (mag > 0) {
                double rel = (e_ref > e_avx ? e_ref : e_avx) / mag;
                if (rel > st->worst_kernel) st->worst_kernel = rel;
            }
            if (bound > 0 && e_f / bound > st->worst_bound) st->worst_bound = e_f / bound;
        }
    }
    CU_ASSERT_EQUAL(fails, 0);
    free(w), free(wf), free(x), free(xq), free(xh), free(y_ref), free(y_avx), free(y_dis), free(y_512), free(y_bat);
}

typedef struct shape {
    int64_t in, out;
} shape;

static void check_type(hc_dtype t)
{
    int bs = hc_dtype_block_size(t);
    /* rows of 1, 3, 5, 13 (a tail reaching the second half of a chunk of 16), 18, 31, 48 blocks */
    /* 2304 and 2560: more than one K block of the many-token kernels (2048) */
    static const shape small_blocks[] = {{32, 9}, {96, 64}, {160, 37}, {416, 19}, {576, 576}, {992, 23},
                                         {2304, 13}, {576, 1536}, {1536, 576}, {0, 0}};
    static const shape k_blocks[] = {{256, 64}, {512, 37}, {1792, 11}, {2560, 19}, {1536, 576}, {768, 1536}, {0, 0}};
    static const shape plain[] = {{96, 64}, {100, 37}, {13, 5}, {576, 576}, {576, 1536}, {1536, 576}, {0, 0}};
    const shape *shapes = bs == 256 ? k_blocks : bs == 32 ? small_blocks : plain;
    stats st = {0, 0};
    /* under the sanitizers (ten times slower) the big shapes take one, a few and many tokens only */
    const char *san = getenv("HC_TEST_SANITIZED");
    static const int tok_small[] = {1, 2, 3, 5, 7, 8, 17, 0}, tok_big[] = {1, 3, 7, 16, 33, 0}, tok_big_san[] = {1, 3, 33, 0};
    const int *big = san && !strcmp(san, "1") ? tok_big_san : tok_big;
    for (const shape *s = shapes; s->in; s++) {
        int small = s->in * s->out <= 100000;
        for (const int *nt = small ? tok_small : big; *nt; nt++) check_case(t, s->in, s->out, *nt, &st);
    }
    printf("\n  %-5s worst |kernel - exact| / sum|w x| = %.2e, worst |kernel - float dot| / bound = %.3f",
           hc_dtype_name(t), st.worst_kernel, st.worst_bound);
}

static void test_f32(void) { check_type(HC_F32); }
static void test_f16(void) { check_type(HC_F16); }
static void test_bf16(void) { check_type(HC_BF16); }
static void test_q4_0(void) { check_type(HC_Q4_0); }
static void test_q4_1(void) { check_type(HC_Q4_1); }
static void test_q5_0(void) { check_type(HC_Q5_0); }
static void test_q5_1(void) { check_type(HC_Q5_1); }
static void test_q8_0(void) { check_type(HC_Q8_0); }
static void test_q4_k(void) { check_type(HC_Q4_K); }
static void test_q6_k(void) { check_type(HC_Q6_K); }
/* types with only the reference kernel */
static void test_q2_k_q3_k_q5_k(void)
{
    check_type(HC_Q2_K);
    check_type(HC_Q3_K);
    check_type(HC_Q5_K);
}

/* ---- the activation quantizer ---- */

static void test_quantize_q8(void)
{
    rng r = {12345};
    const int64_t n = 32 * 40;
    float x[32 * 40];
    for (int64_t i = 0; i < n; i++) x[i] = rnd_unit(&r) * (i < 320 ? 1.0f : i < 640 ? 1e-30f : 3e4f);
    memset(x + 96, 0, 32 * sizeof(float));                                /* a zero block */
    for (int i = 0; i < 32; i++) x[160 + i] = (float)(i - 16) * 0.5f;     /* ties: x / d = k + 0.5 */
    x[191] = 63.5f;  /* amax = 63.5, d = 0.5: x/d is exact, so ties to even are checked */
    hc_q8_block a[40], b[40];
    hc_act_quantize_q8_ref(x, a, n);
    hc_act_quantize_q8(x, b, n);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    if (hc_cpu_has_avx2()) {
        hc_act_quantize_q8_avx2(x, b, n);
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    }
    int bad = 0;
    for (int64_t blk = 0; blk < n / 32; blk++) {
        float amax = 0;
        int sum = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[blk * 32 + i]));
        if (a[blk].d != amax / 127.0f) bad++;
        for (int i = 0; i < 32; i++) {
            int q = a[blk].q[i];
            sum += q;
            if (q < -127 || q > 127) bad++;
            if (fabsf(x[blk * 32 + i] - a[blk].d * (float)q) > 0.5f * a[blk].d * (1 + 1e-5f)) bad++;
        }
        if (a[blk].s != a[blk].d * (float)sum) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(a[3].d, 0.0f);   /* the zero block */
    CU_ASSERT_EQUAL(a[3].s, 0.0f);
    /* block 5: x = (i - 16) / 2 for i < 31, d = 0.5, so q = i - 16 exactly; x[191] = 63.5 -> 127 */
    CU_ASSERT_EQUAL(a[5].q[0], -16);
    CU_ASSERT_EQUAL(a[5].q[31], 127);
    CU_ASSERT_EQUAL(hc_act_q8_bytes(64), 2 * sizeof(hc_q8_block));
    CU_ASSERT_EQUAL(hc_act_q8_bytes(48), 0);
}

/* rounding ties of x / d go to even in both versions */
static void test_quantize_ties(void)
{
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)i * 0.5f + 0.25f;   /* amax = 15.75 */
    x[31] = 127.0f / 4.0f;                                         /* amax = 31.75, d = 0.25 */
    hc_q8_block a, b;
    hc_act_quantize_q8_ref(x, &a, 32);
    hc_act_quantize_q8(x, &b, 32);
    CU_ASSERT_EQUAL(a.d, 0.25f);
    CU_ASSERT_EQUAL(a.q[0], 1);           /* 0.25 / 0.25 = 1 */
    CU_ASSERT_EQUAL(a.q[1], 3);           /* 0.75 / 0.25 = 3 */
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
    float t[32] = {0};
    t[0] = 127.0f, t[1] = 0.5f, t[2] = 1.5f, t[3] = 2.5f, t[4] = -0.5f, t[5] = -2.5f;  /* d = 1 */
    hc_act_quantize_q8_ref(t, &a, 32);
    hc_act_quantize_q8(t, &b, 32);
    CU_ASSERT_EQUAL(a.q[1], 0);
    CU_ASSERT_EQUAL(a.q[2], 2);
    CU_ASSERT_EQUAL(a.q[3], 2);
    CU_ASSERT_EQUAL(a.q[4], 0);
    CU_ASSERT_EQUAL(a.q[5], -2);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
}

/* ---- row ranges, strides, errors ---- */

static void check_range(hc_dtype t, int64_t in, int64_t out, int n_tok, int64_t row0, int64_t row1, int64_t ldy)
{
    rng r = {777 + (uint64_t)t};
    size_t wbytes;
    uint8_t *w = make_weights(&r, t, in, out, &wbytes);
    float *x = make_acts(&r, in, n_tok);
    size_t xrb = hc_act_q8_bytes(in);
    hc_q8_block *xq = NULL;
    if (hc_matmul_wants_q8(t)) {
        xq = malloc(xrb * (size_t)n_tok);
        for (int k = 0; k < n_tok; k++) hc_act_quantize_q8(x + k * in, (hc_q8_block *)((char *)xq + k * xrb), in);
    }
    size_t ny = (size_t)(ldy * n_tok);
    float *full = malloc(sizeof(float) * (size_t)(out * n_tok)), *y = malloc(sizeof(float) * ny);
    HC_ASSERT_OK(hc_matmul_rows_ref(t, w, in, x, xq, n_tok, full, out, 0, out));
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < ny; i++) y[i] = 12345.0f;
        if (pass == 0) HC_ASSERT_OK(hc_matmul_rows(t, w, in, x, xq, n_tok, y, ldy, row0, row1));
        else HC_ASSERT_OK(hc_matmul_rows_ref(t, w, in, x, xq, n_tok, y, ldy, row0, row1));
        int bad = 0;
        for (int k = 0; k < n_tok; k++)
            for (int64_t o = 0; o < ldy; o++) {
                float v = y[k * ldy + o];
                if (o >= row0 && o < row1) {
                    float e = full[k * out + o];
                    if (fabsf(v - e) > 1e-4f * (fabsf(e) + 1.0f)) bad++;
                } else if (v != 12345.0f) {
                    bad++;   /* written outside the range */
                }
            }
        if (bad) printf("\n  %s rows [%lld, %lld) ldy %lld: %d wrong values", hc_dtype_name(t), (long long)row0,
                        (long long)row1, (long long)ldy, bad);
        CU_ASSERT_EQUAL(bad, 0);
    }
    free(w), free(x), free(xq), free(full), free(y);
}

static void test_row_ranges(void)
{
    static const hc_dtype types[] = {HC_F32, HC_F16, HC_BF16, HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1, HC_Q8_0, HC_Q4_K, HC_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int64_t in = hc_dtype_block_size(types[i]) == 256 ? 256 : 64;
        check_range(types[i], in, 40, 1, 5, 38, 40);     /* n_tok 1: 4-row tiles and a tail */
        check_range(types[i], in, 40, 3, 5, 38, 50);     /* ldy > out */
        check_range(types[i], in, 40, 6, 17, 34, 47);
        check_range(types[i], in, 40, 5, 7, 7, 40);      /* an empty range writes nothing */
        check_range(types[i], in, 40, 2, 39, 40, 41);    /* the last row alone */
    }
}

static void test_errors(void)
{
    float x[64] = {0}, y[8];
    hc_q8_block xq[2];
    uint8_t w[8 * 36] = {0};
    hc_act_quantize_q8(x, xq, 64);
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_I8, w, 64, x, NULL, 1, y, 8, 0, 4), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "i8"));
    CU_ASSERT_EQUAL(hc_matmul_rows((hc_dtype)77, w, 64, x, NULL, 1, y, 8, 0, 4), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "77"));
    CU_ASSERT_EQUAL(hc_matmul_rows_ref(HC_PACKED, w, 64, x, NULL, 1, y, 8, 0, 4), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "packed"));
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q4_0, w, 48, x, xq, 1, y, 8, 0, 4), HC_E_ARG);   /* 48 % 32 */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "48"));
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q4_K, w, 64, x, xq, 1, y, 8, 0, 4), HC_E_ARG);   /* 64 % 256 */
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q4_0, w, 64, x, NULL, 1, y, 8, 0, 4), HC_E_ARG); /* no xq */
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_F16, w, 64, NULL, xq, 1, y, 8, 0, 4), HC_E_ARG); /* no x */
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q8_0, w, 64, x, xq, 2, y, 3, 0, 4), HC_E_ARG);   /* ldy < row1 */
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q8_0, w, 64, x, xq, 1, y, 8, 4, 2), HC_E_ARG);   /* reversed */
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q8_0, w, 64, x, xq, 1, y, 8, -1, 2), HC_E_ARG);
    CU_ASSERT_EQUAL(hc_matmul_rows(HC_Q8_0, w, 64, x, xq, 0, y, 8, 0, 2), HC_OK);      /* nothing to do */
    CU_ASSERT_EQUAL(hc_matmul_rows_ref(HC_Q8_0, w, 64, x, NULL, 1, y, 8, 0, 4), HC_E_ARG);
}

static void test_wants_q8(void)
{
    CU_ASSERT_EQUAL(hc_matmul_wants_q8(HC_F32), 0);
    CU_ASSERT_EQUAL(hc_matmul_wants_q8(HC_F16), 0);
    CU_ASSERT_EQUAL(hc_matmul_wants_q8(HC_BF16), 0);
    CU_ASSERT_EQUAL(hc_matmul_wants_q8(HC_I8), 0);
    CU_ASSERT_EQUAL(hc_matmul_wants_q8(HC_PACKED), 0);
    static const hc_dtype q[] = {HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1, HC_Q8_0, HC_Q2_K, HC_Q3_K, HC_Q4_K, HC_Q5_K, HC_Q6_K};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) CU_ASSERT_EQUAL(hc_matmul_wants_q8(q[i]), 1);
    if (!hc_cpu_has_avx2()) printf("\n  NOTE: no AVX2/FMA/F16C on this CPU: only the reference was tested");
    else if (!hc_cpu_has_avx512()) printf("\n  NOTE: no AVX-512 VNNI/GFNI on this CPU: its kernels were not tested");
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"int8 activation quantizer: exact, bounded, same bytes in both versions", test_quantize_q8},
        {"int8 activation quantizer: ties round to even", test_quantize_ties},
        {"which types take int8 activations", test_wants_q8},
        {"f32 kernel", test_f32},
        {"f16 kernel", test_f16},
        {"bf16 kernel", test_bf16},
        {"q4_0 kernel", test_q4_0},
        {"q4_1 kernel", test_q4_1},
        {"q5_0 kernel", test_q5_0},
        {"q5_1 kernel", test_q5_1},
        {"q8_0 kernel", test_q8_0},
        {"q4_K kernel", test_q4_k},
        {"q6_K kernel", test_q6_k},
        {"q2_K, q3_K, q5_K reference kernels", test_q2_k_q3_k_q5_k},
        {"row ranges not from 0, ldy > out, empty ranges", test_row_ranges},
        {"bad calls fail with a message", test_errors},
        {NULL, NULL}};
    return hc_test_run("kernels_ggml", cases);
}
