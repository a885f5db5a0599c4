/* test_quant_gptq.c: the quant plugin "gptq" loaded through the registry beside "rtn": on random
 * weights with correlated, unevenly scaled inputs its output error tr((W-Q) H (W-Q)^T) is clearly
 * below rtn's; its packed data decodes with rtn's dequantizer and runs rtn's kernel; calibration
 * is required, dead inputs are handled, options and a non-positive-definite Hessian are refused;
 * rows whose width is not a multiple of the group (576 in groups of 128: a last group of 64) too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_plugin.h"
#include "hc/hc_quant.h"
#include "hc/hc_tensor.h"
#include "qrtn.h"
#include "registry.h"
#include "test_util.h"

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

static double rnd_unit(rng *r) { return ((double)rnd_u32(r) + 0.5) / 4294967296.0; } /* (0, 1) */

static double rnd_normal(rng *r) { return sqrt(-2.0 * log(rnd_unit(r))) * cos(6.283185307179586 * rnd_unit(r)); }

static hc_registry *reg;
static const hc_quant_ops *gptq, *rtn;

static void *params_of(const hc_quant_ops *ops, const char *options)
{
    void *p = NULL;
    hc_status st = ops->parse(options, &p);
    if (st != HC_OK) fprintf(stderr, "  parse(%s): %s\n", options, hc_last_error());
    CU_ASSERT_EQUAL_FATAL(st, HC_OK);
    return p;
}

/* ---- a calibration problem ---- */

/* n samples of cols correlated inputs: x = z M with M lower-triangular mixing (neighbouring
 * inputs share factors) and per-input scales spanning two decades; the inputs listed in dead
 * are zero. H = X^T X / n, W: rows x cols standard normal. */
typedef struct problem {
    int64_t rows, cols;
    float *w, *h;
} problem;

static problem make_problem(uint64_t seed, int64_t rows, int64_t cols, int n, const int *dead, int n_dead)
{
    rng r = {seed};
    problem pb = {rows, cols, malloc(sizeof(float) * (size_t)(rows * cols)), calloc((size_t)(cols * cols), sizeof(float))};
    double *x = malloc(sizeof(double) * (size_t)cols), *z = malloc(sizeof(double) * (size_t)cols);
    double *scale = malloc(sizeof(double) * (size_t)cols), *hd = calloc((size_t)(cols * cols), sizeof(double));
    CU_ASSERT_PTR_NOT_NULL_FATAL(hd);
    for (int64_t i = 0; i < cols; i++) scale[i] = pow(10.0, 2.0 * rnd_unit(&r) - 1.0);
    for (int s = 0; s < n; s++) {
        for (int64_t i = 0; i < cols; i++) z[i] = rnd_normal(&r);
        for (int64_t i = 0; i < cols; i++) {   /* x_i mixes z_{i-7..i} and one global factor */
            double v = 0.6 * z[0];
            for (int64_t k = i - 7 < 0 ? 0 : i - 7; k <= i; k++) v += z[k] * (k == i ? 1.0 : 0.5);
            x[i] = v * scale[i];
        }
        for (int d = 0; d < n_dead; d++) x[dead[d]] = 0.0;
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++) hd[i * cols + j] += x[i] * x[j];
    }
    for (int64_t i = 0; i < cols * cols; i++) pb.h[i] = (float)(hd[i] / n);
    for (int64_t i = 0; i < rows * cols; i++) pb.w[i] = (float)rnd_normal(&r);
    free(x), free(z), free(scale), free(hd);
    return pb;
}

static void free_problem(problem *pb) { free(pb->w), free(pb->h); }

/* tr((W - Q) H (W - Q)^T): the layer's output error on the calibration inputs. */
static double output_error(const problem *pb, const float *q)
{
    const int64_t n = pb->cols;
    double *e = malloc(sizeof(double) * (size_t)n), total = 0;
    for (int64_t r = 0; r < pb->rows; r++) {
        for (int64_t i = 0; i < n; i++) e[i] = (double)pb->w[r * n + i] - (double)q[r * n + i];
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += (double)pb->h[i * n + j] * e[j];
            total += e[i] * s;
        }
    }
    free(e);
    return total;
}

