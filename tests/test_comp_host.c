/* test_comp_host.c: the low-rank branch kernels y += B (A x): the AVX2 kernels equal the reference,
 * both equal a double-precision B (A x) in f32/f16/bf16 storage, over ranks, active prefixes,
 * token counts, split ranges and strides; the "host" comp plugin; bad calls refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_comp.h"
#include "lowrank_apply.h"
#include "matmul_ggml.h"
#include "registry.h"
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

/* ---- implementations under test, all with the hc_comp_ops signatures ---- */

typedef hc_status (*down_fn)(const hc_branch *, int, const float *, int, float *, int64_t, int, int);
typedef hc_status (*up_fn)(const hc_branch *, int, const float *, int64_t, int, float *, int64_t, int64_t, int64_t);

/* The AVX2 kernels called directly (not through the dispatch), after the shared checks. */
static hc_status down_avx2(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt, int k0,
                           int k1)
{
    hc_status st = hc_branch_check_down(b, rank, x, n_tok, t, ldt, k0, k1);
    if (st == HC_OK && n_tok > 0 && k0 < k1) hc_branch_down_avx2(b, x, n_tok, t, ldt, k0, k1);
    return st;
}

static hc_status up_avx2(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y, int64_t ldy,
                         int64_t o0, int64_t o1)
{
    hc_status st = hc_branch_check_up(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    if (st == HC_OK && n_tok > 0 && o0 < o1 && rank > 0) hc_branch_up_avx2(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    return st;
}

/* The AVX-512 kernels called directly: f32, f16, bf16 (q8_0: the dispatch runs AVX2). */
static hc_status down_avx512(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt, int k0,
                             int k1)
{
    hc_status st = hc_branch_check_down(b, rank, x, n_tok, t, ldt, k0, k1);
    if (st == HC_OK && n_tok > 0 && k0 < k1) hc_branch_down_avx512(b, x, n_tok, t, ldt, k0, k1);
    return st;
}

static hc_status up_avx512(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y, int64_t ldy,
                           int64_t o0, int64_t o1)
{
    hc_status st = hc_branch_check_up(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    if (st == HC_OK && n_tok > 0 && o0 < o1 && rank > 0) hc_branch_up_avx512(b, rank, t, ldt, n_tok, y, ldy, o0, o1);
    return st;
}

typedef struct impl {
    const char *name;
    down_fn down;
    up_fn up;
} impl;

static const impl IMPL_REF = {"ref", hc_branch_down_ref, hc_branch_up_ref};
static const impl IMPL_AVX2 = {"avx2", down_avx2, up_avx2};
static const impl IMPL_AVX512 = {"avx512", down_avx512, up_avx512};
static const impl IMPL_DISPATCH = {"dispatch", hc_branch_down, hc_branch_up};

/* ---- test branches ---- */


static void put(hc_dtype t, void *p, size_t i, float v)
{
    if (t == HC_F32) {
        memcpy((char *)p + 4 * i, &v, 4);
    } else {
        uint16_t h = t == HC_F16 ? hc_f32_to_f16(v) : hc_f32_to_bf16(v);
        memcpy((char *)p + 2 * i, &h, 2);
    }
}

/* The stored value as the test reads it (the conversions of hc_tensor.h). q8_0 rows are whole
 * blocks, so element i of the matrix is element i % 32 of block i / 32. */
static double get(hc_dtype t, const void *p, size_t i)
{
    if (t == HC_Q8_0) {
        float v[32];
        hc_dequantize_row(HC_Q8_0, (const char *)p + i / 32 * 34, v, 32);
        return v[i % 32];
    }
    if (t == HC_F32) {
        float v;
        memcpy(&v, (const char *)p + 4 * i, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    return t == HC_F16 ? hc_f16_to_f32(h) : hc_bf16_to_f32(h);
}

/* A random branch; A and B exactly sized, so that AddressSanitizer sees any read past the end. */
static hc_branch make_branch(rng *r, hc_dtype t, int64_t in, int64_t out, int rank)
{
    hc_branch b = {.name = "blk.0.test.weight", .dtype = t, .in = in, .out = out, .rank = rank};
    size_t na = (size_t)rank * (size_t)in, nb = (size_t)out * (size_t)rank;
    size_t bytes_a = hc_dtype_row_bytes(t, in) * (size_t)rank, bytes_b = hc_dtype_row_bytes(t, out) * (size_t)rank;
    void *a = malloc(bytes_a + 1), *bm = malloc(bytes_b + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bm);
    if (t == HC_Q8_0) {   /* whole rows of blocks */
        float *f = malloc(sizeof(float) * (na > nb ? na : nb) + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        for (size_t i = 0; i < na; i++) f[i] = rnd_unit(r);
        hc_quantize_row_q8_0(f, a, (int64_t)na);
        for (size_t i = 0; i < nb; i++) f[i] = rnd_unit(r);
        hc_quantize_row_q8_0(f, bm, (int64_t)nb);
        free(f);
    } else {
        for (size_t i = 0; i < na; i++) put(t, a, i, rnd_unit(r));
        for (size_t i = 0; i < nb; i++) put(t, bm, i, rnd_unit(r));
    }
    b.a = a;
    b.b = bm;
    return b;
}

static void free_branch(hc_branch *b)
{
    free((void *)b->a);
    free((void *)b->b);
}

/* Expected y[j][o] = y0[j][o] + sum_k B[k][o] sum_i A[k][i] x[j][i] in double (B stored [rank][out]), with mag[j][o] the
 * same sum of absolute values (the scale of the rounding error a float computation may make). */
static void naive(const hc_branch *b, int rank, const float *x, int n_tok, const float *y0, int64_t ldy, double *ye,
                  double *mag)
{
    double *t = malloc(sizeof(double) * (size_t)rank * 2 + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (int j = 0; j < n_tok; j++) {
        for (int k = 0; k < rank; k++) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < b->in; i++) {
                double p = get(b->dtype, b->a, (size_t)k * (size_t)b->in + (size_t)i) * x[(size_t)j * (size_t)b->in + (size_t)i];
                s += p;
                m += fabs(p);
            }
            t[2 * k] = s;
            t[2 * k + 1] = m;
        }
        for (int64_t o = 0; o < b->out; o++) {
            double s = y0[(size_t)j * (size_t)ldy + (size_t)o], m = fabs(s);
            for (int k = 0; k < rank; k++) {
                double bv = get(b->dtype, b->b, (size_t)k * (size_t)b->out + (size_t)o);
                s += bv * t[2 * k];
                m += fabs(bv) * t[2 * k + 1];
            }
            ye[(size_t)j * (size_t)b->out + (size_t)o] = s;
            mag[(size_t)j * (size_t)b->out + (size_t)o] = m;
        }
    }
    free(t);
}

#define SENTINEL 12345.0f
#define TOL 1e-6   /* relative to mag: float rounding over sums of up to a few thousand terms */

/* Runs down over the k ranges cuts_k[0..nk] and up over the o ranges cuts_o[0..no] (cut lists
 * start at 0 and end at the range end) with strides ldt, ldy; t and y padding holds SENTINEL. */
static int apply(const impl *im, const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                 float *y, int64_t ldy, const int *cuts_k, int nk, const int64_t *cuts_o, int no)
{
    for (int c = 0; c < nk; c++) {
        hc_status st = im->down(b, rank, x, n_tok, t, ldt, cuts_k[c], cuts_k[c + 1]);
        if (st != HC_OK) {
            fprintf(stderr, "  %s down: %s\n", im->name, hc_last_error());
            return 0;
        }
    }
    for (int c = 0; c < no; c++) {
        hc_status st = im->up(b, rank, t, ldt, n_tok, y, ldy, cuts_o[c], cuts_o[c + 1]);
        if (st != HC_OK) {
            fprintf(stderr, "  %s up: %s\n", im->name, hc_last_error());
            return 0;
        }
    }
    return 1;
}

typedef struct run_cfg {
    hc_dtype dtype;
    int64_t in, out;
    int stored, rank, n_tok;
    int pad_t, pad_y;      /* extra stride beyond what is needed */
    int parts;             /* 1, 2 or 3 ranges for down and for up */
} run_cfg;

static int n_checked;

/* One configuration: each implementation's y against the double-precision expectation (and the
 * padding of t and y untouched); returns the largest error relative to mag, and fills y_out. */
static double run_one(const impl *im, const run_cfg *c, const hc_branch *b, const float *x, const float *y0,
                      const double *ye, const double *mag, float *y_out)
{
    int64_t ldt = c->rank + c->pad_t, ldy = c->out + c->pad_y;
    if (ldt < 1) ldt = 1;
    size_t nt = (size_t)ldt * (size_t)c->n_tok, ny = (size_t)ldy * (size_t)c->n_tok;
    float *t = malloc(sizeof(float) * nt + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t i = 0; i < nt; i++) t[i] = SENTINEL;
    memcpy(y_out, y0, sizeof(float) * ny);
    int cuts_k[4] = {0}, nk = c->parts;
    int64_t cuts_o[4] = {0};
    for (int p = 1; p <= c->parts; p++) {
        cuts_k[p] = c->rank * p / c->parts;
        cuts_o[p] = c->out * p / c->parts;
    }
    if (c->parts == 3 && c->rank >= 3) cuts_k[1] = 1;   /* uneven pieces: one direction alone */
    if (c->parts == 3 && c->out >= 10) cuts_o[1] = 3;
    int ok = apply(im, b, c->rank, x, c->n_tok, t, ldt, y_out, ldy, cuts_k, nk, cuts_o, c->parts);
    CU_ASSERT_TRUE(ok);
    double worst = 0;
    for (int j = 0; j < c->n_tok; j++) {
        for (int64_t o = 0; o < ldy; o++) {
            float got = y_out[(size_t)j * (size_t)ldy + (size_t)o];
            if (o >= c->out) {
                if (got != SENTINEL) worst = INFINITY;
                continue;
            }
            double want = ye[(size_t)j * (size_t)c->out + (size_t)o], m = mag[(size_t)j * (size_t)c->out + (size_t)o];
            double e = fabs((double)got - want) / (m + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        for (int64_t k = c->rank; k < ldt; k++)
            if (t[(size_t)j * (size_t)ldt + (size_t)k] != SENTINEL) worst = INFINITY;
    }
    free(t);
    n_checked++;
    return worst;
}

/* Checks ref, avx2 (when the CPU has it) and the dispatch against the expectation, and avx2
 * against ref. */
static void check_cfg(rng *r, const run_cfg *c)
{
    hc_branch b = make_branch(r, c->dtype, c->in, c->out, c->stored);
    int64_t ldy = c->out + c->pad_y;
    size_t nx = (size_t)c->in * (size_t)c->n_tok, ny = (size_t)ldy * (size_t)c->n_tok;
    float *x = malloc(sizeof(float) * nx), *y0 = malloc(sizeof(float) * ny);
    float *yr = malloc(sizeof(float) * ny), *ya = malloc(sizeof(float) * ny);
    double *ye = malloc(sizeof(double) * (size_t)c->out * (size_t)c->n_tok);
    double *mag = malloc(sizeof(double) * (size_t)c->out * (size_t)c->n_tok);
    CU_ASSERT_FATAL(x && y0 && yr && ya && ye && mag);
    for (size_t i = 0; i < nx; i++) x[i] = rnd_unit(r);
    for (size_t i = 0; i < ny; i++) y0[i] = (int64_t)(i % (size_t)ldy) < c->out ? rnd_unit(r) : SENTINEL;
    naive(&b, c->rank, x, c->n_tok, y0, ldy, ye, mag);

    const impl *ims[4] = {&IMPL_REF, &IMPL_AVX2, &IMPL_AVX512, &IMPL_DISPATCH};
    for (int m = 0; m < 4; m++) {
        if (ims[m] == &IMPL_AVX2 && !hc_cpu_has_avx2()) continue;
        if (ims[m] == &IMPL_AVX512 && !(hc_cpu_has_avx512() && hc_branch_avx512_has(c->dtype))) continue;
        float *yo = m == 0 ? yr : ya;
        double e = run_one(ims[m], c, &b, x, y0, ye, mag, yo);
        if (!(e <= TOL))
            fprintf(stderr, "  %s %s in %lld out %lld stored %d rank %d tok %d parts %d: error %.3g of the scale\n",
                    ims[m]->name, hc_dtype_name(c->dtype), (long long)c->in, (long long)c->out, c->stored, c->rank,
                    c->n_tok, c->parts, e);
        CU_ASSERT(e <= TOL);
        if (ims[m] == &IMPL_AVX2 || ims[m] == &IMPL_AVX512) {   /* against ref, element by element */
            double worst = 0;
            for (int j = 0; j < c->n_tok; j++)
                for (int64_t o = 0; o < c->out; o++) {
                    size_t i = (size_t)j * (size_t)ldy + (size_t)o;
                    double d = fabs((double)ya[i] - (double)yr[i]) / (mag[(size_t)j * (size_t)c->out + (size_t)o] + 1e-30);
                    if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
                }
            CU_ASSERT(worst <= TOL);
        }
    }
    free(x), free(y0), free(yr), free(ya), free(ye), free(mag);
    free_branch(&b);
}

/* ---- cases ---- */

static const hc_dtype DTYPES[3] = {HC_F32, HC_F16, HC_BF16};

/* Every storage type, ranks 1, 7, 8, 16, 33, 64, the full rank and an active prefix, 1 and 5
 * tokens, shapes with and without vector tails, strides larger than needed. */
static void test_matches_naive(void)
{
    rng r = {0x9e3779b97f4a7c15ull};
    static const int ranks[] = {1, 7, 8, 16, 33, 64};
    static const int64_t shapes[][2] = {{64, 40}, {100, 37}, {576, 192}, {13, 9}};
    n_checked = 0;
    for (int d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++)
                for (int tok = 1; tok <= 5; tok += 4)
                    for (int prefix = 0; prefix < 2; prefix++) {
                        int stored = ranks[ri], rank = prefix ? stored - stored / 3 - 1 : stored;
                        if (rank < 1) continue;
                        run_cfg c = {DTYPES[d], shapes[s][0], shapes[s][1], stored, rank, tok, 3, 5, 1};
                        check_cfg(&r, &c);
                    }
    CU_ASSERT(n_checked > 400);
}

/* Ranges split in 2 and 3 uneven parts give the whole-range result; n_tok 1, 5 and 16. */
static void test_split_ranges(void)
{
    rng r = {12345};
    static const int ranks[] = {7, 16, 33, 64};
    for (int d = 0; d < 3; d++)
        for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++)
            for (int parts = 2; parts <= 3; parts++) {
                static const int toks[] = {1, 5, 16};
                for (int ti = 0; ti < 3; ti++) {
                    run_cfg c = {DTYPES[d], 200, 75, ranks[ri], ranks[ri] - (parts == 3), toks[ti], 0, 0, parts};
                    check_cfg(&r, &c);
                    c.pad_t = 7, c.pad_y = 9;
                    check_cfg(&r, &c);
                }
            }
}

/* 1..40 tokens (tiles of 4 with 1-3 left), widths with 16-wide tails (in 100, out 75 and 150),
 * one token over more outputs than the AVX-512 kernel's segment of 2048 (2100 and 4111), and a
 * wide input (down's 4-row tiles, their prefetching) with split ranges. */
static void test_many_tokens(void)
{
    rng r = {0x5eed};
    for (int d = 0; d < 3; d++) {
        for (int tok = 1; tok <= 40; tok++) {
            run_cfg c = {DTYPES[d], 100, tok % 2 ? 75 : 150, 33, tok % 3 ? 33 : 20, tok, tok % 4, tok % 5, 1 + tok % 3};
            check_cfg(&r, &c);
        }
        run_cfg w1 = {DTYPES[d], 64, 2100, 9, 9, 1, 0, 3, 2};
        check_cfg(&r, &w1);
        run_cfg w2 = {DTYPES[d], 48, 4111, 5, 4, 1, 1, 0, 3};
        check_cfg(&r, &w2);
        run_cfg w3 = {DTYPES[d], 4103, 40, 70, 66, 1, 0, 0, 2};
        check_cfg(&r, &w3);
        w3.n_tok = 7;
        check_cfg(&r, &w3);
    }
}

/* Ranks beyond the kernels' chunks (64 directions for several tokens, 256 for one). */
static void test_large_rank(void)
{
    rng r = {777};
    for (int d = 0; d < 3; d++)
        for (int tok = 1; tok <= 6; tok += 5) {
            run_cfg c = {DTYPES[d], 48, 23, 300, 300, tok, 1, 2, 1};
            check_cfg(&r, &c);
            c.rank = 257;
            c.parts = 3;
            check_cfg(&r, &c);
            c.rank = 71;
            check_cfg(&r, &c);
        }
}

/* Directions past the active prefix may hold anything, even NaN and infinity: they are never read
 * into the result. Rank 5 of 13 stored, 21 outputs: the 8-wide read of a row's last 5 outputs runs
 * into the next direction's row, which past the active rank holds NaN or infinity. */
static void test_prefix_ignores_rest(void)
{
    rng r = {4242};
    for (int d = 0; d < 3; d++) {
        hc_dtype t = DTYPES[d];
        int64_t in = 24, out = 21;
        int stored = 13, rank = 5;
        hc_branch b = make_branch(&r, t, in, out, stored);
        for (int64_t o = 0; o < out; o++)
            for (int k = rank; k < stored; k++)
                put(t, (void *)b.b, (size_t)k * (size_t)out + (size_t)o, (k & 1) ? NAN : INFINITY);
        for (int k = rank; k < stored; k++)
            for (int64_t i = 0; i < in; i++) put(t, (void *)b.a, (size_t)k * (size_t)in + (size_t)i, NAN);
        for (int tok = 1; tok <= 3; tok += 2) {
            float x[3 * 24], y0[3 * 21], yr[3 * 21];
            double ye[3 * 21], mag[3 * 21];
            for (int i = 0; i < tok * 24; i++) x[i] = rnd_unit(&r);
            for (int i = 0; i < tok * 21; i++) y0[i] = rnd_unit(&r);
            naive(&b, rank, x, tok, y0, out, ye, mag);
            const impl *ims[2] = {&IMPL_REF, &IMPL_DISPATCH};
            for (int m = 0; m < 2; m++) {
                run_cfg c = {t, in, out, stored, rank, tok, 0, 0, 1};
                double e = run_one(ims[m], &c, &b, x, y0, ye, mag, yr);
                CU_ASSERT(e <= TOL);
            }
        }
        free_branch(&b);
    }
}

/* q8_0 factors (rows of 32-element blocks): shapes of SmolLM2's layers and small ones, ranks past
 * the kernels' chunks, 1, 5 and 16 tokens, ranges cut at columns that are not multiples of 8 (the
 * reference takes the part up to the next multiple); directions past the active rank have NaN
 * scales and are never read; widths that are not multiples of 32 are refused. */
static void test_q8_0(void)
{
    rng r = {0x51ed};
    static const int64_t shapes[][2] = {{64, 32}, {576, 192}, {96, 160}, {1536, 576}};
    static const int ranks[][2] = {{1, 1}, {8, 7}, {33, 33}, {64, 40}, {300, 257}};
    static const int toks[] = {1, 5, 16};
    n_checked = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++)
            for (int ti = 0; ti < 3; ti++)
                for (int parts = 1; parts <= 3; parts++) {
                    if (shapes[s][0] * ranks[ri][0] > 100000 && (ti == 1 || parts == 2)) continue; /* time */
                    run_cfg c = {HC_Q8_0, shapes[s][0], shapes[s][1], ranks[ri][0], ranks[ri][1], toks[ti], parts == 2 ? 3 : 0,
                                 parts == 3 ? 5 : 0, parts};
                    check_cfg(&r, &c);
                }
    CU_ASSERT(n_checked > 100);

    int64_t in = 64, out = 96;
    int stored = 9, rank = 4;
    hc_branch b = make_branch(&r, HC_Q8_0, in, out, stored);
    const uint16_t nan16 = 0x7e00;
    for (int k = rank; k < stored; k++) {
        for (int64_t blk = 0; blk < in / 32; blk++) memcpy((char *)b.a + (size_t)(k * in / 32 + blk) * 34, &nan16, 2);
        for (int64_t blk = 0; blk < out / 32; blk++) memcpy((char *)b.b + (size_t)(k * out / 32 + blk) * 34, &nan16, 2);
    }
    float x[3 * 64], y0[3 * 96], yr[3 * 96];
    double ye[3 * 96], mag[3 * 96];
    for (int i = 0; i < 3 * 64; i++) x[i] = rnd_unit(&r);
    for (int i = 0; i < 3 * 96; i++) y0[i] = rnd_unit(&r);
    for (int tok = 1; tok <= 3; tok += 2) {
        naive(&b, rank, x, tok, y0, out, ye, mag);
        const impl *ims[2] = {&IMPL_REF, &IMPL_DISPATCH};
        for (int m = 0; m < 2; m++) {
            run_cfg c = {HC_Q8_0, in, out, stored, rank, tok, 0, 0, 3};
            CU_ASSERT(run_one(ims[m], &c, &b, x, y0, ye, mag, yr) <= TOL);
        }
    }
    hc_branch odd = b;
    odd.out = 72;
    float t[9];
    const impl *ims[3] = {&IMPL_REF, &IMPL_AVX2, &IMPL_DISPATCH};
    for (int m = 0; m < 3; m++) {
        CU_ASSERT_EQUAL(ims[m]->down(&odd, rank, x, 1, t, rank, 0, rank), HC_E_ARG);
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "multiples of 32"));
        CU_ASSERT_EQUAL(ims[m]->up(&odd, rank, t, rank, 1, yr, 72, 0, 72), HC_E_ARG);
    }
    free_branch(&b);
}

/* Nothing to do is fine and writes nothing: no tokens, empty ranges, active rank 0. */
static void test_empty_work(void)
{
    rng r = {99};
    hc_branch b = make_branch(&r, HC_F16, 32, 16, 8);
    float x[2 * 32] = {0}, t[2 * 8], y[2 * 16];
    for (int i = 0; i < 16; i++) t[i] = SENTINEL;
    for (int i = 0; i < 32; i++) y[i] = 1.0f;
    const impl *ims[4] = {&IMPL_REF, &IMPL_AVX2, &IMPL_AVX512, &IMPL_DISPATCH};
    for (int m = 0; m < 4; m++) {
        if (ims[m] == &IMPL_AVX2 && !hc_cpu_has_avx2()) continue;
        if (ims[m] == &IMPL_AVX512 && !hc_cpu_has_avx512()) continue;
        HC_ASSERT_OK(ims[m]->down(&b, 8, x, 0, t, 8, 0, 8));
        HC_ASSERT_OK(ims[m]->down(&b, 8, x, 2, t, 8, 3, 3));
        HC_ASSERT_OK(ims[m]->up(&b, 8, t, 8, 0, y, 16, 0, 16));
        HC_ASSERT_OK(ims[m]->up(&b, 8, t, 8, 2, y, 16, 5, 5));
        HC_ASSERT_OK(ims[m]->up(&b, 0, t, 8, 2, y, 16, 0, 16));
        HC_ASSERT_OK(ims[m]->down(&b, 0, x, 2, t, 8, 0, 0));
        for (int i = 0; i < 16; i++) CU_ASSERT_EQUAL(t[i], SENTINEL);
        for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(y[i], 1.0f);
    }
    free_branch(&b);
}

/* Unsupported storage and bad arguments: HC_E_ARG with a message, and nothing written. */
static void test_bad_calls(void)
{
    rng r = {5};
    hc_branch b = make_branch(&r, HC_F32, 32, 16, 8);
    float x[2 * 32] = {0}, t[2 * 8], y[2 * 16];
    for (int i = 0; i < 16; i++) t[i] = SENTINEL;
    for (int i = 0; i < 32; i++) y[i] = SENTINEL;
    CU_ASSERT_EQUAL(hc_branch_supports(HC_F32), 1);
    CU_ASSERT_EQUAL(hc_branch_supports(HC_F16), 1);
    CU_ASSERT_EQUAL(hc_branch_supports(HC_BF16), 1);
    CU_ASSERT_EQUAL(hc_branch_supports(HC_Q4_0), 0);
    CU_ASSERT_EQUAL(hc_branch_supports(HC_Q8_0), 1);
    CU_ASSERT_EQUAL(hc_branch_supports(HC_PACKED), 0);
    const impl *ims[3] = {&IMPL_REF, &IMPL_AVX2, &IMPL_DISPATCH};
    for (int m = 0; m < 3; m++) {
        const impl *im = ims[m];
        hc_branch q = b;
        q.dtype = HC_Q4_0;
        CU_ASSERT_EQUAL(im->down(&q, 8, x, 1, t, 8, 0, 8), HC_E_ARG);
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "q4_0"));
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "blk.0.test.weight"));
        CU_ASSERT_EQUAL(im->up(&q, 8, t, 8, 1, y, 16, 0, 16), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(NULL, 8, x, 1, t, 8, 0, 8), HC_E_ARG);
        CU_ASSERT_EQUAL(im->up(NULL, 8, t, 8, 1, y, 16, 0, 16), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 9, x, 1, t, 8, 0, 8), HC_E_ARG);        /* rank > stored */
        CU_ASSERT_EQUAL(im->down(&b, -1, x, 1, t, 8, 0, 0), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 6, x, 1, t, 8, 0, 7), HC_E_ARG);        /* k1 > active rank */
        CU_ASSERT_EQUAL(im->down(&b, 8, x, 1, t, 8, 5, 4), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 8, x, 1, t, 8, -1, 4), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 8, x, -1, t, 8, 0, 8), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 8, NULL, 1, t, 8, 0, 8), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 8, x, 1, NULL, 8, 0, 8), HC_E_ARG);
        CU_ASSERT_EQUAL(im->down(&b, 8, x, 2, t, 7, 0, 8), HC_E_ARG);        /* ldt < k1 */
        CU_ASSERT_EQUAL(im->up(&b, 9, t, 9, 1, y, 16, 0, 16), HC_E_ARG);
        CU_ASSERT_EQUAL(im->up(&b, 8, t, 8, 1, y, 16, 0, 17), HC_E_ARG);     /* o1 > out */
        CU_ASSERT_EQUAL(im->up(&b, 8, t, 8, 1, y, 16, 4, 3), HC_E_ARG);
        CU_ASSERT_EQUAL(im->up(&b, 8, t, 8, 2, y, 15, 0, 16), HC_E_ARG);     /* ldy < o1 */
        CU_ASSERT_EQUAL(im->up(&b, 8, t, 7, 2, y, 16, 0, 16), HC_E_ARG);     /* ldt < rank */
        CU_ASSERT_EQUAL(im->up(&b, 8, NULL, 8, 1, y, 16, 0, 16), HC_E_ARG);
        CU_ASSERT_EQUAL(im->up(&b, 8, t, 8, 1, NULL, 16, 0, 16), HC_E_ARG);
        hc_branch nob = b;
        nob.b = NULL;
        CU_ASSERT_EQUAL(im->up(&nob, 8, t, 8, 1, y, 16, 0, 16), HC_E_ARG);
        nob = b;
        nob.a = NULL;
        CU_ASSERT_EQUAL(im->down(&nob, 8, x, 1, t, 8, 0, 8), HC_E_ARG);
        nob = b;
        nob.in = 0;
        CU_ASSERT_EQUAL(im->down(&nob, 8, x, 1, t, 8, 0, 8), HC_E_ARG);
        for (int i = 0; i < 16; i++) CU_ASSERT_EQUAL(t[i], SENTINEL);
        for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(y[i], SENTINEL);
    }
    free_branch(&b);
}

