/* test_ops_avx2.c: the AVX2 kernels of the cpu device's non-matmul ops (kernels/cpu/ops_avx2.c)
 * against the plain references (e^x error bound, RMSNorm, SwiGLU, add, scale, RoPE, attention), and
 * the batched (many-token) int8 matmul path of kernels/cpu/matmul_ggml_avx2.c against its reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device_cpu.h"
#include "hc/hc_tensor.h"
#include "matmul_ggml.h"
#include "ops_cpu.h"
#include "ops_ref.h"
#include "test_util.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

#define NEED_AVX2()                                                 \
    do {                                                            \
        if (!hc_cpu_has_avx2()) {                                   \
            printf("SKIP: this CPU has no AVX2/FMA/F16C\n");        \
            return;                                                 \
        }                                                           \
    } while (0)

static double rel_err(double got, double want)
{
    double d = fabs(got - want);
    return want != 0.0 ? d / fabs(want) : d;
}

/* The vectorized e^x over [-88, 88] (subnormal results below -87.3 included), on a dense grid
 * and at random points, odd lengths for the masked tail; and the limits outside. */
static void test_exp(void)
{
    NEED_AVX2();
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    double worst = 0.0;
    float worst_x = 0.0f;
    unsigned s = 5;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++)
            x[i] = pass == 0 ? -88.0f + 176.0f * (float)i / (N - 1) : 88.0f * frand(&s);
        size_t n = N - 3;   /* a tail that is not a multiple of 8 */
        hc_exp_avx2(x, y, n);
        for (size_t i = 0; i < n; i++) {
            double e = rel_err(y[i], exp((double)x[i]));
            if (e > worst) worst = e, worst_x = x[i];
        }
    }
    printf("\n    e^x: worst relative error %.3g at x = %.6g\n", worst, worst_x);
    CU_ASSERT(worst < 1e-6);
    /* exact points and the limits */
    float xs[11] = { 0.0f, 1.0f, -1.0f, 0.6931472f, 88.7f, -87.0f, -103.9f, -200.0f, -INFINITY, 89.0f, INFINITY };
    float ys[11];
    hc_exp_avx2(xs, ys, 11);
    CU_ASSERT_EQUAL(ys[0], 1.0f);
    CU_ASSERT(rel_err(ys[1], M_E) < 3e-7);
    CU_ASSERT(rel_err(ys[2], 1.0 / M_E) < 3e-7);
    CU_ASSERT(rel_err(ys[4], exp((double)xs[4])) < 3e-7);
    CU_ASSERT(rel_err(ys[5], exp((double)xs[5])) < 3e-7);
    CU_ASSERT_EQUAL(ys[6], 0.0f);
    CU_ASSERT_EQUAL(ys[7], 0.0f);
    CU_ASSERT_EQUAL(ys[8], 0.0f);
    CU_ASSERT(isinf(ys[9]) && ys[9] > 0);
    CU_ASSERT(isinf(ys[10]) && ys[10] > 0);
    free(x);
    free(y);
}

static const int sizes[] = { 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 576, 1001, 1536 };
#define N_SIZES (int)(sizeof sizes / sizeof sizes[0])

static void test_rmsnorm(void)
{
    NEED_AVX2();
    unsigned s = 1;
    for (int k = 0; k < N_SIZES; k++) {
        int n = sizes[k];
        float *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
        for (int i = 0; i < n; i++) x[i] = frand(&s) * 5, w[i] = frand(&s);
        hc_ref_rmsnorm(x, w, r, n, 1e-5f);
        hc_rmsnorm_avx2(x, w, y, n, 1e-5f);
        for (int i = 0; i < n; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], r[i], 2e-6 * (fabs(r[i]) + 1e-3));
        hc_rmsnorm_avx2(x, w, x, n, 1e-5f);   /* in place */
        for (int i = 0; i < n; i++) CU_ASSERT_DOUBLE_EQUAL(x[i], r[i], 2e-6 * (fabs(r[i]) + 1e-3));
        free(x), free(w), free(y), free(r);
    }
}