/* Quantizes with ops under options, decodes with rtn's dequantizer (same bits/group), returns the
 * output error; the packed bytes are returned in *packed_out when asked. */
static double quantize_error(const hc_quant_ops *ops, const char *options, const char *rtn_options,
                             const problem *pb, uint8_t **packed_out)
{
    void *p = params_of(ops, options), *pr = params_of(rtn, rtn_options);
    size_t n = ops->packed_bytes(p, pb->rows, pb->cols);
    CU_ASSERT_EQUAL(n, rtn->packed_bytes(pr, pb->rows, pb->cols));   /* the same layout */
    uint8_t *packed = malloc(n);
    float *deq = malloc(sizeof(float) * (size_t)(pb->rows * pb->cols));
    float *deq2 = malloc(sizeof(float) * (size_t)(pb->rows * pb->cols));
    hc_quant_calib calib = {NULL, pb->h};
    HC_ASSERT_OK(ops->quantize(p, pb->w, pb->rows, pb->cols, &calib, packed));
    rtn->dequantize_rows(pr, packed, pb->cols, pb->rows, 0, pb->rows, deq);
    ops->dequantize_rows(p, packed, pb->cols, pb->rows, 0, pb->rows, deq2);
    CU_ASSERT(!memcmp(deq, deq2, sizeof(float) * (size_t)(pb->rows * pb->cols)));
    double err = output_error(pb, deq);
    free(deq), free(deq2);
    if (packed_out) *packed_out = packed;
    else free(packed);
    ops->free_params(p);
    rtn->free_params(pr);
    return err;
}

/* ---- tests ---- */

static void test_descriptor(void)
{
    const hc_plugin *p = hc_registry_find(reg, HC_PLUGIN_QUANT, "gptq");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->desc->abi_version, HC_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(p->desc->version, "1.1.0");
    CU_ASSERT_PTR_NOT_NULL(p->desc->description);
    CU_ASSERT_PTR_NOT_NULL(gptq->input_bytes);
    CU_ASSERT_PTR_NOT_NULL(gptq->device_kernels); /* rtn's CUDA kernels: tests/test_qrtn_cuda_cpu.c */
}

static void expect_canonical(const char *options, const char *canonical)
{
    void *p = params_of(gptq, options);
    char buf[128];
    HC_ASSERT_OK(gptq->format_options(p, buf, sizeof buf));
    if (strcmp(buf, canonical)) printf("\n  '%s' -> '%s', expected '%s'", options, buf, canonical);
    CU_ASSERT_STRING_EQUAL(buf, canonical);
    gptq->free_params(p);
    p = params_of(gptq, buf);   /* the canonical string round-trips */
    char again[128];
    HC_ASSERT_OK(gptq->format_options(p, again, sizeof again));
    CU_ASSERT_STRING_EQUAL(again, buf);
    gptq->free_params(p);
}

static void test_options(void)
{
    expect_canonical("", "bits=4,group=128,damp=0.01,act_order=1,block=128,search=0");
    expect_canonical("bits=3,group=64,damp=0.05", "bits=3,group=64,damp=0.05,act_order=1,block=128,search=0");
    expect_canonical("bits=3,group=128,act_order=0,block=32,search=1",
                     "bits=3,group=128,damp=0.01,act_order=0,block=32,search=1");
    static const char *bad[][2] = {{"damp=0", "(0, 1]"}, {"damp=2", "(0, 1]"}, {"damp=x", "damp"},
                                   {"bits=6", "2, 3, 4, 8"}, {"order=act", "bits, group, damp, act_order, block, search"},
                                   {"act_order=2", "0 or 1"}, {"search=yes", "0 or 1"}, {"block=0", "1..4096"},
                                   {"block=5000", "1..4096"}, {"search=1,search=0", "twice"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *p = NULL;
        CU_ASSERT_EQUAL(gptq->parse(bad[i][0], &p), HC_E_ARG);
        if (!strstr(hc_last_error(), bad[i][1])) printf("\n  '%s': %s", bad[i][0], hc_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), bad[i][1]));
        CU_ASSERT_PTR_NULL(p);
    }
}

