/* test_qjoint.c: quantization that knows its branch (core/compress/qjoint.c) with the rtn and gptq
 * plugins: no rounds is the plugin's own quantize; rounds never leave more error after the branch
 * than the first quantization, clearly less on a layer with low-rank structure; errors pass through. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc/hc_quant.h"
#include "lowrank.h"
#include "qjoint.h"
#include "quant_format.h"
#include "registry.h"
#include "test_util.h"

static hc_registry *reg;

/* A layer: W = noise + a strong rank-4 part (what a branch can carry), inputs with unequal scales
 * and correlations: moment = X^T X / n in double and f32, and its diagonal. */
typedef struct layer {
    int64_t out, in;
    float *w, *hf, *x2;
    double *moment;
} layer;

static layer make_layer(uint64_t seed, int64_t out, int64_t in, int n)
{
    layer L = {out, in, malloc(sizeof(float) * (size_t)(out * in)), malloc(sizeof(float) * (size_t)(in * in)),
               malloc(sizeof(float) * (size_t)in), calloc((size_t)(in * in), sizeof(double))};
    double *x = malloc(sizeof(double) * (size_t)in), *scale = malloc(sizeof(double) * (size_t)in);
    for (int64_t i = 0; i < in; i++) scale[i] = 0.2 + 3.0 * fabs(hc_test_gauss(&seed));
    for (int s = 0; s < n; s++) {
        const double common = hc_test_gauss(&seed);
        for (int64_t i = 0; i < in; i++) x[i] = (hc_test_gauss(&seed) + 0.5 * common) * scale[i];
        for (int64_t i = 0; i < in; i++)
            for (int64_t j = 0; j < in; j++) L.moment[i * in + j] += x[i] * x[j] / n;
    }
    for (int64_t i = 0; i < in * in; i++) L.hf[i] = (float)L.moment[i];
    for (int64_t i = 0; i < in; i++) L.x2[i] = (float)L.moment[i * in + i];
    double u[4][64], v[4][576];
    for (int k = 0; k < 4; k++) {
        for (int64_t i = 0; i < out; i++) u[k][i] = hc_test_gauss(&seed);
        for (int64_t j = 0; j < in; j++) v[k][j] = hc_test_gauss(&seed);
    }
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++) {
            double a = 0.3 * hc_test_gauss(&seed);
            for (int k = 0; k < 4; k++) a += 0.5 * u[k][i] * v[k][j];
            L.w[i * in + j] = (float)a;
        }
    free(x), free(scale);
    return L;
}

static void free_layer(layer *L) { free(L->w), free(L->hf), free(L->x2), free(L->moment); }

/* The error a rank-r branch (fitted as qjoint fits it) leaves on W - deq(packed). */
static double left_after_branch(const hc_quant_format *f, const layer *L, const void *packed, const hc_qjoint_opts *o)
{
    float *r = malloc(sizeof(float) * (size_t)(L->out * L->in));
    f->ops->dequantize_rows(f->params, packed, L->in, L->out, 0, L->out, r);
    for (int64_t i = 0; i < L->out * L->in; i++) r[i] = L->w[i] - r[i];
    hc_lowrank lr;
    hc_lowrank_opts lo = {.rank = o->rank, .whiten = o->whiten, .seed = o->seed};
    HC_ASSERT_OK(hc_lowrank_factor(r, L->out, L->in, &lo, &lr));
    double e = lr.energy;
    for (int k = 0; k < lr.rank; k++) e -= (double)lr.sigma[k] * lr.sigma[k];
    hc_lowrank_free(&lr);
    free(r);
    return e;
}

static void joint_case(const char *spec, int rounds, double must_gain)
{
    layer L = make_layer(9, 64, 576, 2000);
    hc_quant_format *f = NULL;
    HC_ASSERT_OK(hc_quant_format_create(reg, spec, &f));
    const size_t bytes = f->ops->packed_bytes(f->params, L.out, L.in);
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    hc_quant_calib qc = {L.x2, L.hf};
    hc_whiten wh; /* the factorization's full whitening, as compress makes it */
    HC_ASSERT_OK(hc_whiten_from_moment(HC_WHITEN_FULL, L.moment, NULL, L.in, 0.01, &wh));
    hc_qjoint_opts o = {.rank = 4, .rounds = 0, .whiten = &wh, .seed = 3};
    hc_qjoint_report rep;
    /* no rounds: the plugin's own quantize, byte for byte */
    HC_ASSERT_OK(hc_qjoint_quantize(f, L.w, L.out, L.in, &qc, &o, a, &rep));
    HC_ASSERT_OK(f->ops->quantize(f->params, L.w, L.out, L.in, &qc, b));
    CU_ASSERT(!memcmp(a, b, bytes));
    o.rounds = rounds;
    HC_ASSERT_OK(hc_qjoint_quantize(f, L.w, L.out, L.in, &qc, &o, a, &rep));
    const double first = left_after_branch(f, &L, b, &o), kept = left_after_branch(f, &L, a, &o);
    printf("\n  %s, %d rounds: left after a rank-4 branch %.5g -> %.5g (round %d kept)", spec, rounds, first, kept,
           rep.best_round);
    CU_ASSERT(fabs(rep.error_first - first) <= 1e-3 * first);
    CU_ASSERT(fabs(rep.error_best - kept) <= 1e-3 * first);
    CU_ASSERT(kept <= first);
    CU_ASSERT(kept <= must_gain * first);
    free(a), free(b);
    hc_whiten_free(&wh);
    hc_quant_format_free(f);
    free_layer(&L);
}

static void test_rtn(void) { joint_case("rtn:bits=3,group=64", 3, 0.9); }
static void test_rtn_search(void) { joint_case("rtn:bits=3,group=128,search=1", 3, 0.9); }
static void test_gptq(void) { joint_case("gptq:bits=3,group=128", 3, 0.97); }

static void test_errors_pass_through(void)
{
    layer L = make_layer(4, 8, 64, 100);
    hc_quant_format *f = NULL;
    HC_ASSERT_OK(hc_quant_format_create(reg, "gptq:bits=3,group=64", &f));
    uint8_t *a = malloc(f->ops->packed_bytes(f->params, L.out, L.in));
    hc_qjoint_opts o = {.rank = 2, .rounds = 2};
    CU_ASSERT_EQUAL(hc_qjoint_quantize(f, L.w, L.out, L.in, NULL, &o, a, NULL), HC_E_ARG);   /* gptq needs calibration */
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "calibration"));
    free(a);
    hc_quant_format_free(f);
    free_layer(&L);
}

int main(void)
{
    if (hc_registry_create(&reg) != HC_OK || hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-quant-rtn.so") != HC_OK ||
        hc_registry_load_file(reg, HC_PLUGIN_BUILD_DIR "/hc-quant-gptq.so") != HC_OK) {
        fprintf(stderr, "test_qjoint: the plugins did not load: %s\n", hc_last_error());
        hc_registry_free(reg);
        return 1;
    }
    static const hc_test_case cases[] = {
        {"rtn: rounds lower what the branch leaves", test_rtn},
        {"rtn search=1", test_rtn_search},
        {"gptq", test_gptq},
        {"errors pass through", test_errors_pass_through},
        {NULL, NULL},
    };
    int rc = hc_test_run("qjoint", cases);
    hc_registry_free(reg);
    return rc;
}