static void test_swiglu(void)
{
    NEED_AVX2();
    unsigned s = 2;
    for (int k = 0; k < N_SIZES; k++) {
        int n = sizes[k];
        float *g = malloc(n * sizeof *g), *u = malloc(n * sizeof *u), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
        for (int i = 0; i < n; i++) g[i] = frand(&s) * 12, u[i] = frand(&s) * 3;
        if (n > 4) g[0] = 95.0f, g[1] = -95.0f, g[2] = 0.0f, g[3] = -30.0f;   /* past the exp limits */
        hc_ref_swiglu(g, u, r, n);
        hc_swiglu_avx2(g, u, y, n);
        for (int i = 0; i < n; i++) CU_ASSERT(fabs(y[i] - r[i]) <= 1e-6 * fabs(r[i]) + 1e-30);
        free(g), free(u), free(y), free(r);
    }
}

static void test_add_scale(void)
{
    NEED_AVX2();
    unsigned s = 3;
    for (int k = 0; k < N_SIZES; k++) {
        int n = sizes[k];
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
        for (int i = 0; i < n; i++) x[i] = frand(&s), y[i] = r[i] = frand(&s);
        hc_add_avx2(y, x, n);
        for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(y[i], r[i] + x[i]);
        hc_scale_avx2(y, n, 0.37f);
        for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(y[i], (r[i] + x[i]) * 0.37f);
        free(x), free(y), free(r);
    }
}

static void test_rope(void)
{
    NEED_AVX2();
    /* head_dim, n_rot: full, partial, odd numbers of pairs */
    const int shapes[][2] = { { 64, 64 }, { 16, 8 }, { 10, 6 }, { 128, 64 }, { 24, 22 }, { 8, 2 } };
    hc_rope_cache cache = { 0 };
    unsigned s = 4;
    for (int m = 0; m < 2; m++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            int hd = shapes[k][0], nr = shapes[k][1], nh = 5, pos = 1234;
            HC_ASSERT_OK(hc_rope_cache_prepare(&cache, 10000.0f, nr, pos + 1));
            float x[5 * 128], r[5 * 128];
            for (int i = 0; i < nh * hd; i++) x[i] = r[i] = frand(&s);
            const float *c = cache.cos + (size_t)pos * (nr / 2), *sn = cache.sin + (size_t)pos * (nr / 2);
            hc_rope_mode mode = m ? HC_ROPE_NEOX : HC_ROPE_NORM;
            hc_ref_rope_apply(r, nh, hd, nr, c, sn, mode);
            hc_rope_avx2(x, nh, hd, nr, c, sn, mode);
            for (int i = 0; i < nh * hd; i++) CU_ASSERT_DOUBLE_EQUAL(x[i], r[i], 1e-6);
        }
    hc_rope_cache_free(&cache);
}

/* ---------------- attention ---------------- */

typedef struct attn_case {
    int n_head, n_head_kv, head_dim, n_tok, pos0;
} attn_case;

/* Runs a through the cpu device with `threads` threads over a KV cache of kv_dtype (f32 or f16) and
 * compares every output with the reference of each (token, head) over the same cache. */