static void test_needs_calibration(void)
{
    void *p = params_of(gptq, "bits=3,group=64");
    float w[4 * 64] = {0};
    uint8_t packed[4 * (8 + 24)];
    CU_ASSERT_EQUAL(gptq->quantize(p, w, 4, 64, NULL, packed), HC_E_ARG);
    CU_ASSERT_STRING_EQUAL(hc_last_error(), "gptq needs calibration data (--calib)");
    hc_quant_calib no_hessian = {NULL, NULL};
    CU_ASSERT_EQUAL(gptq->quantize(p, w, 4, 64, &no_hessian, packed), HC_E_ARG);
    CU_ASSERT_STRING_EQUAL(hc_last_error(), "gptq needs calibration data (--calib)");
    HC_ASSERT_OK(gptq->check_shape(p, 4, 96));   /* 64 + a short last group of 32 */
    CU_ASSERT_EQUAL(gptq->check_shape(p, 4, 80), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "4 x 80"));
    gptq->free_params(p);
}

/* The headline: at 3 bits GPTQ's output error is well below round-to-nearest's. */
static void test_beats_rtn(void)
{
    problem pb = make_problem(42, 48, 256, 2048, NULL, 0);
    static const char *cases[][2] = {{"bits=3,group=64", "bits=3,group=64"}, {"bits=3,group=128", "bits=3,group=128"},
                                     {"bits=4,group=128", "bits=4,group=128"}, {"bits=2,group=32", "bits=2,group=32"}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double eg = quantize_error(gptq, cases[c][0], cases[c][1], &pb, NULL);
        double er = quantize_error(rtn, cases[c][1], cases[c][1], &pb, NULL);
        printf("\n  %s: gptq %.4g, rtn %.4g, ratio %.3f", cases[c][0], eg, er, eg / er);
        CU_ASSERT(eg > 0);
        CU_ASSERT(eg < 0.8 * er);
    }
    free_problem(&pb);
}

/* The same on SmolLM2's width 576, which groups of 128 cut into 4 x 128 + 64 (and groups of 64
 * exactly): GPTQ's groups end where rtn's do, the short last one included. */
static void test_beats_rtn_short_last_group(void)
{
    problem pb = make_problem(43, 32, 576, 1536, NULL, 0);
    static const char *cases[] = {"bits=3,group=128", "bits=4,group=128", "bits=3,group=64", "bits=2,group=128"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double eg = quantize_error(gptq, cases[c], cases[c], &pb, NULL);
        double er = quantize_error(rtn, cases[c], cases[c], &pb, NULL);
        printf("\n  576 wide, %s: gptq %.4g, rtn %.4g, ratio %.3f", cases[c], eg, er, eg / er);
        CU_ASSERT(eg > 0);
        CU_ASSERT(eg < 0.8 * er);
    }
    free_problem(&pb);
}

/* Dead inputs (zero Hessian diagonal) are handled: the result is finite, still better than rtn. */
static void test_dead_inputs(void)
{
    static const int dead[] = {0, 5, 6, 127};
    problem pb = make_problem(7, 16, 128, 1024, dead, 4);
    CU_ASSERT_EQUAL(pb.h[5 * 128 + 5], 0.0f);
    uint8_t *packed = NULL;
    double eg = quantize_error(gptq, "bits=3,group=32", "bits=3,group=32", &pb, &packed);
    double er = quantize_error(rtn, "bits=3,group=32", "bits=3,group=32", &pb, NULL);
    printf("\n  dead inputs: gptq %.4g, rtn %.4g", eg, er);
    CU_ASSERT(isfinite(eg));
    CU_ASSERT(eg < 0.8 * er);
    free(packed);
    free_problem(&pb);
}

/* ---- a plain reference: GPTQ column by column, in double, with the inverse Hessian downdated
 * explicitly after each column (the Optimal Brain Quantizer's form, which GPTQ's Cholesky rows
 * compute in another order), every update applied at once (no blocks). The same processing order
 * and grid rule as the plugin promises: a group's grid from its columns' current values when its
 * first column comes up. Codes into q[rows][n], grids into dm[rows][2 G]. ---- */