/* The plugin loads through the registry as comp "host", and its ops give the library's numbers
 * and refuse what the library refuses. */
static void test_plugin(void)
{
    hc_registry *reg = NULL;
    HC_ASSERT_OK(hc_registry_create(&reg));
    hc_status st = hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-comp-host.so");
    if (st != HC_OK) fprintf(stderr, "  %s\n", hc_last_error());
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    const hc_plugin *p = hc_registry_find(reg, HC_PLUGIN_COMP, "host");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->desc->abi_version, HC_ABI_VERSION);
    CU_ASSERT_EQUAL(p->desc->kind, HC_PLUGIN_COMP);
    CU_ASSERT_STRING_EQUAL(p->desc->name, "host");
    const hc_comp_ops *ops = p->desc->ops;
    CU_ASSERT_FATAL(ops && ops->supports && ops->down && ops->up);
    CU_ASSERT_EQUAL(ops->supports(HC_F16), 1);
    CU_ASSERT_EQUAL(ops->supports(HC_BF16), 1);
    CU_ASSERT_EQUAL(ops->supports(HC_F32), 1);
    CU_ASSERT_EQUAL(ops->supports(HC_Q8_0), 1);
    CU_ASSERT_EQUAL(ops->supports(HC_Q4_0), 0);

    rng r = {31337};
    for (int d = 0; d < 3; d++)
        for (int tok = 1; tok <= 5; tok += 4) {
            run_cfg c = {DTYPES[d], 576, 192, 33, 16, tok, 2, 3, 2};
            hc_branch b = make_branch(&r, c.dtype, c.in, c.out, c.stored);
            int64_t ldy = c.out + c.pad_y;
            size_t nx = (size_t)c.in * (size_t)tok, ny = (size_t)ldy * (size_t)tok;
            float *x = malloc(sizeof(float) * nx), *y0 = malloc(sizeof(float) * ny);
            float *yp = malloc(sizeof(float) * ny), *yl = malloc(sizeof(float) * ny);
            double *ye = malloc(sizeof(double) * (size_t)c.out * (size_t)tok);
            double *mag = malloc(sizeof(double) * (size_t)c.out * (size_t)tok);
            CU_ASSERT_FATAL(x && y0 && yp && yl && ye && mag);
            for (size_t i = 0; i < nx; i++) x[i] = rnd_unit(&r);
            for (size_t i = 0; i < ny; i++) y0[i] = (int64_t)(i % (size_t)ldy) < c.out ? rnd_unit(&r) : SENTINEL;
            naive(&b, c.rank, x, tok, y0, ldy, ye, mag);
            impl plug = {"plugin", ops->down, ops->up};
            CU_ASSERT(run_one(&plug, &c, &b, x, y0, ye, mag, yp) <= TOL);
            CU_ASSERT(run_one(&IMPL_DISPATCH, &c, &b, x, y0, ye, mag, yl) <= TOL);
            CU_ASSERT(memcmp(yp, yl, sizeof(float) * ny) == 0);   /* the same kernels, the same bits */
            free(x), free(y0), free(yp), free(yl), free(ye), free(mag);
            free_branch(&b);
        }

    rng r2 = {1};
    hc_branch q = make_branch(&r2, HC_F16, 32, 16, 8);
    q.dtype = HC_Q4_0;
    float x[32] = {0}, t[8], y[16];
    CU_ASSERT_EQUAL(ops->down(&q, 8, x, 1, t, 8, 0, 8), HC_E_ARG);
    CU_ASSERT_EQUAL(ops->up(&q, 8, t, 8, 1, y, 16, 0, 16), HC_E_ARG);
    free_branch(&q);
    hc_registry_free(reg);
}

int main(void)
{
    if (!hc_cpu_has_avx2()) printf("SKIP: this CPU has no AVX2+FMA+F16C: only the reference kernels are tested\n");
    static const hc_test_case cases[] = {
        {"down+up equal double-precision B(Ax) (ref, avx2, avx512, dispatch)", test_matches_naive},
        {"1..40 tokens, tails, wide rows (ref, avx2, avx512, dispatch)", test_many_tokens},
        {"ranges split in parts, larger strides, 1/5/16 tokens", test_split_ranges},
        {"ranks beyond the kernels' chunks", test_large_rank},
        {"directions past the active prefix are never read", test_prefix_ignores_rest},
        {"q8_0 factors: every path against double precision, unaligned ranges, bad widths", test_q8_0},
        {"empty work writes nothing", test_empty_work},
        {"unsupported storage and bad arguments refused", test_bad_calls},
        {"the host comp plugin through the registry", test_plugin},
        {NULL, NULL},
    };
    return hc_test_run("comp_host", cases);
}