static void check_attention_kv(const attn_case *c, int threads, unsigned seed, hc_dtype kv_dtype)
{
    int n_ctx = c->pos0 + c->n_tok + 3, kv_dim = c->n_head_kv * c->head_dim, qd = c->n_head * c->head_dim;
    float *q = malloc(sizeof(float) * c->n_tok * qd), *k = malloc(sizeof(float) * n_ctx * kv_dim);
    float *v = malloc(sizeof(float) * n_ctx * kv_dim), *out = malloc(sizeof(float) * c->n_tok * qd);
    float *ref = malloc(sizeof(float) * c->n_tok * qd), *scores = malloc(sizeof(float) * n_ctx);
    CU_ASSERT_FATAL(q && k && v && out && ref && scores);
    unsigned s = seed;
    for (int i = 0; i < c->n_tok * qd; i++) q[i] = frand(&s) * 3;
    for (int i = 0; i < n_ctx * kv_dim; i++) k[i] = frand(&s), v[i] = frand(&s);
    for (int i = 0; i < c->n_tok * qd; i++) out[i] = NAN;
    if (kv_dtype == HC_F16) { /* the cache rows in f16, packed in place of the f32 ones */
        for (int i = 0; i < n_ctx * kv_dim; i++) ((uint16_t *)k)[i] = hc_f32_to_f16(k[i]), ((uint16_t *)v)[i] = hc_f32_to_f16(v[i]);
    }
    hc_attn_args a = { .q = q, .k_cache = k, .v_cache = v, .out = ref, .n_tok = c->n_tok, .pos0 = c->pos0, .n_ctx = n_ctx,
                       .n_head = c->n_head, .n_head_kv = c->n_head_kv, .head_dim = c->head_dim,
                       .scale = 1.0f / sqrtf((float)c->head_dim), .kv_dtype = kv_dtype };
    for (int t = 0; t < c->n_tok; t++)
        for (int h = 0; h < c->n_head; h++) hc_ref_attention_head(&a, t, h, scores);
    hc_device *d = NULL;
    hc_device_config cfg = { .n_threads = threads };
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    a.out = out;
    HC_ASSERT_OK(d->ops->attention(d, &a));
    double worst = 0.0;
    for (int i = 0; i < c->n_tok * qd; i++) {
        double e = fabs((double)out[i] - ref[i]);
        if (!(e <= worst)) worst = e;   /* NaN counts */
    }
    if (!(worst < 2e-6))
        printf("\n    heads %d/%d, head_dim %d, %d tokens at %d, %d threads: max error %g\n", c->n_head, c->n_head_kv,
               c->head_dim, c->n_tok, c->pos0, threads, worst);
    CU_ASSERT(worst < 2e-6);
    d->ops->destroy(d);
    free(q), free(k), free(v), free(out), free(ref), free(scores);
}

static void check_attention(const attn_case *c, int threads, unsigned seed)
{
    check_attention_kv(c, threads, seed, HC_F32);
    check_attention_kv(c, threads, seed, HC_F16);
}