static void reference_gptq(const problem *pb, int bits, int group, double damp, int act_order, int search,
                           uint8_t *q, uint16_t *dm)
{
    const int64_t n = pb->cols, rows = pb->rows, G = (n + group - 1) / group;
    const int qmax = (1 << bits) - 1;
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n), *inv = malloc(sizeof(int64_t) * (size_t)n);
    double *a = malloc(sizeof(double) * (size_t)(2 * n * n)), *hinv = malloc(sizeof(double) * (size_t)(n * n));
    double *W = malloc(sizeof(double) * (size_t)(rows * n));
    float *imp = malloc(sizeof(float) * (size_t)n), *vals = malloc(sizeof(float) * (size_t)group);
    int *grid_done = calloc((size_t)(rows * G), sizeof(int));
    CU_ASSERT_PTR_NOT_NULL_FATAL(grid_done);
    for (int64_t i = 0; i < n; i++) perm[i] = i, imp[i] = pb->h[i * n + i];
    for (int64_t k = 1; act_order && k < n; k++)   /* insertion sort: decreasing diagonal, stable */
        for (int64_t j = k; j > 0 && imp[perm[j]] > imp[perm[j - 1]]; j--) {
            int64_t t = perm[j];
            perm[j] = perm[j - 1], perm[j - 1] = t;
        }
    for (int64_t k = 0; k < n; k++) inv[perm[k]] = k;
    /* [Hp + damp I | I] by Gauss-Jordan elimination (Hp: permuted, dead diagonals set to 1) */
    double mean = 0;
    for (int64_t k = 0; k < n; k++) mean += imp[k] == 0.0f ? 1.0 : imp[k];
    mean /= (double)n;
    for (int64_t k = 0; k < n; k++)
        for (int64_t l = 0; l < n; l++) {
            double v = pb->h[perm[k] * n + perm[l]];
            if (k == l) v = (v == 0.0 ? 1.0 : v) + damp * mean;
            a[k * 2 * n + l] = v;
            a[k * 2 * n + n + l] = k == l;
        }
    for (int64_t c = 0; c < n; c++) {   /* symmetric positive definite: no pivoting needed */
        const double piv = a[c * 2 * n + c];
        for (int64_t l = 0; l < 2 * n; l++) a[c * 2 * n + l] /= piv;
        for (int64_t r = 0; r < n; r++) {
            if (r == c) continue;
            const double f = a[r * 2 * n + c];
            for (int64_t l = 0; l < 2 * n; l++) a[r * 2 * n + l] -= f * a[c * 2 * n + l];
        }
    }
    for (int64_t k = 0; k < n; k++)
        for (int64_t l = 0; l < n; l++) hinv[k * n + l] = a[k * 2 * n + n + l];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++) W[r * n + k] = imp[perm[k]] == 0.0f ? 0.0 : pb->w[r * n + perm[k]];
    for (int64_t k = 0; k < n; k++) {
        const int64_t c = perm[k], g = c / group, c0 = g * group, len = n - c0 < group ? n - c0 : group;
        for (int64_t r = 0; r < rows; r++) {
            uint16_t *dr = dm + r * 2 * G;
            if (!grid_done[r * G + g]) {
                for (int64_t i = 0; i < len; i++) vals[i] = (float)W[r * n + inv[c0 + i]];
                HC_ASSERT_OK(search ? hc_qrtn_grid_search(vals, imp + c0, len, bits, &dr[g], &dr[G + g])
                                    : hc_qrtn_grid(vals, len, bits, &dr[g], &dr[G + g]));
                grid_done[r * G + g] = 1;
            }
            const float d = hc_f16_to_f32(dr[g]), m = hc_f16_to_f32(dr[G + g]);
            const int code = hc_qrtn_code((float)W[r * n + k], d, m, qmax);
            q[r * n + c] = (uint8_t)code;
            const double err = (W[r * n + k] - ((double)d * code + m)) / hinv[k * n + k];
            for (int64_t j = k + 1; j < n; j++) W[r * n + j] -= err * hinv[k * n + j];
        }
        for (int64_t i = k + 1; i < n; i++)   /* column k leaves the inverse Hessian */
            for (int64_t j = k + 1; j < n; j++) hinv[i * n + j] -= hinv[i * n + k] * hinv[k * n + j] / hinv[k * n + k];
    }
    free(perm), free(inv), free(a), free(hinv), free(W), free(imp), free(vals), free(grid_done);
}

/* Codes and grids of a packed matrix (rtn's layout). */
static void unpack_all(int bits, int group, const problem *pb, const uint8_t *packed, uint8_t *q, uint16_t *dm)
{
    const int64_t G = hc_qrtn_groups(group, pb->cols);
    const size_t rb = hc_qrtn_row_bytes(bits, group, pb->cols);
    for (int64_t r = 0; r < pb->rows; r++) {
        const uint8_t *row = packed + (size_t)r * rb;
        memcpy(dm + r * 2 * G, row, sizeof(uint16_t) * 2 * (size_t)G);
        hc_qrtn_read_codes(bits, group, pb->cols, row, q + r * pb->cols);
    }
}

/* The plugin against the reference: the same codes (up to float rounding, which can flip a code
 * and so the updates after it) and the same output error within 2%, for both orders, with and
 * without the search, for blocks that hold whole groups, cut them (32, 7) or hold one column. */
static void test_matches_reference(void)
{
    problem pb = make_problem(101, 24, 256, 1024, NULL, 0);
    const int64_t n = pb.cols, rows = pb.rows;
    static const struct { int bits, group, act_order, block, search; } cases[] = {
        {3, 64, 0, 128, 0}, {3, 64, 1, 128, 0}, {3, 64, 1, 32, 0}, {3, 64, 1, 7, 0}, {3, 64, 1, 1, 0},
        {4, 128, 1, 128, 0}, {3, 128, 1, 128, 1}, {3, 32, 0, 48, 1}, {2, 64, 1, 128, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char opt[128], ropt[64];
        snprintf(opt, sizeof opt, "bits=%d,group=%d,act_order=%d,block=%d,search=%d", cases[c].bits, cases[c].group,
                 cases[c].act_order, cases[c].block, cases[c].search);
        snprintf(ropt, sizeof ropt, "bits=%d,group=%d", cases[c].bits, cases[c].group);
        const int64_t G = hc_qrtn_groups(cases[c].group, n);
        uint8_t *packed = NULL, *qp = malloc((size_t)(rows * n)), *qr = malloc((size_t)(rows * n));
        uint16_t *dmp = malloc(sizeof(uint16_t) * 2 * (size_t)(rows * G)), *dmr = malloc(sizeof(uint16_t) * 2 * (size_t)(rows * G));
        float *deq = malloc(sizeof(float) * (size_t)(rows * n));
        double ep = quantize_error(gptq, opt, ropt, &pb, &packed);
        unpack_all(cases[c].bits, cases[c].group, &pb, packed, qp, dmp);
        reference_gptq(&pb, cases[c].bits, cases[c].group, 0.01, cases[c].act_order, cases[c].search, qr, dmr);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++) {
                const int64_t g = i / cases[c].group;
                deq[r * n + i] = hc_f16_to_f32(dmr[r * 2 * G + g]) * qr[r * n + i] + hc_f16_to_f32(dmr[r * 2 * G + G + g]);
            }
        double er = output_error(&pb, deq);
        int64_t same = 0;
        for (int64_t i = 0; i < rows * n; i++) same += qp[i] == qr[i];
        const double frac = (double)same / (double)(rows * n);
        printf("\n  %s: plugin %.5g, reference %.5g, same codes %.2f%%", opt, ep, er, 100 * frac);
        CU_ASSERT(frac > 0.97);
        CU_ASSERT(fabs(ep - er) <= 0.02 * er);
        free(packed), free(qp), free(qr), free(dmp), free(dmr), free(deq);
    }
    free_problem(&pb);
}

/* With H = c I nothing spreads (the inverse Hessian is diagonal): GPTQ is round-to-nearest, byte
 * for byte, whatever the order, the block or the dampening; with search=1 it is rtn's search
 * weighted by the (equal) diagonal. */