static void test_attention_shapes(void)
{
    const attn_case cases[] = {
        { 9, 3, 64, 1, 0 },   { 9, 3, 64, 1, 5 },    { 9, 3, 64, 7, 0 },    { 9, 3, 64, 7, 40 },   /* SmolLM2 */
        { 9, 3, 64, 1, 200 }, { 9, 3, 64, 128, 0 },  { 9, 3, 64, 33, 97 },
        { 8, 4, 8, 1, 3 },    { 8, 4, 8, 7, 0 },     { 8, 4, 8, 5, 61 },                           /* stories260K */
        { 8, 8, 16, 7, 9 },   { 8, 1, 32, 7, 9 },    { 32, 4, 128, 3, 70 }, { 6, 2, 24, 7, 11 },   /* MHA, MQA, wide */
        { 4, 2, 20, 7, 5 },   { 4, 2, 20, 1, 30 },                                                 /* head_dim 20: reference */
        { 40, 1, 8, 7, 3 },   { 2, 1, 64, 1, 129 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int threads = 1; threads <= 3; threads++) check_attention(&cases[i], threads, (unsigned)(i * 7 + threads));
}

/* 3000 positions: decoding splits the keys over threads (merged after), prompt blocks by units. */
static void test_attention_long(void)
{
    const attn_case cases[] = { { 9, 3, 64, 1, 3000 }, { 9, 3, 64, 7, 2993 }, { 8, 4, 8, 1, 2999 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int threads = 1; threads <= 4; threads++) check_attention(&cases[i], threads, (unsigned)(i + 100 * threads));
}

/* The unit split covers every unit once, in order, with costs near equal. */
static void test_attention_split(void)
{
    const attn_case cases[] = { { 9, 3, 64, 1, 0 }, { 9, 3, 64, 128, 0 }, { 9, 3, 64, 7, 500 }, { 8, 4, 8, 3, 1 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const attn_case *c = &cases[i];
        hc_attn_args a = { .n_tok = c->n_tok, .pos0 = c->pos0, .n_ctx = c->pos0 + c->n_tok, .n_head = c->n_head,
                           .n_head_kv = c->n_head_kv, .head_dim = c->head_dim };
        for (int nth = 1; nth <= 5; nth++) {
            long prev = 0;
            double cost_max = 0, cost_total = 0;
            for (int ith = 0; ith < nth; ith++) {
                long u0, u1;
                hc_cpu_attention_units_split(&a, ith, nth, &u0, &u1);
                CU_ASSERT_EQUAL(u0, prev);
                CU_ASSERT(u1 >= u0);
                prev = u1;
                double cost = 0;
                for (long u = u0; u < u1; u++) cost += c->pos0 + u / c->n_head + 1 + 32;
                cost_total += cost;
                if (cost > cost_max) cost_max = cost;
            }
            CU_ASSERT_EQUAL(prev, (long)c->n_tok * c->n_head);
            long units = (long)c->n_tok * c->n_head;
            if (units >= 8L * nth) CU_ASSERT(cost_max <= 1.15 * cost_total / nth);
        }
    }
}

/* ---------------- batched matmul (prompt processing) ---------------- */

/* Random weight bytes with random f16 scales (and mins) in every block; extreme = every quant at
 * its largest magnitude, so that the kernels' int16 partial sums are at their limit. */
static uint8_t *make_weights(hc_dtype t, int64_t in, int64_t out, int extreme, unsigned *s)
{
    size_t rb = hc_dtype_row_bytes(t, in), bb = hc_dtype_block_bytes(t), n = rb * (size_t)out;
    uint8_t *w = malloc(n);
    if (!w) return NULL;
    for (size_t i = 0; i < n; i++) w[i] = extreme ? (t == HC_Q8_0 ? 0x80 : 0xff) : (uint8_t)(frand(s) * 128 + 128);
    for (size_t b = 0; b < n / bb; b++) {
        uint16_t d = hc_f32_to_f16(extreme ? 0.01f : 0.02f * frand(s)), m = hc_f32_to_f16(0.05f * frand(s));
        memcpy(w + b * bb, &d, 2);
        if (t == HC_Q4_1 || t == HC_Q5_1) memcpy(w + b * bb + 2, &m, 2);
        if (t == HC_Q4_K) {   /* d, dmin, then 12 bytes of 6-bit scales and mins */
            memcpy(w + b * bb + 2, &m, 2);
        }
        if (t == HC_Q6_K) memcpy(w + b * bb + 208, &d, 2);
    }
    return w;
}

/* hc_matmul_rows (the AVX2 kernels) against hc_matmul_rows_ref on the same int8 activations,
 * for n_tok tokens and rows [row0, row1) written with stride ldy; rows outside are untouched. */
static void check_batched(hc_dtype t, int64_t in, int64_t out, int n_tok, int64_t row0, int64_t row1, int64_t ldy,
                          int extreme, unsigned seed)
{
    unsigned s = seed;
    uint8_t *w = make_weights(t, in, out, extreme, &s);
    size_t xrb = hc_act_q8_bytes(in), ny = (size_t)ldy * (size_t)n_tok;
    float *x = malloc(sizeof(float) * (size_t)(in * n_tok)), *y = malloc(sizeof(float) * ny), *r = malloc(sizeof(float) * ny);
    float *wf = malloc(sizeof(float) * (size_t)in);
    hc_q8_block *xq = malloc(xrb * (size_t)n_tok);
    CU_ASSERT_FATAL(w && x && y && r && xq && wf);
    for (int64_t i = 0; i < in * n_tok; i++) x[i] = extreme ? 1.0f : frand(&s) * (1 + (i % 7 == 0) * 20);
    for (int k = 0; k < n_tok; k++) hc_act_quantize_q8(x + k * in, (hc_q8_block *)((char *)xq + k * xrb), in);
    for (size_t i = 0; i < ny; i++) y[i] = r[i] = -777.0f;
    HC_ASSERT_OK(hc_matmul_rows(t, w, in, x, xq, n_tok, y, ldy, row0, row1));
    HC_ASSERT_OK(hc_matmul_rows_ref(t, w, in, x, xq, n_tok, r, ldy, row0, row1));
    int bad = 0;
    size_t rb = hc_dtype_row_bytes(t, in);
    for (int64_t o = 0; o < ldy; o++) {
        if (o >= row0 && o < row1) hc_dequantize_row(t, w + (size_t)o * rb, wf, in);
        for (int k = 0; k < n_tok; k++) {
            size_t at = (size_t)k * (size_t)ldy + (size_t)o;
            if (o < row0 || o >= row1) {
                bad += y[at] != -777.0f;
                continue;
            }
            double mag = 0;   /* sum |w x| over the row, with the activations the kernels see */
            const hc_q8_block *xb = (const hc_q8_block *)((const char *)xq + k * xrb);
            for (int64_t i = 0; i < in; i++) mag += fabs(wf[i] * xb[i / 32].d * xb[i / 32].q[i % 32]);
            if (!(fabs(y[at] - r[at]) <= 2e-6 * mag + 1e-30)) {
                if (bad++ < 3)
                    printf("\n    %s in %lld, %d tokens, row %lld token %d: avx2 %.9g ref %.9g (mag %.3g)", hc_dtype_name(t),
                           (long long)in, n_tok, (long long)o, k, y[at], r[at], mag);
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(w), free(x), free(y), free(r), free(xq), free(wf);
}

static void test_matmul_batched(void)
{
    NEED_AVX2();
    static const hc_dtype types[] = { HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1, HC_Q8_0, HC_Q4_K, HC_Q6_K };
    static const int toks[] = { 2, 4, 7, 8, 9, 13, 16, 17, 64 };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int64_t in = hc_dtype_block_size(types[i]) == 256 ? 512 : 96;
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
            check_batched(types[i], in, 37, toks[k], 0, 37, 37, 0, (unsigned)(i * 31 + k));
            check_batched(types[i], in, 45, toks[k], 3, 38, 45, 0, (unsigned)(i * 17 + k));   /* a row range */
        }
        check_batched(types[i], in * 6, 70, 20, 5, 66, 75, 0, 9);     /* longer rows, ldy > rows */
    }
    /* the SmolLM2 shapes, and rows long enough for several chunks of rows */
    check_batched(HC_Q4_1, 576, 1536, 33, 0, 1536, 1536, 0, 1);
    check_batched(HC_Q4_1, 1536, 576, 19, 100, 500, 576, 0, 2);
    check_batched(HC_Q8_0, 576, 600, 11, 0, 600, 600, 0, 3);
}

/* Every quant at its largest magnitude times activations at +-127: the int16 sums at their limit. */
static void test_matmul_batched_extremes(void)
{
    NEED_AVX2();
    static const hc_dtype types[] = { HC_Q4_0, HC_Q4_1, HC_Q5_0, HC_Q5_1, HC_Q8_0, HC_Q4_K };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) check_batched(types[i], 256, 12, 9, 0, 12, 12, 1, 5);
}

/* The cpu device's store_rows into f16 rounds every value as the scalar conversion does (F16C). */
static void test_store_rows_f16(void)
{
    enum { N = 203 };
    float x[N];
    uint16_t got[N];
    unsigned s = 11;
    for (int i = 0; i < N; i++) x[i] = frand(&s) * (i % 7 == 0 ? 70000.0f : 3.0f);
    x[0] = 1e-8f, x[1] = -0.0f, x[2] = 65504.0f;
    hc_device *d = NULL;
    hc_device_config cfg = { .n_threads = 1 };
    HC_ASSERT_OK(hc_cpu_device_create(&cfg, &d));
    for (int n = 0; n <= N; n += 29) {
        memset(got, 0xAB, sizeof got);
        HC_ASSERT_OK(d->ops->store_rows(d, got, HC_F16, x, (size_t)n));
        for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(got[i], hc_f32_to_f16(x[i]));
        if (n < N) CU_ASSERT_EQUAL(got[n], 0xABAB);   /* nothing past n */
    }
    CU_ASSERT_NOT_EQUAL(d->ops->store_rows(d, got, HC_Q8_0, x, 4), HC_OK);
    d->ops->destroy(d);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "exp approximation error bound", test_exp },
        { "rmsnorm", test_rmsnorm },
        { "swiglu", test_swiglu },
        { "add and scale", test_add_scale },
        { "rope both modes, partial", test_rope },
        { "attention shapes and threads", test_attention_shapes },
        { "attention long context", test_attention_long },
        { "attention work split", test_attention_split },
        { "store_rows into f16", test_store_rows_f16 },
        { "batched matmul against the reference", test_matmul_batched },
        { "batched matmul int16 limits", test_matmul_batched_extremes },
        { NULL, NULL },
    };
    return hc_test_run("ops_avx2", cases);
}