static void test_identity_hessian_is_rtn(void)
{
    problem pb = make_problem(5, 12, 576, 16, NULL, 0);
    const int64_t n = pb.cols;
    float *x2 = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n * n; i++) pb.h[i] = i % (n + 1) == 0 ? 2.5f : 0.0f;
    for (int64_t i = 0; i < n; i++) x2[i] = 2.5f;
    static const char *cases[][2] = {
        {"bits=3,group=128", "bits=3,group=128"}, {"bits=3,group=128,act_order=0,block=32", "bits=3,group=128"},
        {"bits=4,group=64,damp=0.3,block=5", "bits=4,group=64"}, {"bits=2,group=32", "bits=2,group=32"},
        {"bits=3,group=128,search=1", "bits=3,group=128,search=1"}, {"bits=4,group=32,search=1,block=1", "bits=4,group=32,search=1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        void *pg = params_of(gptq, cases[c][0]), *pr = params_of(rtn, cases[c][1]);
        size_t bytes = gptq->packed_bytes(pg, pb.rows, n);
        uint8_t *a = malloc(bytes), *b = malloc(bytes);
        hc_quant_calib calib = {x2, pb.h};
        HC_ASSERT_OK(gptq->quantize(pg, pb.w, pb.rows, n, &calib, a));
        HC_ASSERT_OK(rtn->quantize(pr, pb.w, pb.rows, n, &calib, b));
        if (memcmp(a, b, bytes)) printf("\n  %s: not rtn's bytes", cases[c][0]);
        CU_ASSERT(!memcmp(a, b, bytes));
        free(a), free(b);
        gptq->free_params(pg), rtn->free_params(pr);
    }
    free(x2);
    free_problem(&pb);
}

/* On random layers (several shapes, input correlations, scales and seeds), GPTQ's output error
 * never exceeds round-to-nearest's, in either order, and the search never makes it worse than
 * GPTQ's min-max grid by more than the greedy method's noise. */
static void test_never_worse_than_rtn(void)
{
    static const struct { int64_t rows, cols; int n; } shapes[] = {{8, 64, 256}, {16, 128, 100}, {8, 192, 2000}, {4, 576, 900}};
    static const char *fmts[] = {"bits=3,group=64", "bits=4,group=128", "bits=2,group=32", "bits=3,group=128"};
    double sum_plain = 0, sum_ao = 0;
    int cases = 0;
    for (int seed = 0; seed < 6; seed++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            problem pb = make_problem(1000 + 17 * (uint64_t)seed + s, shapes[s].rows, shapes[s].cols, shapes[s].n, NULL, 0);
            const char *f = fmts[(seed + s) % 4];
            char o0[96], o1[96];
            snprintf(o0, sizeof o0, "%s,act_order=0", f);
            snprintf(o1, sizeof o1, "%s,act_order=1", f);
            const double er = quantize_error(rtn, f, f, &pb, NULL);
            const double e0 = quantize_error(gptq, o0, f, &pb, NULL), e1 = quantize_error(gptq, o1, f, &pb, NULL);
            if (!(e0 <= er && e1 <= er)) printf("\n  seed %d, %lld x %lld, %s: rtn %.4g, gptq %.4g / %.4g (act order)",
                                                seed, (long long)pb.rows, (long long)pb.cols, f, er, e0, e1);
            CU_ASSERT(e0 <= er);
            CU_ASSERT(e1 <= er);
            sum_plain += e0 / er, sum_ao += e1 / er;
            cases++;
            free_problem(&pb);
        }
    printf("\n  %d cases: mean error against rtn's %.3f (left to right), %.3f (act order)", cases, sum_plain / cases,
           sum_ao / cases);
}

/* The gptq plugin's kernel equals the reference on its own data (the layout is rtn's). */
static void kernel_case(int group, int64_t cols)
{
    enum { ROWS = 20, NT = 3, MAXC = 224 };
    problem pb = make_problem(3, ROWS, cols, 512, NULL, 0);
    uint8_t *packed = NULL;
    char opt[64];
    snprintf(opt, sizeof opt, "bits=3,group=%d", group);
    quantize_error(gptq, opt, opt, &pb, &packed);
    void *p = params_of(gptq, opt);
    rng r = {11};
    float x[NT * MAXC], y[NT * ROWS], yr[NT * ROWS], deq[ROWS * MAXC];
    for (int i = 0; i < NT * cols; i++) x[i] = (float)rnd_normal(&r);
    void *xq = malloc(gptq->input_bytes(p, cols, NT));
    gptq->prepare_input(p, x, cols, NT, xq);
    HC_ASSERT_OK(gptq->matmul_rows(p, packed, cols, ROWS, x, xq, NT, y, ROWS, 0, ROWS));
    HC_ASSERT_OK(hc_qrtn_matmul_rows_ref(3, group, packed, cols, ROWS, xq, NT, yr, ROWS, 0, ROWS));
    gptq->dequantize_rows(p, packed, cols, ROWS, 0, ROWS, deq);
    int ok = 1;
    for (int t = 0; t < NT; t++)
        for (int o = 0; o < ROWS; o++) {
            double exact = 0, mag = 0;
            for (int i = 0; i < cols; i++) {
                exact += (double)deq[o * cols + i] * x[t * cols + i];
                mag += fabs((double)deq[o * cols + i] * x[t * cols + i]);
            }
            ok &= fabs((double)y[t * ROWS + o] - (double)yr[t * ROWS + o]) <= 1e-5 * mag + 1e-6;
            ok &= fabs((double)y[t * ROWS + o] - exact) <= 0.05 * mag + 1e-6;   /* int8 activations: ~1% */
        }
    CU_ASSERT(ok);
    free(xq), free(packed);
    gptq->free_params(p);
    free_problem(&pb);
}

static void test_kernel_on_gptq_data(void)
{
    kernel_case(64, 192);
    kernel_case(128, 160);   /* a short last group of 32 */
    kernel_case(128, 224);   /* a short last group of 96 */
}

static void test_bad_hessian(void)
{
    const int64_t n = 32;
    void *p = params_of(gptq, "bits=3,group=32");
    float w[2 * 32], h[32 * 32];
    uint8_t packed[2 * (4 + 12)];
    for (int i = 0; i < 64; i++) w[i] = (float)(i % 7) - 3.0f;
    /* indefinite: ones off the diagonal, 0.5 on it (eigenvalue 0.5 - 1 < 0) */
    for (int64_t i = 0; i < n * n; i++) h[i] = i % (n + 1) == 0 ? 0.5f : 1.0f;
    hc_quant_calib calib = {NULL, h};
    CU_ASSERT_EQUAL(gptq->quantize(p, w, 2, 32, &calib, packed), HC_E_NUMERIC);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "damp"));
    h[3] = NAN;
    CU_ASSERT_EQUAL(gptq->quantize(p, w, 2, 32, &calib, packed), HC_E_ARG);
    for (int64_t i = 0; i < n * n; i++) h[i] = i % (n + 1) == 0 ? -1.0f : 0.0f;
    CU_ASSERT_EQUAL(gptq->quantize(p, w, 2, 32, &calib, packed), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "negative"));
    /* all inputs dead: identity after the fix-up, plain rounding of zeroed weights */
    for (int64_t i = 0; i < n * n; i++) h[i] = 0.0f;
    HC_ASSERT_OK(gptq->quantize(p, w, 2, 32, &calib, packed));
    gptq->free_params(p);
}

int main(void)
{
    int ok = hc_registry_create(&reg) == HC_OK &&
             hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-quant-rtn.so") == HC_OK &&
             hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-quant-gptq.so") == HC_OK;
    if (ok) {
        const hc_plugin *pg = hc_registry_find(reg, HC_PLUGIN_QUANT, "gptq");
        const hc_plugin *pr = hc_registry_find(reg, HC_PLUGIN_QUANT, "rtn");
        ok = pg && pr;
        if (ok) gptq = pg->desc->ops, rtn = pr->desc->ops;
    }
    if (!ok) {
        fprintf(stderr, "test_quant_gptq: the plugins did not load: %s\n", hc_last_error());
        hc_registry_free(reg);
        return 1;
    }
    static const hc_test_case cases[] = {
        {"descriptor", test_descriptor},
        {"options", test_options},
        {"needs calibration", test_needs_calibration},
        {"output error below rtn's", test_beats_rtn},
        {"output error below rtn's, short last group", test_beats_rtn_short_last_group},
        {"dead inputs", test_dead_inputs},
        {"the plain column-by-column reference", test_matches_reference},
        {"an identity Hessian gives rtn", test_identity_hessian_is_rtn},
        {"never worse than rtn on random layers", test_never_worse_than_rtn},
        {"rtn's kernel on gptq data", test_kernel_on_gptq_data},
        {"bad Hessians", test_bad_hessian},
        {NULL, NULL},
    };
    int rc = hc_test_run("quant_gptq", cases);
    hc_registry_free(reg);
    return rc;
}
